"""What ansible-runner's environment for a sensorstack run holds, read back from ansible-runner's own configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_runner.config.runner import RunnerConfig

from sensorstack.runner import runner_environment

ROOT = Path(__file__).resolve().parents[2]


def _prepared_environment(private: Path) -> dict[str, str]:
    config = RunnerConfig(
        private_data_dir=str(private), playbook="site.yml", project_dir=str(ROOT), envvars=runner_environment(ROOT)
    )
    config.prepare()
    return config.env


def test_a_run_checks_ssh_host_keys_as_ansible_cfg_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # ansible-runner turns host key checking off for any environment that does not name it.
    monkeypatch.delenv("ANSIBLE_HOST_KEY_CHECKING", raising=False)
    assert _prepared_environment(tmp_path)["ANSIBLE_HOST_KEY_CHECKING"] == "True"


def test_an_operator_who_turns_host_key_checking_off_is_heard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANSIBLE_HOST_KEY_CHECKING", "False")
    assert _prepared_environment(tmp_path)["ANSIBLE_HOST_KEY_CHECKING"] == "False"
