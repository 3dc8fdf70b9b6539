"""The Vagrantfile passes ``vagrant validate``, and validation catches a broken one.

No provider (libvirt, VirtualBox) is needed: ``--ignore-provider`` checks everything but the provider blocks.
Vagrant's state folder goes to a temporary directory, never into the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.tiers import unavailable

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]


def validate(directory: Path, state: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("vagrant") is None:
        if os.environ.get("CI"):
            pytest.fail("vagrant is not installed (apt-get install vagrant)")
        unavailable("integration", "vagrant is not installed (apt-get install vagrant)")
    return subprocess.run(
        ["vagrant", "validate", "--ignore-provider", "--no-tty"],
        env=os.environ | {"VAGRANT_CWD": str(directory), "VAGRANT_DOTFILE_PATH": str(state), **environment},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    content = (ROOT / "Vagrantfile").read_text()
    assert old in content
    directory = tmp_path / "project"
    directory.mkdir()
    (directory / "Vagrantfile").write_text(content.replace(old, new))
    return directory


def test_the_vagrantfile_validates(tmp_path: Path) -> None:
    result = validate(ROOT, tmp_path / ".vagrant")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "validated successfully" in result.stdout


def test_a_misspelled_setting_fails_validation(tmp_path: Path) -> None:
    directory = broken_copy(tmp_path, "config.vm.box = BOX", "config.vm.boks = BOX")
    result = validate(directory, tmp_path / ".vagrant")
    assert result.returncode != 0
    assert "boks" in result.stdout + result.stderr


def test_a_ruby_error_fails_validation(tmp_path: Path) -> None:
    directory = broken_copy(tmp_path, "NODES.each do |name, node|", "NODES.each do |name, node")
    result = validate(directory, tmp_path / ".vagrant")
    assert result.returncode != 0


def test_a_sizing_variable_that_is_not_a_number_is_named(tmp_path: Path) -> None:
    result = validate(ROOT, tmp_path / ".vagrant", SENSORSTACK_VAGRANT_CP_CPUS="two")
    assert result.returncode != 0
    assert "SENSORSTACK_VAGRANT_CP_CPUS" in result.stdout + result.stderr
