"""The docker and containerd argument specs mirror the roles' defaults: same variables, same default values."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.unit.role_files import RoleFiles

ROLES = Path(__file__).resolve().parents[2] / "roles"


@pytest.mark.parametrize("role", ["docker", "containerd"])
def test_every_default_is_specified_with_the_same_value(role: str) -> None:
    assert RoleFiles.load(role).spec_problems() == []


@pytest.mark.parametrize("role", ["docker", "containerd"])
def test_every_variable_carries_the_role_prefix(role: str) -> None:
    for path in (ROLES / role).glob("*/*.yml"):
        if path.parent.name in ("defaults", "vars"):
            assert all(name.startswith(f"{role}_") for name in yaml.safe_load(path.read_text())), path
