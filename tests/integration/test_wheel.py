"""sensorstack as users install it: the wheel, in a fresh virtualenv outside the checkout, run from an empty folder.

The wheel is built from this checkout with the test venv's build backend and installed with no network, from the
wheelhouse `make setup` fills (scripts/fill-wheelhouse). Then, from an empty folder: `--version`, `init` of the
sample inventory, and `inventory validate` and `deploy` of a lab container (InfluxDB alone on an edge host, as
test_cli.py deploys it), which finds the playbooks, the roles and every collection where pip put them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml

from sensorstack import __version__
from sensorstack.wheelhouse import wheelhouse_dir
from tests.tiers import unavailable

from .ansible_module import ROOT
from .conftest import influxdb_edge_inventory

INFLUXDB_ADMIN_PASSWORD = "Wheel-Test-Admin-4410"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin folder of a fresh venv with the built wheel installed offline."""
    wheelhouse = wheelhouse_dir(ROOT)
    if not (wheelhouse / "COMPLETE").is_file():
        unavailable("integration", f"no wheelhouse at {wheelhouse}: run `make wheelhouse` (scripts/fill-wheelhouse)")
    workdir = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir",
         str(workdir / "dist"), str(ROOT)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (wheel,) = (workdir / "dist").glob("sensorstack-*.whl")
    venv.create(workdir / "venv", with_pip=True)
    bin_dir = workdir / "venv/bin"
    install = subprocess.run(
        [str(bin_dir / "pip"), "install", "--quiet", "--no-index", "--find-links", str(wheelhouse), str(wheel)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    return bin_dir


def sensorstack(bin_dir: Path, cwd: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """The installed command, with nothing of the checkout or the test venv in its environment."""
    environment = {
        "PATH": f"{bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(cwd / "home"),
        "LANG": "C.UTF-8",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [str(bin_dir / "sensorstack"), *args], cwd=cwd, env=environment, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


@pytest.fixture
def empty_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def test_the_version_is_the_one_of_the_checkout(installed: Path, empty_folder: Path) -> None:
    result = sensorstack(installed, empty_folder, "--version")
    assert result.stdout.strip() == f"sensorstack {__version__}", result.stdout + result.stderr


def test_init_writes_the_sample_inventory_and_never_over_a_folder_in_use(installed: Path, empty_folder: Path) -> None:
    result = sensorstack(installed, empty_folder, "init", "my-inventory")
    assert result.returncode == 0, result.stdout + result.stderr
    written = empty_folder / "my-inventory"
    assert (written / "hosts.yml").read_text() == (ROOT / "inventories/lab/hosts.yml").read_text()
    assert {path.name for path in (written / "group_vars/all").iterdir()} == {
        path.name for path in (ROOT / "inventories/lab/group_vars/all").iterdir()
    }
    again = sensorstack(installed, empty_folder, "init", "my-inventory")
    assert again.returncode != 0 and "is not an empty folder" in again.stdout


def test_without_an_inventory_the_installed_command_says_how_to_get_one(installed: Path, empty_folder: Path) -> None:
    result = sensorstack(installed, empty_folder, "inventory", "validate")
    assert result.returncode != 0
    assert "sensorstack init DIR" in result.stdout


def lab_inventory(folder: Path, container: str) -> Path:
    inventory = folder / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(yaml.safe_dump(influxdb_edge_inventory("wheel-edge", container)))
    (inventory / "group_vars/edge.yml").write_text(
        yaml.safe_dump({"influxdb_admin_password": INFLUXDB_ADMIN_PASSWORD, "influxdb_databases": [{"name": "lab"}]})
    )
    return inventory


def test_the_installed_command_validates_and_deploys_a_lab_host_from_an_empty_folder(
    installed: Path, empty_folder: Path, lab_host_factory
) -> None:
    inventory = lab_inventory(empty_folder, lab_host_factory("wheel-edge", "debian12"))
    validate = sensorstack(installed, empty_folder, "inventory", "validate", "-i", "inventory")
    assert validate.returncode == 0, validate.stdout + validate.stderr
    # Doctor finds the collections where the runs do (site-packages), and the lab host.
    doctor = sensorstack(installed, empty_folder, "doctor", "-i", str(inventory))
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    deploy = sensorstack(installed, empty_folder, "deploy", "-i", str(inventory), "--json")
    assert deploy.returncode == 0, deploy.stdout[-4000:] + deploy.stderr[-4000:]
    report = json.loads(deploy.stdout)
    assert report["status"] == "successful" and report["recap"]["wheel-edge"]["failed"] == 0, report
    assert any(change["task"].startswith("Ensure the declared databases") for change in report["changed"]), report
    assert INFLUXDB_ADMIN_PASSWORD not in deploy.stdout + deploy.stderr
