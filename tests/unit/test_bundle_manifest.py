"""bundle.json: what verify and compare report, and the versions file the bundle reads."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from sensorstack.bundle.manifest import (
    Manifest,
    artifact_for,
    compare,
    parse_manifest,
    read_manifest,
    verify,
)
from sensorstack.bundle.versions import kubernetes_minor, load_versions


def _bundle(tmp_path: Path) -> tuple[Path, Manifest]:
    bundle = tmp_path / "bundle"
    (bundle / "files").mkdir(parents=True)
    manifest_file = bundle / "files/calico.yaml"
    manifest_file.write_text("kind: List\n")
    artifact = artifact_for(
        bundle, manifest_file, kind="file", name="calico.yaml", version="3.31.0", upstream="https://example/calico.yaml"
    )
    manifest = Manifest(source="source", versions={"calico": "3.31.0"}, artifacts=[artifact])
    manifest.write(bundle)
    return bundle, manifest


def test_a_whole_bundle_verifies_and_round_trips(tmp_path: Path) -> None:
    bundle, manifest = _bundle(tmp_path)
    assert verify(bundle) == []
    assert read_manifest(bundle) == manifest


def test_verify_names_a_changed_and_a_missing_file(tmp_path: Path) -> None:
    bundle, _ = _bundle(tmp_path)
    (bundle / "files/calico.yaml").write_text("kind: List\nitems: [evil]\n")
    [problem] = verify(bundle)
    assert "calico.yaml 3.31.0" in problem and "has sha256" in problem
    (bundle / "files/calico.yaml").unlink()
    assert verify(bundle) == ["calico.yaml 3.31.0: files/calico.yaml is missing"]


def test_verify_refuses_a_path_outside_the_bundle(tmp_path: Path) -> None:
    bundle, manifest = _bundle(tmp_path)
    (tmp_path / "outside").write_text("x")
    escaped = replace(manifest.artifacts[0], path="../outside")
    problems = verify(bundle, Manifest(source="source", versions={}, artifacts=[escaped]))
    assert problems == ["calico.yaml 3.31.0: path ../outside leaves the bundle"]


def test_compare_reports_content_version_and_membership(tmp_path: Path) -> None:
    _, manifest = _bundle(tmp_path)
    artifact = manifest.artifacts[0]
    same = Manifest(source="upstream", versions={}, artifacts=[replace(artifact, path="elsewhere/calico.yaml")])
    assert compare(manifest, same) == []
    other = Manifest(source="upstream", versions={}, artifacts=[replace(artifact, sha256="0" * 64, version="3.30.0")])
    assert compare(manifest, other) == [
        "file calico.yaml (https://example/calico.yaml): version '3.31.0' != '3.30.0'",
        f"file calico.yaml (https://example/calico.yaml): sha256 '{artifact.sha256}' != '{'0' * 64}'",
    ]
    assert compare(manifest, Manifest(source="upstream", versions={})) == [
        "only in the first: file calico.yaml (https://example/calico.yaml)"
    ]


def test_compare_tells_one_name_from_two_places_apart(tmp_path: Path) -> None:
    """kubeadm of the pinned and of the previous release, cri-tools in the repository of each minor."""
    _, manifest = _bundle(tmp_path)
    base = replace(manifest.artifacts[0], kind="deb", name="cri-tools", version="1.34.0-1.1")
    pinned = replace(base, path="apt/v1.35/cri-tools.deb", upstream="https://pkgs.k8s.io/core:/stable:/v1.35/deb/x")
    previous = replace(base, path="apt/v1.34/cri-tools.deb", upstream="https://pkgs.k8s.io/core:/stable:/v1.34/deb/x")
    both = Manifest(source="source", versions={}, artifacts=[pinned, previous])
    assert compare(both, Manifest(source="upstream", versions={}, artifacts=[previous, pinned])) == []
    spoiled = replace(previous, sha256="0" * 64)
    assert compare(both, Manifest(source="upstream", versions={}, artifacts=[pinned, spoiled])) == [
        f"deb cri-tools (https://pkgs.k8s.io/core:/stable:/v1.34/deb/x): sha256 '{base.sha256}' != '{'0' * 64}'"
    ]
    assert compare(both, Manifest(source="upstream", versions={}, artifacts=[pinned])) == [
        "only in the first: deb cri-tools (https://pkgs.k8s.io/core:/stable:/v1.34/deb/x)"
    ]


def test_a_manifest_of_another_schema_or_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="schema 1"):
        parse_manifest('{"schema": 2}')
    entry = '{"kind": "rpm", "name": "x", "version": "1", "path": "x", "sha256": "", "size": 0, "upstream": ""}'
    with pytest.raises(ValueError, match="unknown kind 'rpm'"):
        parse_manifest('{"schema": 1, "artifacts": [' + entry + "]}")


def test_the_versions_file_renders_the_upstream_and_the_mirror_locations() -> None:
    upstream = load_versions()
    minor = kubernetes_minor(upstream["sensorstack_kubernetes_version"])
    assert upstream["sensorstack_kubernetes_apt_url"] == f"https://pkgs.k8s.io/core:/stable:/v{minor}/deb/"
    mirrored = load_versions(overrides={"sensorstack_mirror": "http://10.77.0.1:8080"})
    assert mirrored["sensorstack_kubernetes_apt_url"] == f"http://10.77.0.1:8080/apt/core:/stable:/v{minor}/deb/"
    assert mirrored["sensorstack_mirror_registry"] == "10.77.0.1:5000"
    assert mirrored["sensorstack_calico_manifest_url"].startswith("http://10.77.0.1:8080/files/calico/")


@pytest.mark.parametrize("version", ["1.35", "v1.35.x", "1.35.4.1", ""])
def test_a_malformed_kubernetes_version_names_the_variable(version: str) -> None:
    with pytest.raises(ValueError, match="sensorstack_kubernetes_version"):
        kubernetes_minor(version)
