"""`bundle build --from upstream`, against a served bundle standing in for pkgs.k8s.io, the registries and GitHub.

The upstream path is what users run on an online machine. Here nothing upstream is reachable, so the source bundle
is served on loopback, versions.yml's locations are pointed at it (sensorstack_mirror) and a registries.conf sends
registry.k8s.io, quay.io and docker.io to its registry. The fetched bundle must agree with the source one artifact by
artifact, and every check on the way (pinned key, signature, index and package checksums) must hold.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sensorstack.bundle.build import build_bundle
from sensorstack.bundle.manifest import Manifest, compare, read_manifest, verify
from sensorstack.bundle.serve import BundleServer
from sensorstack.bundle.versions import load_versions

pytestmark = pytest.mark.cluster


def registries_conf(directory: Path, registry: str) -> Path:
    """containers-registries.conf(5): each upstream registry's names resolve inside the stand-in's registry."""
    path = directory / "registries.conf"
    entries = [
        f'[[registry]]\nprefix = "{upstream}"\nlocation = "{registry}/{upstream}"\ninsecure = true\n'
        for upstream in load_versions()["sensorstack_mirror_upstream_registries"]
    ]
    path.write_text("\n".join(entries))
    return path


@pytest.fixture(scope="module")
def stand_in(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> BundleServer:
    storage = tmp_path_factory.mktemp("upstream-registry")
    with BundleServer(bundle, "127.0.0.1", 38080, 35000, registry_storage=storage) as server:
        yield server


def test_a_bundle_fetched_from_upstream_agrees_with_the_source_bundle(
    stand_in: BundleServer, manifest: Manifest, tmp_path: Path
) -> None:
    key = manifest.find("key", "apt-signing-key")
    overrides = {
        "sensorstack_mirror": stand_in.url,
        "sensorstack_kubernetes_apt_key_checksum": f"sha256:{key.sha256}",
    }
    fetched_dir = tmp_path / "fetched"
    fetched = build_bundle(fetched_dir, "upstream", overrides, registries_conf(tmp_path, stand_in.registry))
    assert fetched.source == "upstream"
    assert verify(fetched_dir) == []
    assert compare(manifest, read_manifest(fetched_dir)) == []
    assert fetched.versions == manifest.versions


def test_a_key_that_does_not_match_its_pin_is_refused(stand_in: BundleServer, tmp_path: Path) -> None:
    overrides = {"sensorstack_mirror": stand_in.url, "sensorstack_kubernetes_apt_key_checksum": "sha256:" + "0" * 64}
    with pytest.raises(ValueError, match="does not match the expected"):
        build_bundle(tmp_path / "fetched", "upstream", overrides, registries_conf(tmp_path, stand_in.registry))
    assert not (tmp_path / "fetched" / "bundle.json").exists()


def test_an_unpinned_key_is_refused_naming_the_variable(stand_in: BundleServer, tmp_path: Path) -> None:
    overrides = {"sensorstack_mirror": stand_in.url}
    with pytest.raises(ValueError, match="sensorstack_kubernetes_apt_key_checksum must be sha256"):
        build_bundle(tmp_path / "fetched", "upstream", overrides, registries_conf(tmp_path, stand_in.registry))
