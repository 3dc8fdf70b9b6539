"""An inventory whose variables are vaulted: doctor reads it with --vault-password-file, as deploy does."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible.constants import DEFAULT_VAULT_ID_MATCH
from ansible.parsing.vault import VaultLib, VaultSecret

from sensorstack import cli
from sensorstack.inventory import connections, hostvars

PASSWORD = "vault-password-of-the-test"


@pytest.fixture
def vaulted_inventory(tmp_path: Path) -> Path:
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text("all:\n  hosts:\n    gateway1:\n      ansible_connection: local\n")
    vault = VaultLib([(DEFAULT_VAULT_ID_MATCH, VaultSecret(PASSWORD.encode()))])
    (inventory / "group_vars/all.yml").write_bytes(vault.encrypt("influxdb_admin_password: s3cret\n"))
    return inventory


def test_a_vaulted_inventory_is_read_with_the_password_file(vaulted_inventory: Path, tmp_path: Path) -> None:
    password_file = tmp_path / "vault-password"
    password_file.write_text(PASSWORD + "\n")
    assert hostvars(vaulted_inventory, password_file)["gateway1"]["influxdb_admin_password"] == "s3cret"
    assert connections(vaulted_inventory, password_file) == {"gateway1": "local"}


def test_without_the_password_file_the_error_names_the_inventory(vaulted_inventory: Path) -> None:
    with pytest.raises(ValueError, match=f"cannot read inventory {vaulted_inventory}"):
        hostvars(vaulted_inventory)


def test_doctor_takes_the_vault_password_file() -> None:
    args = cli.build_parser().parse_args(["doctor", "-i", "inv", "--vault-password-file", "pw"])
    assert args.vault_password_file == Path("pw")
