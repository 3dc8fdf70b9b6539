"""The sensorstack CLI and API driving real lab containers: deploy, no-op rerun, drift, exit codes, Ctrl-C, secrets.

One edge host runs the stack (InfluxDB with vault-encrypted passwords), so secrets really flow through modules.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sensorstack.events import HostResult, PlayStarted, TaskStarted
from sensorstack.lab.containers import LAB_CONNECTION
from sensorstack.runner import RunRequest, run_playbook

from .ansible_module import ROOT, ansible_environment
from .conftest import influxdb_edge_inventory

SECRETS = {
    "influxdb_admin_password": "Vault-Admin-Secret-7731",
    "telegraf_password": "Vault-Telegraf-Secret-5519",
}
VAULT_PASSWORD = "cli-test-vault-password"
CLI = [sys.executable, "-m", "sensorstack.cli"]


@pytest.fixture(scope="module")
def lab(lab_host_factory, tmp_path_factory) -> dict[str, Path | str]:
    container = lab_host_factory("cli-edge", "debian12")
    workdir = tmp_path_factory.mktemp("cli")
    inventory = workdir / "inventory"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(yaml.safe_dump(influxdb_edge_inventory("cli-edge", container)))
    vault_password_file = workdir / "vault-password"
    vault_password_file.write_text(VAULT_PASSWORD)
    vault_password_file.chmod(0o600)
    secrets_file = inventory / "group_vars" / "all" / "vault.yml"
    secrets_file.write_text(yaml.safe_dump(SECRETS))
    subprocess.run(
        ["ansible-vault", "encrypt", "--vault-password-file", str(vault_password_file), str(secrets_file)],
        env=ansible_environment(),
        check=True,
        capture_output=True,
    )
    (inventory / "group_vars" / "edge.yml").write_text(
        yaml.safe_dump(
            {
                "influxdb_databases": [{"name": "telemetry"}],
                "influxdb_users": [
                    {
                        "name": "telegraf",
                        "password": "{{ telegraf_password }}",
                        "grants": [{"database": "telemetry", "privilege": "write"}],
                    }
                ],
            }
        )
    )
    return {"container": container, "inventory": inventory, "vault": vault_password_file, "workdir": workdir}


# A token of the user's own environment, which ansible-runner records in a run's artifacts unless sensorstack drops it.
USER_TOKEN = "user-token-2f9c41d7"


def cli(*args: str, lab: dict, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    state_home = Path(lab["workdir"]) / "state"
    return subprocess.run(
        [*CLI, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ansible_environment(XDG_STATE_HOME=str(state_home), COLUMNS="200", GITHUB_TOKEN=USER_TOKEN),
    )


class ArgvWatcher:
    """Collects the command lines of every process on the machine while a run goes on."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            for entry in Path("/proc").iterdir():
                try:
                    self.seen.add((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
                except OSError:
                    continue
            time.sleep(0.1)

    def __enter__(self) -> ArgvWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def first_deploy(lab) -> Iterator[tuple[subprocess.CompletedProcess[str], ArgvWatcher]]:
    with ArgvWatcher() as watcher:
        result = cli(
            "deploy", "--json", "-i", str(lab["inventory"]), "--vault-password-file", str(lab["vault"]), lab=lab
        )
    yield result, watcher


def test_deploy_converges_and_reports_json(first_deploy) -> None:
    result, _watcher = first_deploy
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "successful"
    assert report["playbook"] == "site.yml"
    assert report["recap"]["cli-edge"]["failed"] == 0
    assert report["changed_count"] > 0
    assert {"play", "task", "host", "diff"} <= set(report["changed"][0])
    assert any(change["task"].startswith("Ensure the declared databases") for change in report["changed"])


def test_secrets_never_leave_the_run(first_deploy, lab) -> None:
    result, watcher = first_deploy
    report = json.loads(result.stdout)
    artifact_dir = Path(report["artifact_dir"])
    assert stat.S_IMODE(artifact_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(artifact_dir.parent.stat().st_mode) == 0o700
    artifacts = "".join(path.read_text(errors="replace") for path in artifact_dir.rglob("*") if path.is_file())
    assert "Ensure the declared databases" in artifacts, "the artifacts hold the run's events"
    for secret in [*SECRETS.values(), VAULT_PASSWORD]:
        assert secret not in result.stdout
        assert secret not in result.stderr
        assert secret not in artifacts
        assert not [argv for argv in watcher.seen if secret in argv]
    assert any("ansible-playbook" in argv for argv in watcher.seen), "the watcher saw the run"
    # The run's command artifact keeps the environment sensorstack set, not the user's.
    assert USER_TOKEN not in artifacts
    assert "ANSIBLE_CONFIG" in json.loads((artifact_dir / "command").read_text())["env"]


def test_a_rerun_reports_no_change(first_deploy, lab) -> None:
    result = cli("deploy", "--json", "-i", str(lab["inventory"]), "--vault-password-file", str(lab["vault"]), lab=lab)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["changed_count"] == 0
    assert report["changed"] == []


def test_check_finds_a_drift_made_by_hand_and_exits_4(first_deploy, lab) -> None:
    subprocess.run(["docker", "exec", lab["container"], "rm", "/etc/modules-load.d/sensorstack.conf"], check=True)
    result = cli("check", "--json", "-i", str(lab["inventory"]), "--vault-password-file", str(lab["vault"]), lab=lab)
    assert result.returncode == 4, result.stdout + result.stderr
    drift = [change["task"] for change in json.loads(result.stdout)["changed"]]
    assert drift == ["Ensure the kernel modules load at boot"]
    still_gone = subprocess.run(
        ["docker", "exec", lab["container"], "test", "-e", "/etc/modules-load.d/sensorstack.conf"]
    )
    assert still_gone.returncode != 0, "check mode changed the host"
    human = cli("check", "-i", str(lab["inventory"]), "--vault-password-file", str(lab["vault"]), lab=lab)
    assert human.returncode == 4
    assert "Drift: 1 task(s) would change something" in human.stdout
    assert "sensorstack deploy" in human.stdout
    repaired = cli("deploy", "-q", "-i", str(lab["inventory"]), "--vault-password-file", str(lab["vault"]), lab=lab)
    assert repaired.returncode == 0


def test_with_mitogen_check_finds_a_drift_and_deploy_repairs_only_it(first_deploy, lab) -> None:
    """--mitogen: the same drift found in check mode and repaired, modules run in Mitogen's interpreter on the host,
    and the vaulted secrets stay off every command line there too."""
    options = ["--json", "-i", str(lab["inventory"]), "--vault-password-file", str(lab["vault"]), "--mitogen"]
    subprocess.run(["docker", "exec", lab["container"], "rm", "/etc/modules-load.d/sensorstack.conf"], check=True)
    with ArgvWatcher() as watcher:
        check = cli("check", *options, lab=lab)
        repaired = cli("deploy", *options, lab=lab)
    assert check.returncode == 4, check.stdout + check.stderr
    assert [change["task"] for change in json.loads(check.stdout)["changed"]] == [
        "Ensure the kernel modules load at boot"
    ]
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    report = json.loads(repaired.stdout)
    assert [change["task"] for change in report["changed"]] == ["Ensure the kernel modules load at boot"]
    in_container = subprocess.run(
        ["docker", "exec", lab["container"], "test", "-s", "/etc/modules-load.d/sensorstack.conf"]
    )
    assert in_container.returncode == 0
    # Mitogen names its interpreter on the host in its command line: python3(mitogen:user@host:pid).
    assert any("(mitogen:" in argv for argv in watcher.seen), "no Mitogen interpreter ran"
    for secret in [*SECRETS.values(), VAULT_PASSWORD]:
        assert not [argv for argv in watcher.seen if secret in argv]


def write_playbook(directory: Path, tasks: list[dict]) -> Path:
    path = directory / "play.yml"
    path.write_text(yaml.safe_dump([{"name": "Test play", "hosts": "all", "gather_facts": False, "tasks": tasks}]))
    return path


def test_failed_hosts_exit_2_and_say_what_failed(lab, tmp_path) -> None:
    playbook = write_playbook(tmp_path, [{"name": "Fail on purpose", "ansible.builtin.fail": {"msg": "boom-77"}}])
    result = cli("run", str(playbook), "-i", str(lab["inventory"]), "--vault-password-file", str(lab["vault"]), lab=lab)
    assert result.returncode == 2
    assert "boom-77" in result.stdout
    assert "Failed: cli-edge" in result.stdout


def test_a_failed_loop_item_is_named_with_its_own_message(lab, tmp_path) -> None:
    task = {
        "name": "Check each item",
        "ansible.builtin.assert": {"that": "item != 'bad-item'", "fail_msg": "item {{ item }} is refused-42"},
        "loop": ["good-item", "bad-item"],
    }
    playbook = write_playbook(tmp_path, [task])
    options = ("-i", str(lab["inventory"]), "--vault-password-file", str(lab["vault"]))
    result = cli("run", str(playbook), *options, lab=lab)
    assert result.returncode == 2
    assert "bad-item is refused-42" in " ".join(result.stdout.split()), result.stdout
    report = json.loads(cli("run", str(playbook), "--json", *options, lab=lab).stdout)
    (failure,) = report["failures"]
    assert "bad-item: item bad-item is refused-42" in failure["message"], failure


def test_a_playbook_level_error_is_shown(lab, tmp_path) -> None:
    """Without the vault password no host runs at all: the operator must still see why."""
    playbook = write_playbook(tmp_path, [{"name": "Ping", "ansible.builtin.ping": {}}])
    result = cli("run", str(playbook), "--json", "-i", str(lab["inventory"]), lab=lab)
    # Not a host's failure: exit 1, as for any other bad input.
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert "vault" in report["error"].lower(), report["error"]


def test_unreachable_hosts_exit_3_and_point_at_doctor(lab, tmp_path) -> None:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        # ssh to a closed port on loopback: refused at once, and no traffic leaves the machine.
                        "ghost": {
                            "ansible_connection": "ssh",
                            "ansible_host": "127.0.0.1",
                            "ansible_port": 1,
                        }
                    }
                }
            }
        )
    )
    playbook = write_playbook(tmp_path, [{"name": "Ping", "ansible.builtin.ping": {}}])
    result = cli("run", str(playbook), "-i", str(inventory), lab=lab)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Unreachable: ghost" in result.stdout
    assert "sensorstack doctor" in result.stdout


def test_a_stopped_lab_container_is_named_in_the_failure(lab, tmp_path) -> None:
    inventory = tmp_path / "hosts.yml"
    ghost = {"ansible_connection": LAB_CONNECTION, "ansible_host": "sensorstack-test-no-such-container"}
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"ghost": ghost}}}))
    playbook = write_playbook(tmp_path, [{"name": "Ping", "ansible.builtin.ping": {}}])
    result = cli("run", str(playbook), "--json", "-i", str(inventory), lab=lab)
    # The docker connection pipes the module into `docker exec`, which reports the missing container as a failure.
    assert result.returncode in (2, 3), result.stdout + result.stderr
    (failure,) = json.loads(result.stdout)["failures"]
    assert "No such container: sensorstack-test-no-such-container" in failure["message"], failure


def start_long_run(lab: dict, tmp_path: Path, *options: str) -> tuple[subprocess.Popen[str], Path]:
    """The CLI running a playbook that sleeps for two minutes on the lab host, 8 s into the run; its temporary files
    go to tmp_path/tmp, apart from other tests' runs."""
    (tmp_path / "tmp").mkdir()
    playbook = write_playbook(
        tmp_path, [{"name": "Take a long time", "ansible.builtin.command": "sleep 120", "changed_when": False}]
    )
    process = subprocess.Popen(
        [*CLI, "run", str(playbook), "-i", str(lab["inventory"]), "--vault-password-file", str(lab["vault"]), *options],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ansible_environment(XDG_STATE_HOME=str(tmp_path / "state"), TMPDIR=str(tmp_path / "tmp")),
    )
    time.sleep(8)
    return process, playbook


def ansible_playbook_left_behind(playbook: Path) -> list[str]:
    processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()
    return [line for line in processes if str(playbook) in line and "ansible-playbook" in line]


@pytest.mark.parametrize("strategy", [[], ["--mitogen"]], ids=["ansible", "mitogen"])
def test_ctrl_c_stops_the_run_cleanly(strategy: list[str], lab, tmp_path) -> None:
    """Ctrl-C pressed twice, as impatient people do: the run stops and leaves no process of its own behind (Mitogen's
    multiplexer, in a session of its own, used to outlive it)."""
    process, playbook = start_long_run(lab, tmp_path, *strategy)
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    assert time.monotonic() - started < 30
    assert "cancelled" in output
    assert not ansible_playbook_left_behind(playbook)


def test_a_sigterm_stops_the_run_and_removes_its_private_files(lab, tmp_path) -> None:
    """timeout(1), a CI job's cancel and systemctl stop send SIGTERM: the run stops as on Ctrl-C, and the private
    folder that held its extra variables is gone."""
    process, playbook = start_long_run(lab, tmp_path, "-e", "probe=1")
    assert list((tmp_path / "tmp").glob("sensorstack-run-*")), "the run keeps its extra variables in a private folder"
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    assert not list((tmp_path / "tmp").glob("sensorstack-run-*"))
    assert not ansible_playbook_left_behind(playbook)


def test_an_inventory_that_does_not_exist_is_named_before_anything_runs(lab, tmp_path) -> None:
    result = cli("verify", "-i", str(tmp_path / "inventoires"), lab=lab)
    assert result.returncode == 1
    assert f"-i {tmp_path / 'inventoires'}: no such inventory" in " ".join(result.stdout.split())


def test_a_playbook_whose_plays_match_no_host_is_an_error(lab, tmp_path) -> None:
    playbook = tmp_path / "elsewhere.yml"
    playbook.write_text(yaml.safe_dump([{"name": "Nowhere", "hosts": "no_such_group", "tasks": []}]))
    options = ["--json", "-i", str(lab["inventory"]), "--vault-password-file", str(lab["vault"])]
    result = cli("run", str(playbook), *options, lab=lab)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no host of the inventory ran any play" in json.loads(result.stdout)["error"]


def test_the_api_streams_typed_events(lab, tmp_path) -> None:
    playbook = write_playbook(tmp_path, [{"name": "Say hello", "ansible.builtin.command": "true"}])
    events = []
    result = run_playbook(
        RunRequest(
            playbook=str(playbook),
            inventory=Path(lab["inventory"]),
            vault_password_file=Path(lab["vault"]),
            artifacts_root=tmp_path / "runs",
        ),
        on_event=events.append,
    )
    assert result.status.value == "successful"
    assert [type(event) for event in events[:2]] == [PlayStarted, TaskStarted]
    [host_result] = [event for event in events if isinstance(event, HostResult)]
    assert (host_result.host, host_result.task, host_result.status.value) == ("cli-edge", "Say hello", "changed")
    assert result.changed[0].task == "Say hello"
    assert os.path.isdir(result.artifact_dir)
