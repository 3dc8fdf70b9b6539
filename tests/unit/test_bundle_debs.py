"""The Kubernetes packages and their apt repository, as text: control files, Packages and Release."""

from __future__ import annotations

import gzip
import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sensorstack.bundle import aptrepo, debs
from sensorstack.bundle.versions import load_versions

VERSIONS = {
    "sensorstack_kubernetes_version": "1.35.4",
    "sensorstack_kubernetes_package_revision": "1.1",
    "sensorstack_cri_tools_version": "1.34.0",
    "sensorstack_cni_plugins_version": "1.9.0",
}


def _binaries(tmp_path: Path) -> dict[str, Path]:
    binaries = {name: tmp_path / name for name in ("kubeadm", "kubelet", "kubectl", "crictl")}
    plugins = tmp_path / "cni"
    plugins.mkdir()
    for name in ("loopback", "portmap"):
        (plugins / name).write_text("#!/bin/sh\n")
        (plugins / name).chmod(0o755)
    (plugins / "LICENSE").write_text("license\n")
    return {**binaries, "cni-plugins": plugins}


def _specs(tmp_path: Path) -> dict[str, debs.PackageSpec]:
    return {spec.name: spec for spec in debs.package_specs(_binaries(tmp_path), VERSIONS)}


def test_package_versions_follow_the_pinned_versions_file() -> None:
    assert debs.debian_versions(load_versions()) == {
        "kubeadm": "1.35.4-1.1",
        "kubelet": "1.35.4-1.1",
        "kubectl": "1.35.4-1.1",
        "cri-tools": "1.34.0-1.1",
        "kubernetes-cni": "1.9.0-1.1",
    }


@pytest.mark.parametrize(
    ("version", "depends"),
    [
        ("1.31.9", ("cri-tools (>= 1.30.0)",)),
        ("1.32.13", ("cri-tools (>= 1.30.0)",)),
        ("1.34.7", ("cri-tools (>= 1.30.0)",)),
        ("1.34.12", ()),
        ("1.35.4", ("cri-tools (>= 1.30.0)",)),
        ("1.35.5", ()),
        ("1.36.0", ("cri-tools (>= 1.30.0)",)),
        ("1.36.1", ()),
        ("1.37.0", ()),
    ],
)
def test_kubeadm_depends_on_cri_tools_as_the_published_packages_do(version: str, depends: tuple[str, ...]) -> None:
    assert debs.kubeadm_depends(version) == depends


def test_kubeadm_older_than_the_pkgs_k8s_io_era_is_refused() -> None:
    with pytest.raises(ValueError, match=r"1\.29\.0"):
        debs.kubeadm_depends("1.29.0")


def test_packages_install_where_the_upstream_ones_do(tmp_path: Path) -> None:
    paths = {name: {file.path for file in spec.files} for name, spec in _specs(tmp_path).items()}
    assert "/usr/bin/kubeadm" in paths["kubeadm"]
    assert "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf" in paths["kubeadm"]
    assert {"/usr/bin/kubelet", "/usr/lib/systemd/system/kubelet.service", "/etc/default/kubelet"} <= paths["kubelet"]
    assert {"/var/lib/kubelet/.kubelet-keep", "/etc/kubernetes/manifests/.kubelet-keep"} <= paths["kubelet"]
    assert "/usr/bin/kubectl" in paths["kubectl"]
    assert "/usr/bin/crictl" in paths["cri-tools"]
    assert {"/opt/cni/bin/loopback", "/opt/cni/bin/portmap", "/etc/cni/net.d/.kubernetes-cni-keep"} <= paths[
        "kubernetes-cni"
    ]


def test_cni_plugins_keep_their_executable_bit(tmp_path: Path) -> None:
    modes = {file.path: file.mode for file in _specs(tmp_path)["kubernetes-cni"].files}
    assert modes["/opt/cni/bin/loopback"] == 0o755
    assert modes["/opt/cni/bin/LICENSE"] == 0o644


def test_only_kubelet_has_a_conffile_and_maintainer_scripts(tmp_path: Path) -> None:
    specs = _specs(tmp_path)
    assert specs["kubelet"].conffiles == ("/etc/default/kubelet",)
    assert set(specs["kubelet"].maintainer_scripts) == {"postinst", "prerm", "postrm"}
    for name in ("kubeadm", "kubectl", "cri-tools", "kubernetes-cni"):
        assert not specs[name].conffiles and not specs[name].maintainer_scripts, name


def test_kubeadm_drop_in_reads_the_debian_defaults_file(tmp_path: Path) -> None:
    drop_in = next(file for file in _specs(tmp_path)["kubeadm"].files if file.path.endswith("10-kubeadm.conf")).data()
    assert b"EnvironmentFile=-/etc/default/kubelet\n" in drop_in
    assert b"/etc/sysconfig" not in drop_in
    assert b"ExecStart=\nExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS" in drop_in


def test_a_missing_binary_is_named(tmp_path: Path) -> None:
    binaries = _binaries(tmp_path)
    del binaries["crictl"]
    with pytest.raises(ValueError, match="crictl"):
        debs.package_specs(binaries, VERSIONS)


def test_control_file_of_kubelet(tmp_path: Path) -> None:
    assert debs.render_control(_specs(tmp_path)["kubelet"], installed_size=123) == (
        "Package: kubelet\n"
        "Version: 1.35.4-1.1\n"
        "Architecture: amd64\n"
        "Maintainer: Kubernetes Authors <dev@kubernetes.io>\n"
        "Installed-Size: 123\n"
        "Depends: iptables (>= 1.4.21), kubernetes-cni (>= 1.2.0), mount, util-linux\n"
        "Section: net\n"
        "Priority: optional\n"
        "Homepage: https://kubernetes.io\n"
        "Description: Node agent for Kubernetes clusters\n"
        " Node agent for Kubernetes clusters.\n"
    )


def test_control_file_without_dependencies_has_no_depends_field(tmp_path: Path) -> None:
    assert "Depends" not in debs.render_control(_specs(tmp_path)["kubectl"], installed_size=1)


def test_installed_size_counts_kib_per_file_and_one_per_directory() -> None:
    assert debs.installed_size_kib({"/usr/bin/a": 1, "/usr/bin/b": 1025, "/etc/x": 0}) == 1 + 2 + 0 + 3


def test_md5sums_are_relative_and_sorted() -> None:
    assert debs.render_md5sums({"/usr/bin/b": "bb", "/etc/a": "aa"}) == "aa  etc/a\nbb  usr/bin/b\n"


def test_repository_path_is_the_pkgs_k8s_io_one() -> None:
    assert aptrepo.repository_path("1.35") == Path("core:/stable:/v1.35/deb")
    assert aptrepo.repository_path("v1.35") == Path("core:/stable:/v1.35/deb")
    with pytest.raises(ValueError, match=r"1\.35\.4"):
        aptrepo.repository_path("1.35.4")


def test_control_parsing_keeps_multiline_descriptions() -> None:
    fields = aptrepo.parse_control("Package: kubelet\nDescription: short\n long line\n .\n more\n")
    assert fields == {"Package": "kubelet", "Description": "short\n long line\n .\n more"}


def _indexed(name: str, version: str, depends: str | None = None) -> aptrepo.IndexedPackage:
    control = {"Package": name, "Version": version, "Architecture": "amd64", "Section": "admin"}
    if depends:
        control["Depends"] = depends
    control["Description"] = f"{name}\n {name}."
    filename = f"amd64/{name}_{version}_amd64.deb"
    return aptrepo.IndexedPackage(control=control, filename=filename, size=42, md5="m" * 32, sha256="s" * 64)


def test_packages_index_orders_paragraphs_and_fields_as_dpkg_scanpackages() -> None:
    text = aptrepo.render_packages(
        [_indexed("kubeadm", "1.35.4-1.1", "cri-tools (>= 1.30.0)"), _indexed("cri-tools", "1.34.0-1.1")]
    )
    assert text == (
        "Package: cri-tools\nVersion: 1.34.0-1.1\nArchitecture: amd64\n"
        f"Filename: amd64/cri-tools_1.34.0-1.1_amd64.deb\nSize: 42\nMD5sum: {'m' * 32}\nSHA256: {'s' * 64}\n"
        "Section: admin\nDescription: cri-tools\n cri-tools.\n"
        "\n"
        "Package: kubeadm\nVersion: 1.35.4-1.1\nArchitecture: amd64\nDepends: cri-tools (>= 1.30.0)\n"
        f"Filename: amd64/kubeadm_1.35.4-1.1_amd64.deb\nSize: 42\nMD5sum: {'m' * 32}\nSHA256: {'s' * 64}\n"
        "Section: admin\nDescription: kubeadm\n kubeadm.\n"
    )


def test_release_lists_every_index_with_size_and_sha256() -> None:
    packages = b"Package: kubeadm\n"
    indexes = {"Packages": packages, "Packages.gz": aptrepo.gzip_bytes(packages)}
    release = aptrepo.render_release(indexes, "1.35", datetime(2026, 4, 15, 12, 0, tzinfo=UTC))
    assert "Date: Wed, 15 Apr 2026 12:00:00 GMT\n" in release
    assert "Architectures: amd64\n" in release
    sha256 = release.split("SHA256:\n", 1)[1].splitlines()
    assert sha256 == [
        f" {hashlib.sha256(data).hexdigest()} {len(data)} {name}" for name, data in sorted(indexes.items())
    ]
    assert "Valid-Until" not in release and "SHA1" not in release


def test_release_date_is_written_in_utc() -> None:
    from datetime import timedelta, timezone

    local = datetime(2026, 4, 15, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    assert "Date: Wed, 15 Apr 2026 12:00:00 GMT\n" in aptrepo.render_release({}, "1.35", local)


def test_gzipped_index_is_deterministic() -> None:
    data = b"Package: kubeadm\n" * 100
    assert aptrepo.gzip_bytes(data) == aptrepo.gzip_bytes(data)
    assert gzip.decompress(aptrepo.gzip_bytes(data)) == data
