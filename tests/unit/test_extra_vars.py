"""The -e values of the CLI as ansible-playbook reads them, and how a run passes them on: key=value pairs stay strings
and travel in private files, variable files by their path (so vault-encrypted ones work), later values win, and an
error never repeats a value. Also what a run keeps of the environment, the exit code of a run that reached no host,
and a looped task's diff."""

from __future__ import annotations

import json
import os
import shlex
import stat
from pathlib import Path

import pytest

from sensorstack.events import HostRecap, RunResult, RunStatus
from sensorstack.extra_vars import extra_var, parse_extra_vars
from sensorstack.report import EXIT_ERROR, EXIT_FAILED_HOSTS, EXIT_OK, exit_code
from sensorstack.runner import extra_vars_arguments, keep_own_environment, result_diff

SECRET = "0777 s3cr3t"
VAULTED = "$ANSIBLE_VAULT;1.1;AES256\n6162636465666768\n"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("pw=0777", {"pw": "0777"}),
        ("flag=yes", {"flag": "yes"}),
        ("pw=@dm1n", {"pw": "@dm1n"}),
        ("a=1 b=2", {"a": "1", "b": "2"}),
        ("pw='a b: c #1'", {"pw": "a b: c #1"}),
        ("empty=", {"empty": ""}),
        ('{"replicas": 2, "names": ["a"]}', {"replicas": 2, "names": ["a"]}),
    ],
    ids=["octal-looking", "boolean-looking", "at sign", "two pairs", "quoted with spaces", "empty", "inline JSON"],
)
def test_each_value_is_read_as_ansible_playbook_reads_it(value: str, expected: dict) -> None:
    assert parse_extra_vars([value]) == [expected]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (f"pw={SECRET}", "-e number 1 is not key=value, @FILE or a YAML/JSON mapping"),
        (SECRET, "-e number 1 is not key=value"),
        ("{pw: [" + SECRET, "-e number 1 starts like YAML or JSON but is not valid YAML"),
        ("[" + SECRET + "]", "-e number 1 must be a mapping of variables"),
    ],
    ids=["spaces unquoted", "no key", "broken YAML", "a list"],
)
def test_a_bad_value_is_named_by_its_position_and_never_shown(value: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_extra_vars([value])
    assert str(raised.value).startswith(message)
    assert "s3cr3t" not in str(raised.value)


def test_a_variable_file_stays_a_file_for_ansible_playbook_to_read(tmp_path: Path) -> None:
    vaulted = tmp_path / "secrets.yml"
    vaulted.write_text(VAULTED)
    assert parse_extra_vars([f"@{vaulted}"]) == [vaulted.resolve()]
    with pytest.raises(ValueError, match="no such file"):
        parse_extra_vars([f"@{tmp_path / 'missing.yml'}"])


def test_the_last_layer_that_sets_a_variable_gives_its_value(tmp_path: Path) -> None:
    plain, vaulted = tmp_path / "plain.yml", tmp_path / "vaulted.yml"
    plain.write_text("group: from_file\n")
    vaulted.write_text(VAULTED)
    layers = parse_extra_vars(["group=first", f"@{plain}", f"@{vaulted}", "other=x"])
    assert extra_var(layers, "group") == "from_file"
    assert extra_var(layers, "missing") is None


def test_the_layers_reach_ansible_playbook_in_order_with_no_value_on_the_command_line(tmp_path: Path) -> None:
    variables = tmp_path / "site vars.yml"
    variables.write_text("a: 1\n")
    private = tmp_path / "private"
    private.mkdir()
    layers = [*parse_extra_vars([f"pw={SECRET!r}".replace('"', "'"), f"@{variables}"]), {}, {"render": "dir"}]
    arguments = extra_vars_arguments(layers, private)
    assert arguments == [
        "-e",
        f"@{private / 'extra-vars-0.json'}",
        "-e",
        f"@{variables.resolve()}",
        "-e",
        f"@{private / 'extra-vars-3.json'}",
    ]
    assert "s3cr3t" not in " ".join(arguments)
    written = private / "extra-vars-0.json"
    assert json.loads(written.read_text()) == {"pw": SECRET}
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    # A path with a space survives ansible-runner's split of the command line.
    assert shlex.split(shlex.join(arguments)) == arguments


def test_the_command_artifact_keeps_only_the_environment_sensorstack_set(tmp_path: Path) -> None:
    command = tmp_path / "command"
    environment = {"ANSIBLE_CONFIG": "/repo/ansible.cfg", "GITHUB_TOKEN": "user-token", "HOME": os.environ["HOME"]}
    command.write_text(json.dumps({"command": ["ansible-playbook"], "cwd": "/repo", "env": environment}))
    keep_own_environment(command, {"ANSIBLE_CONFIG": "/repo/ansible.cfg"})
    assert json.loads(command.read_text()) == {
        "command": ["ansible-playbook"],
        "cwd": "/repo",
        "env": {"ANSIBLE_CONFIG": "/repo/ansible.cfg"},
    }
    keep_own_environment(tmp_path / "never written", {})  # a run that never started: nothing to do


@pytest.mark.parametrize(
    ("status", "recap", "error", "expected"),
    [
        (RunStatus.SUCCESSFUL, {"h": HostRecap(ok=3)}, "", EXIT_OK),
        (RunStatus.FAILED, {"h": HostRecap(failed=1)}, "", EXIT_FAILED_HOSTS),
        (RunStatus.FAILED, {}, "ERROR! Attempting to decrypt but no vault secrets found", EXIT_ERROR),
        (RunStatus.SUCCESSFUL, {}, "no host of the inventory ran any play", EXIT_ERROR),
    ],
    ids=["converged", "a host failed", "stopped before any host", "no host matched"],
)
def test_a_run_that_reached_no_host_is_bad_input_not_a_failed_host(
    status: RunStatus, recap: dict, error: str, expected: int
) -> None:
    result = RunResult(playbook="site.yml", status=status, rc=0, recap=recap, error=error)
    assert exit_code(result) == expected


def test_a_looped_tasks_diff_is_each_items_own() -> None:
    # Ansible keeps a loop's diffs per item; the loop's own result has none.
    looped = {
        "changed": True,
        "results": [
            {"item": "a.json", "_ansible_item_label": "a.json", "diff": {"before": "1", "after": "2"}},
            {"item": "b.json", "diff": {}},
        ],
    }
    assert result_diff(looped) == [{"item": "a.json", "diff": {"before": "1", "after": "2"}}]
    assert result_diff({"diff": {"before": "x", "after": "y"}}) == {"before": "x", "after": "y"}
    assert result_diff({"changed": True}) is None
