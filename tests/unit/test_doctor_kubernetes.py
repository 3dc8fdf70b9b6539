"""The kubernetes Python client that kubernetes.core's modules import on the controller: declared, pinned within the
declared range, and checked by `sensorstack doctor`."""

from __future__ import annotations

import importlib.metadata
import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from sensorstack import collection_pins, doctor

ROOT = Path(__file__).resolve().parents[2]


def declared() -> Requirement:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    [requirement] = [Requirement(line) for line in dependencies if Requirement(line).name == "kubernetes"]
    return requirement


def test_the_pinned_client_is_in_the_declared_range_and_what_kubernetes_core_needs() -> None:
    constraints = (ROOT / "requirements/constraints.txt").read_text()
    [pinned] = re.findall(r"^kubernetes==(\S+)$", constraints, flags=re.MULTILINE)
    assert pinned in declared().specifier
    # kubernetes.core 6 needs kubernetes>=24.2.0 (its requirements.txt).
    assert declared().specifier.contains("24.2.0") and not declared().specifier.contains("23.6.0")


def test_kubernetes_core_is_pinned_with_the_other_collections() -> None:
    pins = collection_pins.pinned(ROOT)
    assert pins["kubernetes.core"] == "6.2.0"
    requirements = yaml.safe_load((ROOT / "collections/requirements.yml").read_text())["collections"]
    assert [entry["name"] for entry in requirements].count("kubernetes.core") == 1


def test_doctor_passes_the_installed_client() -> None:
    check = doctor.check_kubernetes_client()
    assert (check.name, check.ok, check.detail) == ("kubernetes", True, importlib.metadata.version("kubernetes"))


@pytest.mark.parametrize(("installed", "detail"), [(None, "missing"), ("23.6.0", "23.6.0")])
def test_doctor_names_the_declared_range_when_the_client_is_missing_or_too_old(
    monkeypatch: pytest.MonkeyPatch, installed: str | None, detail: str
) -> None:
    real = importlib.metadata.version

    def version(name: str) -> str:
        if name != "kubernetes":
            return real(name)
        if installed is None:
            raise importlib.metadata.PackageNotFoundError(name)
        return installed

    monkeypatch.setattr(doctor.importlib.metadata, "version", version)
    check = doctor.check_kubernetes_client()
    assert not check.ok
    assert check.detail.startswith(detail)
    assert check.fix == f"pip install 'kubernetes{declared().specifier}'"


def test_an_installed_wheel_finds_the_collections_where_pip_put_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a wheel, the runs read the collections from site-packages: doctor looks there too, not in ./collections."""
    site_packages = tmp_path / "site-packages"
    for fqcn, version in collection_pins.pinned(ROOT).items():
        manifest = site_packages.joinpath("ansible_collections", *fqcn.split("."), "MANIFEST.json")
        manifest.parent.mkdir(parents=True)
        manifest.write_text(json.dumps({"collection_info": {"version": version}}))
    monkeypatch.setattr(collection_pins, "checkout_root", lambda: None)
    monkeypatch.setattr(collection_pins, "installed_collection", lambda: site_packages / "ansible_collections/x/y")
    monkeypatch.setattr(doctor, "checkout_root", lambda: None)

    assert collection_pins.collections_folder() == site_packages
    assert doctor.check_collections().ok
    (site_packages / "ansible_collections/kubernetes/core/MANIFEST.json").unlink()
    missing = doctor.check_collections()
    assert not missing.ok and "kubernetes.core missing" in missing.detail
    assert (
        missing.fix.startswith("pip install the release of the ansible package") and str(site_packages) in missing.fix
    )
