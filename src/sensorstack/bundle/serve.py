"""Serve a bundle: its apt repositories and files over HTTP, its images from a local registry.

The HTTP side is Python's own file server, read-only and quiet. The images are pushed into Debian's
``docker-registry`` (the CNCF distribution registry), whose storage lives in the cache, so containerd's
``hosts.toml`` mirrors can send registry.k8s.io, quay.io and docker.io pulls to it. Both listen on one address
only: loopback by default, the lab network's gateway when lab nodes must reach them.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType

from sensorstack.bundle.cache import cache_root
from sensorstack.bundle.manifest import MANIFEST_NAME, read_manifest

DEFAULT_HTTP_PORT = 8080
DEFAULT_REGISTRY_PORT = 5000
SERVER_MODULE = "sensorstack.bundle.serve"


class _QuietHandler(SimpleHTTPRequestHandler):
    """Files only: no directory listings (apt and the roles ask for exact paths), errors logged on stderr."""

    def list_directory(self, path: str | os.PathLike[str]) -> None:  # type: ignore[override]
        self.send_error(404, "No listing")
        return None

    def log_message(self, format: str, *args: object) -> None:
        if args and str(args[1] if len(args) > 1 else "").startswith(("4", "5")):
            super().log_message(format, *args)


def registry_config(address: str, port: int, storage: Path) -> str:
    """A docker-registry configuration: plain HTTP on one address, filesystem storage, no deletes, no auth."""
    return (
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {storage}\n"
        "  delete:\n    enabled: false\n"
        "  maintenance:\n    uploadpurging:\n      enabled: false\n"
        f"http:\n  addr: {address}:{port}\n"
    )


def url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def wait_for_url(url: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status < 400:
                    return
        except (urllib.error.URLError, OSError) as error:
            last_error = str(error)
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s ({last_error})")


@dataclass
class BundleServer:
    bundle: Path
    address: str = "127.0.0.1"
    http_port: int = DEFAULT_HTTP_PORT
    registry_port: int = DEFAULT_REGISTRY_PORT
    registry_storage: Path | None = None
    _http: ThreadingHTTPServer | None = field(default=None, init=False, repr=False)
    _registry: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _config_dir: Path | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{url_host(self.address)}:{self.http_port}"

    @property
    def registry(self) -> str:
        return f"{url_host(self.address)}:{self.registry_port}"

    def start(self) -> None:
        manifest = read_manifest(self.bundle)
        try:
            self._start_http()
            self._start_registry()
            if any(artifact.kind == "image" for artifact in manifest.artifacts):
                from sensorstack.bundle.images import push_images

                push_images(self.bundle, self.registry)
        except BaseException:
            self.stop()
            raise

    def _start_http(self) -> None:
        handler = functools.partial(_QuietHandler, directory=str(self.bundle))
        self._http = ThreadingHTTPServer((self.address, self.http_port), handler)
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, name="bundle-http", daemon=True).start()

    def _start_registry(self) -> None:
        binary = shutil.which("docker-registry")
        if binary is None:
            raise RuntimeError("docker-registry is not installed (apt-get install docker-registry)")
        storage = self.registry_storage or default_registry_storage(self.bundle)
        storage.mkdir(parents=True, exist_ok=True)
        self._config_dir = Path(tempfile.mkdtemp(prefix="sensorstack-registry-"))
        config = self._config_dir / "config.yml"
        config.write_text(registry_config(self.address, self.registry_port, storage))
        # The registry logs every 404 of a push's blob probes as an error: keep that out of the terminal.
        log = storage.parent / f"{storage.name}.log"
        with log.open("ab") as output:
            self._registry = subprocess.Popen(
                [binary, "serve", str(config)], stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT
            )
        wait_for_url(f"http://{self.registry}/v2/", timeout=30, process=self._registry)

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._registry is not None:
            self._registry.terminate()
            try:
                self._registry.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._registry.kill()
                self._registry.wait()
            self._registry = None
        if self._config_dir is not None:
            shutil.rmtree(self._config_dir, ignore_errors=True)
            self._config_dir = None

    def __enter__(self) -> BundleServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def default_registry_storage(bundle: Path) -> Path:
    """Registry storage in the cache, one per bundle content: a restart of `serve` pushes nothing again."""
    manifest_hash = hashlib.sha256((bundle / MANIFEST_NAME).read_bytes()).hexdigest()[:12]
    return cache_root() / "registry" / manifest_hash


def pid_file(address: str, http_port: int) -> Path:
    return cache_root() / "serve" / f"{address}-{http_port}.pid"


def ready_file_of(pidfile: Path) -> Path:
    return pidfile.with_suffix(".ready")


def read_pid(pidfile: Path) -> int:
    """The pid a pid file names, 0 when it names none (empty or garbled by a crash)."""
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return 0


def is_detached_server(pid: int, pidfile: Path) -> bool:
    """Whether pid is the server start_detached started for this pid file.

    A pid file outlives a crash or a reboot, and by then its pid may belong to any process: only the command line
    start_detached gave the server (the module and this pid file's ready file) makes it ours to signal.
    """
    if pid <= 0:
        return False
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:  # gone, or not ours to look at
        return False
    return has_consecutive(arguments, ["-m", SERVER_MODULE]) and has_consecutive(
        arguments, ["--ready-file", str(ready_file_of(pidfile))]
    )


def has_consecutive(arguments: list[str], expected: list[str]) -> bool:
    """Whether expected appears in arguments as consecutive items."""
    return any(arguments[index : index + len(expected)] == expected for index in range(len(arguments)))


def serve_forever(server: BundleServer, ready_file: Path | None = None) -> int:
    """Serve until SIGTERM or SIGINT; ready_file (for `serve --detach`) exists while both sides answer."""
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with server:
        if ready_file is not None:
            ready_file.write_text("ready\n")
        print(f"serving {server.bundle}: files and apt at {server.url}/, images at {server.registry}", flush=True)
        stopping.wait()
    if ready_file is not None:
        ready_file.unlink(missing_ok=True)
    return 0


def start_detached(server: BundleServer, timeout: float = 600) -> int:
    """Run the server in its own session; return its pid once both sides answer (images pushed)."""
    pidfile = pid_file(server.address, server.http_port)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    stop_detached(server.address, server.http_port)
    log = pidfile.with_suffix(".log")
    ready = ready_file_of(pidfile)
    command = [
        sys.executable,
        "-m",
        SERVER_MODULE,
        str(server.bundle),
        "--address",
        server.address,
        "--port",
        str(server.http_port),
        "--registry-port",
        str(server.registry_port),
        "--ready-file",
        str(ready),
    ]
    ready.unlink(missing_ok=True)
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    pidfile.write_text(f"{process.pid}\n")
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if process.poll() is not None:
            raise RuntimeError(f"bundle server exited with status {process.returncode}; see {log}")
        if time.monotonic() > deadline:
            process.terminate()
            raise TimeoutError(f"bundle server not ready within {timeout:.0f} s; see {log}")
        time.sleep(0.3)
    return process.pid


def is_detached_running(address: str, http_port: int) -> bool:
    """A server started by start_detached for this address and port is alive and was ready."""
    pidfile = pid_file(address, http_port)
    if not ready_file_of(pidfile).is_file():
        return False
    return is_detached_server(read_pid(pidfile), pidfile)


def detached_servers() -> list[tuple[str, int]]:
    """(address, HTTP port) of every server start_detached started that still runs, from their pid files."""
    running = []
    for pidfile in sorted((cache_root() / "serve").glob("*.pid")):
        address, _, port = pidfile.stem.rpartition("-")
        if port.isdigit() and is_detached_server(read_pid(pidfile), pidfile):
            running.append((address, int(port)))
    return running


def stop_detached(address: str, http_port: int) -> bool:
    """Stop the server start_detached started here; whether one was running. A stale pid file is only removed."""
    pidfile = pid_file(address, http_port)
    pid = read_pid(pidfile)
    running = is_detached_server(pid, pidfile)
    if running:
        terminate(pid, pidfile)
    pidfile.unlink(missing_ok=True)
    ready_file_of(pidfile).unlink(missing_ok=True)
    return running


def terminate(pid: int, pidfile: Path, grace: float = 10) -> None:
    """SIGTERM the server, then SIGKILL it if it is still there after grace seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        # An exited server waiting to be reaped has no command line any more: it is gone.
        while is_detached_server(pid, pidfile):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sensorstack.bundle.serve")
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_HTTP_PORT)
    parser.add_argument("--registry-port", type=int, default=DEFAULT_REGISTRY_PORT)
    parser.add_argument("--ready-file", type=Path)
    args = parser.parse_args(argv)
    server = BundleServer(args.bundle.resolve(), args.address, args.port, args.registry_port)
    return serve_forever(server, args.ready_file)


if __name__ == "__main__":
    sys.exit(main())
