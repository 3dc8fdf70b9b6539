"""What the command-line entry points print for a failure of the environment or of a tool they ran: one message
with the tool's own words, an exit status of 1, no traceback."""

from __future__ import annotations

import subprocess
import urllib.error

import pytest

from sensorstack.bundle import __main__ as bundle_main
from sensorstack.errors import describe
from sensorstack.lab import __main__ as lab_main


def test_a_failed_tool_is_named_with_its_exit_status_and_the_end_of_what_it_said() -> None:
    error = subprocess.CalledProcessError(
        1, ["skopeo", "copy", "docker://x"], stderr=b"noise\ntoomanyrequests: rate limit\n"
    )
    assert describe(error) == "skopeo copy docker://x failed (exit status 1):\nnoise\ntoomanyrequests: rate limit"


def test_a_tool_that_said_nothing_is_still_named() -> None:
    assert describe(subprocess.CalledProcessError(125, "docker run x")) == "docker run x failed (exit status 125)"


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (OSError(98, "Address already in use"), "Address already in use"),
        (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")), "Connection refused"),
        (subprocess.CalledProcessError(2, ["gpg", "--dearmor"], stderr="gpg: no valid OpenPGP data found"), "gpg"),
    ],
)
def test_bundle_reports_the_environments_failures_as_a_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], error: BaseException, said: str
) -> None:
    def failing(_args: object) -> int:
        raise error

    monkeypatch.setattr(bundle_main, "run", failing)
    assert bundle_main.main(["verify"]) == 1
    printed = capsys.readouterr().err
    assert printed.startswith("sensorstack bundle: ") and said in printed
    assert "Traceback" not in printed


def test_lab_reports_a_failed_docker_command_with_dockers_words(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def failing(*_args: object, **_kwargs: object) -> list:
        raise subprocess.CalledProcessError(1, ["docker", "ps"], stderr="Cannot connect to the Docker daemon")

    monkeypatch.setattr(lab_main.containers, "lab_containers", failing)
    assert lab_main.main(["status"]) == 1
    assert "Cannot connect to the Docker daemon" in capsys.readouterr().err
