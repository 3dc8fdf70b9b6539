"""One version: the Python package's, which pyproject.toml reads, is galaxy.yml's and the newest in CHANGELOG.md."""

from __future__ import annotations

import re

import yaml

from sensorstack import __version__
from tests.integration.ansible_module import ROOT


def test_galaxy_yml_carries_the_package_version() -> None:
    assert yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"] == __version__


def test_the_changelog_starts_with_the_package_version() -> None:
    headings = re.findall(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), flags=re.MULTILINE)
    assert headings and headings[0] == __version__


def test_pyproject_reads_the_version_from_the_package() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in text and 'version = { attr = "sensorstack.__version__" }' in text
