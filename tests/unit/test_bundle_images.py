"""The pure parts of the bundle's images: names, mirror paths, layouts as upstream has them, recipes, layers."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import tarfile
from pathlib import Path

import pytest
import yaml

from sensorstack import project_root
from sensorstack.bundle import image_specs, images
from sensorstack.bundle.cache import recipe_digest
from sensorstack.bundle.debian_base import DebianBase
from sensorstack.bundle.image_names import ImageName, containerd_mirrors
from sensorstack.bundle.images import image_entries, image_recipe
from sensorstack.bundle.oci_layout import Entry, ImageConfig, Layer, Layout, file_capabilities, write_layer

KUBEADM_LIST = {
    "registry.k8s.io/kube-apiserver": "v1.35.4",
    "registry.k8s.io/kube-controller-manager": "v1.35.4",
    "registry.k8s.io/kube-scheduler": "v1.35.4",
    "registry.k8s.io/kube-proxy": "v1.35.4",
    "registry.k8s.io/coredns/coredns": "v1.13.1",
    "registry.k8s.io/pause": "3.10.1",
    "registry.k8s.io/etcd": "3.6.6-0",
}
# What `setcap cap_net_bind_service=+ep` left on a file, read back from a layer `docker save` wrote on this machine.
SETCAP_NET_BIND_SERVICE = b"\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"


def spec_named(specs: list[image_specs.ImageSpec], reference: str) -> image_specs.ImageSpec:
    return next(spec for spec in specs if str(spec.name) == reference)


def members(layer: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(layer, "r:gz") as tar:
        return {member.name: member for member in tar.getmembers()}


# --- names and the registry mirror ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "registry", "path", "tag"),
    [
        ("registry.k8s.io/pause:3.10.1", "registry.k8s.io", "pause", "3.10.1"),
        ("registry.k8s.io/coredns/coredns:v1.13.1", "registry.k8s.io", "coredns/coredns", "v1.13.1"),
        ("quay.io/calico/node:v3.31.0", "quay.io", "calico/node", "v3.31.0"),
        ("eclipse-mosquitto:2.0.20", "docker.io", "library/eclipse-mosquitto", "2.0.20"),
        ("grafana/grafana:11.3.0", "docker.io", "grafana/grafana", "11.3.0"),
        ("localhost:5000/app:1", "localhost:5000", "app", "1"),
    ],
)
def test_image_names_are_read_as_docker_spells_them(reference: str, registry: str, path: str, tag: str) -> None:
    assert ImageName.parse(reference) == ImageName(registry, path, tag)


@pytest.mark.parametrize("reference", ["registry.k8s.io/pause", "pause@sha256:abc", "Registry.k8s.io/Pause:1", ":1"])
def test_references_without_a_tag_or_with_a_digest_are_refused(reference: str) -> None:
    with pytest.raises(ValueError, match=r"reference|repository"):
        ImageName.parse(reference)


def test_the_mirror_keeps_each_image_under_its_upstream_registry() -> None:
    assert ImageName.parse("registry.k8s.io/pause:3.10.1").mirrored("10.20.0.1:5000") == (
        "10.20.0.1:5000/registry.k8s.io/pause:3.10.1"
    )
    assert ImageName.parse("eclipse-mosquitto:2").mirrored("m:5000") == "m:5000/docker.io/library/eclipse-mosquitto:2"


def test_archives_sit_under_the_registry_path_without_colons() -> None:
    archive = ImageName.parse("registry.k8s.io/coredns/coredns:v1.13.1").archive
    assert archive == "images/registry.k8s.io/coredns/coredns_v1.13.1.oci.tar"
    assert ":" not in archive


def containerd_request(mirror: dict, path: str, tag: str) -> str:
    """The manifest URL containerd asks a hosts.toml mirror for (override_path: the URL is the API root)."""
    base = mirror["url"] if mirror.get("override_path") else mirror["url"].rstrip("/") + "/v2"
    return f"{base}/{path}/manifests/{tag}"


@pytest.mark.parametrize(
    "reference", ["registry.k8s.io/pause:3.10.1", "quay.io/calico/node:v3.31.0", "eclipse-mosquitto:2.0.20"]
)
def test_containerd_asks_the_mirror_exactly_where_the_push_put_the_image(reference: str) -> None:
    name = ImageName.parse(reference)
    entry = next(item for item in containerd_mirrors("10.20.0.1:5000") if item["registry"] == name.registry)
    pushed_to = name.mirrored("10.20.0.1:5000")
    repository, _, tag = pushed_to.rpartition(":")
    host, _, repository_path = repository.partition("/")
    assert containerd_request(entry["mirrors"][0], name.path, name.tag) == (
        f"http://{host}/v2/{repository_path}/manifests/{tag}"
    )


def without_descriptions(spec: dict) -> dict:
    return {
        key: without_descriptions(value) if isinstance(value, dict) else value
        for key, value in spec.items()
        if key != "description"
    }


def test_mirror_entries_pass_the_containerd_roles_argument_spec() -> None:
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    specs = yaml.safe_load((project_root() / "roles/containerd/meta/argument_specs.yml").read_text())
    option = specs["argument_specs"]["main"]["options"]["containerd_registry_mirrors"]
    validator = ArgumentSpecValidator({"containerd_registry_mirrors": without_descriptions(option)})
    entries = containerd_mirrors("10.20.0.1:5000")
    result = validator.validate({"containerd_registry_mirrors": entries})
    assert result.error_messages == []
    assert [entry["registry"] for entry in entries] == ["registry.k8s.io", "quay.io", "docker.io"]
    assert all(mirror["override_path"] for entry in entries for mirror in entry["mirrors"])


# --- the images, laid out as upstream lays them out ----------------------------------------------------------------


def test_kubeadms_list_becomes_one_image_each_under_the_same_name() -> None:
    specs = image_specs.kubeadm_images(KUBEADM_LIST)
    assert sorted(str(spec.name) for spec in specs) == sorted(f"{name}:{tag}" for name, tag in KUBEADM_LIST.items())


def test_an_image_kubeadm_names_that_cannot_be_built_is_refused() -> None:
    with pytest.raises(ValueError, match=re.escape("registry.k8s.io/kube-foo:v1")):
        image_specs.kubeadm_images({"registry.k8s.io/kube-foo": "v1"})


def test_control_plane_binaries_are_on_path_where_kubeadm_calls_them() -> None:
    specs = image_specs.kubeadm_images(KUBEADM_LIST)
    for command in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"):
        spec = spec_named(specs, f"registry.k8s.io/{command}:v1.35.4")
        assert [file.path for file in spec.files] == [f"/usr/local/bin/{command}"]
    etcd = spec_named(specs, "registry.k8s.io/etcd:3.6.6-0")
    assert "/usr/local/bin/etcd" in [file.path for file in etcd.files]
    assert "/usr/local/bin" in etcd.config.env[0]


def test_coredns_runs_as_nonroot_and_may_bind_port_53() -> None:
    spec = spec_named(image_specs.kubeadm_images(KUBEADM_LIST), "registry.k8s.io/coredns/coredns:v1.13.1")
    assert spec.config.user == "65532:65532"
    assert spec.config.entrypoint == ("/coredns",)
    assert spec.files[0].capabilities == ("cap_net_bind_service",)


def test_pause_is_alone_on_scratch_as_user_65535() -> None:
    spec = spec_named(image_specs.kubeadm_images(KUBEADM_LIST), "registry.k8s.io/pause:3.10.1")
    assert spec.base == "scratch"
    assert (spec.config.entrypoint, spec.config.user) == (("/pause",), "65535:65535")


def test_packet_filter_images_get_the_debian_base() -> None:
    specs = image_specs.kubeadm_images(KUBEADM_LIST) + image_specs.calico_images("3.31.0")
    debian = sorted(str(spec.name) for spec in specs if spec.base == "debian")
    assert debian == ["quay.io/calico/node:v3.31.0", "registry.k8s.io/kube-proxy:v1.35.4"]


def test_calico_images_carry_the_names_its_vxlan_manifest_uses() -> None:
    names = [str(spec.name) for spec in image_specs.calico_images("3.31.0")]
    assert names == [
        "quay.io/calico/node:v3.31.0",
        "quay.io/calico/cni:v3.31.0",
        "quay.io/calico/kube-controllers:v3.31.0",
    ]


def test_calico_image_registry_follows_the_versions_file() -> None:
    versions = {"sensorstack_calico_version": "3.31.0", "sensorstack_calico_image_registry": "docker.io"}
    specs = image_specs.cluster_images(versions, {"registry.k8s.io/pause": "3.10.1"})
    assert [str(spec.name) for spec in specs][1:] == [
        "docker.io/calico/node:v3.31.0",
        "docker.io/calico/cni:v3.31.0",
        "docker.io/calico/kube-controllers:v3.31.0",
    ]


def test_calico_node_starts_the_vxlan_services_under_runit() -> None:
    spec = image_specs.calico_images("3.31.0")[0]
    paths = {entry.path: entry for entry in spec.extra}
    assert spec.config.cmd == ("start_runit",)
    assert "SVDIR=/etc/service/enabled" in spec.config.env
    for service, flag in image_specs.CALICO_NODE_SERVICES.items():
        run = paths[f"/etc/service/available/{service}/run"]
        assert run.data is not None and run.data.endswith(f"exec calico-node {flag}\n".encode())
        assert run.mode == 0o755
    assert "bird" not in " ".join(paths)
    # /bin is a link into /usr on the Debian base: the layer must not turn it into a directory.
    assert all(not file.path.startswith(("/bin/", "/sbin/", "/lib/")) for file in spec.files)


def test_calico_cni_runs_install_and_names_calico_ipam_after_calico() -> None:
    spec = image_specs.calico_images("3.31.0")[1]
    assert spec.config.cmd == ("/opt/cni/bin/install",)
    assert Entry("/opt/cni/bin/calico-ipam", link_target="calico") in spec.extra


def test_kube_controllers_without_its_wrapper_runs_the_controllers_directly() -> None:
    spec = image_specs.calico_images("3.31.0")[2]
    binaries = {name: Path(f"/b/{name}") for name in ("kube-controllers", "check-status", "wrapper")}
    _, config = image_entries(spec, binaries)
    assert config.entrypoint == ("/usr/bin/wrapper", "/usr/bin/kube-controllers")
    del binaries["wrapper"]
    _, config = image_entries(spec, binaries)
    assert config.entrypoint == ("/usr/bin/kube-controllers",)
    assert config.user == "999"


def test_a_missing_required_binary_is_named() -> None:
    spec = image_specs.calico_images("3.31.0")[1]
    with pytest.raises(ValueError, match="no binary for install, calico"):
        image_entries(spec, {"portmap": Path("/b/portmap")})


# --- recipes -------------------------------------------------------------------------------------------------------


def recipe_for(tmp_path: Path, content: bytes = b"binary", mode: int = 0o755) -> str:
    binary = tmp_path / "pause"
    binary.write_bytes(content)
    spec = image_specs.kubeadm_images({"registry.k8s.io/pause": "3.10.1"})[0]
    spec = image_specs.ImageSpec(
        spec.name, spec.base, (image_specs.ImageFile("/pause", "pause", mode=mode),), spec.config
    )
    entries, config = image_entries(spec, {"pause": binary})
    return recipe_digest(image_recipe(spec, entries, config, "scratch"))


def test_the_same_inputs_give_the_same_recipe(tmp_path: Path) -> None:
    assert recipe_for(tmp_path) == recipe_for(tmp_path)


def test_a_changed_binary_or_mode_changes_the_recipe(tmp_path: Path) -> None:
    first = recipe_for(tmp_path)
    assert recipe_for(tmp_path, content=b"rebuilt") != first
    assert recipe_for(tmp_path, mode=0o700) != first


def test_the_binarys_location_is_not_part_of_the_recipe(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert recipe_for(tmp_path / "a") == recipe_for(tmp_path / "b")


# --- layers and layouts --------------------------------------------------------------------------------------------


def test_file_capabilities_are_the_bytes_setcap_writes() -> None:
    assert file_capabilities(["cap_net_bind_service"]) == SETCAP_NET_BIND_SERVICE


def test_a_layer_is_the_same_bytes_every_time(tmp_path: Path) -> None:
    source = tmp_path / "coredns"
    source.write_bytes(b"\x7fELF" * 1000)
    entries = [Entry("/coredns", source=source, capabilities=("cap_net_bind_service",)), Entry("/tmp", mode=0o1777)]
    first = write_layer(entries, tmp_path / "1.tar.gz")
    second = write_layer(list(reversed(entries)), tmp_path / "2.tar.gz")
    assert first == second
    assert (tmp_path / "1.tar.gz").read_bytes() == (tmp_path / "2.tar.gz").read_bytes()


def test_a_layer_keeps_capabilities_modes_owners_and_adds_parents(tmp_path: Path) -> None:
    source = tmp_path / "kube-apiserver"
    source.write_bytes(b"binary")
    entries = [
        Entry("/usr/local/bin/kube-apiserver", source=source, capabilities=("cap_net_bind_service",)),
        Entry("/status/status.json", mode=0o644, uid=999, data=b""),
        Entry("/usr/bin/calico-node", mode=0o4755, data=b"x"),
        Entry("/opt/cni/bin/calico-ipam", link_target="calico"),
    ]
    layer = write_layer(entries, tmp_path / "layer.tar.gz")
    found = members(tmp_path / "layer.tar.gz")
    apiserver = found["usr/local/bin/kube-apiserver"]
    xattr = apiserver.pax_headers["SCHILY.xattr.security.capability"]
    assert xattr.encode("utf-8", "surrogateescape") == SETCAP_NET_BIND_SERVICE
    assert found["status/status.json"].uid == 999
    assert found["usr/bin/calico-node"].mode == 0o4755
    assert found["opt/cni/bin/calico-ipam"].issym() and found["opt/cni/bin/calico-ipam"].linkname == "calico"
    assert {"usr", "usr/local", "usr/local/bin", "status", "opt/cni"} <= found.keys()
    assert all(member.mtime == 0 for member in found.values())
    raw = gzip.decompress((tmp_path / "layer.tar.gz").read_bytes())
    assert layer.diff_id == f"sha256:{hashlib.sha256(raw).hexdigest()}"


def test_a_path_given_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="given twice"):
        write_layer([Entry("/a", data=b"1"), Entry("a", data=b"2")], tmp_path / "layer.tar.gz")


def test_a_layout_finds_a_damaged_blob(tmp_path: Path) -> None:
    layout = Layout.create(tmp_path / "oci")
    layer = write_layer([Entry("/pause", data=b"pause")], tmp_path / "layer.tar.gz")
    layout.add_file(tmp_path / "layer.tar.gz", layer.digest)
    descriptor = layout.add_image(
        [layer], ImageConfig(entrypoint=("/pause",)), {"org.opencontainers.image.ref.name": "p:1"}
    )
    assert layout.verify() == []
    index = json.loads((tmp_path / "oci/index.json").read_text())
    assert index["manifests"][0]["digest"] == descriptor["digest"]
    blob = layout.blob(layer.digest)
    blob.unlink()  # a hard link to the source: write a new file instead of changing both
    blob.write_bytes(gzip.compress(b"tampered"))
    assert layout.verify() == [f"{layer.digest}: content does not match its digest"]


def test_the_static_base_has_distroless_users_and_a_ca_bundle(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.crt"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    write_layer(image_specs.static_base_entries(bundle), tmp_path / "base.tar.gz")
    with tarfile.open(tmp_path / "base.tar.gz") as tar:
        passwd = tar.extractfile("etc/passwd").read().decode()  # type: ignore[union-attr]
        modes = {member.name: member.mode for member in tar.getmembers()}
    assert "nonroot:x:65532:65532:" in passwd
    assert modes["tmp"] == 0o1777
    assert "etc/ssl/certs/ca-certificates.crt" in modes


def test_binaries_are_gathered_by_name_and_clashes_refused(tmp_path: Path) -> None:
    class Component:
        def __init__(self, **binaries: str) -> None:
            self.binaries = {name: Path(path) for name, path in binaries.items()}

    merged = images.binaries_of([Component(etcd="/a/etcd"), Component(coredns="/b/coredns")])
    assert merged == {"etcd": Path("/a/etcd"), "coredns": Path("/b/coredns")}
    with pytest.raises(ValueError, match="etcd"):
        images.binaries_of([Component(etcd="/a/etcd"), Component(etcd="/b/etcd")])


def test_a_layer_may_not_hide_a_link_of_the_debian_base(tmp_path: Path) -> None:
    base = DebianBase(tmp_path, Layer("sha256:0", 0, "sha256:0"), 0, (), directory_links=("bin", "var/run"))
    binary = tmp_path / "calico-node"
    binary.write_bytes(b"x")
    spec = image_specs.calico_images("3.31.0")[0]
    for path in ("/bin/calico-node", "/var/run/calico/socket"):
        moved = image_specs.ImageSpec(spec.name, spec.base, (image_specs.ImageFile(path, "calico-node"),), spec.config)
        builder = images.ImageBuilder({"calico-node": binary}, cache=tmp_path, debian_base=base)
        with pytest.raises(ValueError, match="would replace the base's link"):
            builder.build(moved)
