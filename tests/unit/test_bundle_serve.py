"""A detached bundle server's pid file: only the server it names is stopped, a stale one is cleared, and `bundle stop`
at another address names the servers that run."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sensorstack.bundle.__main__ import main as bundle_main
from sensorstack.bundle.serve import (
    DEFAULT_HTTP_PORT,
    BundleServer,
    detached_servers,
    pid_file,
    start_detached,
    stop_detached,
)

ADDRESS, PORT = "127.0.0.1", 18080

pytestmark = pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SENSORSTACK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def unrelated_process() -> Iterator[subprocess.Popen[bytes]]:
    """A live process whose pid a stale pid file names after a reboot."""
    process = subprocess.Popen(["sleep", "30"])
    yield process
    process.kill()
    process.wait()


def leave_pid_file(pid: int) -> Path:
    """A pid file and ready file as a server that crashed (or a reboot) leaves them."""
    pidfile = pid_file(ADDRESS, PORT)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(f"{pid}\n")
    pidfile.with_suffix(".ready").write_text("ready\n")
    return pidfile


def test_a_stale_pid_file_is_removed_and_the_process_it_names_left_running(
    unrelated_process: subprocess.Popen[bytes],
) -> None:
    pidfile = leave_pid_file(unrelated_process.pid)

    stopped = stop_detached(ADDRESS, PORT)

    assert unrelated_process.poll() is None
    assert stopped is False
    assert not pidfile.exists()
    assert not pidfile.with_suffix(".ready").exists()


def test_a_pid_file_naming_an_exited_process_is_removed() -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()
    pidfile = leave_pid_file(finished.pid)

    assert stop_detached(ADDRESS, PORT) is False

    assert not pidfile.exists()
    assert not pidfile.with_suffix(".ready").exists()


def test_starting_a_server_leaves_the_process_a_stale_pid_file_names_running(
    unrelated_process: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    leave_pid_file(unrelated_process.pid)
    not_a_bundle = tmp_path / "empty"
    not_a_bundle.mkdir()

    # The server itself fails (no manifest); its stop step has run by then.
    with pytest.raises(RuntimeError, match="bundle server exited"):
        start_detached(BundleServer(not_a_bundle, ADDRESS, PORT), timeout=60)

    assert unrelated_process.poll() is None


@pytest.fixture
def detached_server() -> Iterator[subprocess.Popen[bytes]]:
    """A process under the command line start_detached gives the server, with its pid file (-c sleeps and leaves
    the rest to sys.argv)."""
    pidfile = pid_file(ADDRESS, PORT)
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; time.sleep(30)",
            "-m",
            "sensorstack.bundle.serve",
            "--ready-file",
            str(pidfile.with_suffix(".ready")),
        ]
    )
    try:
        leave_pid_file(server.pid)
        # Popen returns once exec has begun; the kernel sets the new command line a moment later.
        cmdline = Path(f"/proc/{server.pid}/cmdline")
        deadline = time.monotonic() + 10
        while b"sensorstack.bundle.serve" not in cmdline.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.01)
        yield server
    finally:
        server.kill()
        server.wait()


def test_the_server_a_pid_file_names_is_stopped(detached_server: subprocess.Popen[bytes]) -> None:
    assert stop_detached(ADDRESS, PORT) is True

    assert detached_server.wait(timeout=15) != 0
    assert not pid_file(ADDRESS, PORT).exists()


def test_stop_at_another_address_names_the_servers_that_run_and_stops_none(
    detached_server: subprocess.Popen[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    assert detached_servers() == [(ADDRESS, PORT)]

    assert bundle_main(["stop", "--address", "127.0.0.2"]) == 0

    assert capsys.readouterr().out.splitlines() == [
        f"no server was running at 127.0.0.2:{DEFAULT_HTTP_PORT}",
        f"one runs at {ADDRESS}:{PORT}: sensorstack bundle stop --address {ADDRESS} --port {PORT}",
    ]
    assert detached_server.poll() is None
