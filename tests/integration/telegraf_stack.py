"""Real daemons on loopback for the data-path tests and the pipeline benchmark: Debian's mosquitto, the Telegraf
that scripts/build-telegraf builds, and Debian's influxd (tests/integration/influxdb_server.py).

The Telegraf configuration and environment file are the telegraf role's own: ``render_role_config`` runs the role's
``tasks/render.yml`` through ansible-playbook on localhost and returns what it rendered, so a test runs exactly
what the role would place on a host. Telegraf is started the way the role's configuration check starts it: the
environment file loaded by ``sh`` (``set -a``), never secrets in arguments.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ansible_collections.sensorstack.iot.plugins.module_utils.mosquitto_passwd import hash_password

from .ansible_module import ROOT, free_port, run_local_play

BUILD_SCRIPT = ROOT / "scripts/build-telegraf"
MOSQUITTO = shutil.which("mosquitto", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/local/sbin")
INFLUXD = shutil.which("influxd", path=f"{os.environ.get('PATH', '')}:/usr/bin:/usr/sbin")
# Run as root, the broker drops to its own account, which must then read its files.
BROKER_ACCOUNT = "mosquitto"
# Loads the environment file like the role's configuration check, then runs the rest of the arguments.
WITH_ENVIRONMENT = 'set -a; . "$1" || exit 1; set +a; shift; exec "$@"'


def telegraf_binary() -> str:
    """The cached test build of Telegraf (built first if missing, which takes minutes)."""
    result = subprocess.run([str(BUILD_SCRIPT)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"scripts/build-telegraf failed:\n{result.stderr}")
    return result.stdout.strip()


def wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            probe.settimeout(0.2)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}: {log.read_text()}")
        time.sleep(0.05)
    raise TimeoutError(f"nothing answers on port {port} after {timeout} s: {log.read_text()}")


@dataclass
class MosquittoBroker:
    """Mosquitto on a loopback port with hashed passwords and the mosquitto role's default ACL model."""

    users: dict[str, str]
    readers: tuple[str, ...] = ("telegraf",)
    extra: tuple[str, ...] = ()
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pipeline-mosquitto-")))
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    def start(self) -> MosquittoBroker:
        if MOSQUITTO is None:
            raise RuntimeError("needs Debian's mosquitto package")
        passwd = self.root / "passwd"
        passwd.write_text("".join(f"{name}:{hash_password(pw).encode()}\n" for name, pw in self.users.items()))
        acl = self.root / "acl"
        rules = ["pattern readwrite sensors/%u/#"]
        rules += [f"user {reader}\ntopic read sensors/#" for reader in self.readers]
        acl.write_text("\n".join(rules) + "\n")
        config = self.root / "mosquitto.conf"
        lines = [
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {passwd}",
            f"acl_file {acl}",
            "persistence false",
            "log_dest stderr",
            *self.extra,
            f"listener {self.port} 127.0.0.1",
        ]
        config.write_text("\n".join(lines) + "\n")
        if os.geteuid() == 0:
            account = pwd.getpwnam(BROKER_ACCOUNT)
            for path in (self.root, passwd, acl, config):
                os.chown(path, account.pw_uid, account.pw_gid)
            for path in (passwd, acl):
                path.chmod(0o600)
        log = self.root / "mosquitto.log"
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(config)], stdout=log.open("w"), stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.process, log)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class RenderedTelegraf:
    config: str
    environment_file: str


def render_role_config(variables: dict[str, Any]) -> RenderedTelegraf:
    """Run the telegraf role's rendering with ``variables`` on localhost; return telegraf.conf and the env file."""
    with tempfile.TemporaryDirectory(prefix="pipeline-render-") as workdir:
        directory = Path(workdir)
        variables_file = directory / "vars.yml"
        variables_file.write_text(yaml.safe_dump(variables))
        variables_file.chmod(0o600)
        play = [
            {
                "name": "Render the telegraf role's files",
                "hosts": "localhost",
                "connection": "local",
                "gather_facts": False,
                "vars_files": [str(variables_file)],
                "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
                "tasks": [
                    {
                        "name": "Render",
                        "ansible.builtin.include_role": {"name": "telegraf", "tasks_from": "render.yml"},
                    },
                    {
                        "name": "Write telegraf.conf",
                        "ansible.builtin.copy": {
                            "content": "{{ telegraf_rendered_config }}",
                            "dest": str(directory / "telegraf.conf"),
                            "mode": "0600",
                        },
                    },
                    {
                        "name": "Write the environment file",
                        "ansible.builtin.copy": {
                            "content": "{{ telegraf_rendered_environment }}",
                            "dest": str(directory / "telegraf.env"),
                            "mode": "0600",
                        },
                        "no_log": True,
                    },
                ],
            }
        ]
        result = run_local_play(play, directory)
        if result.returncode != 0:
            raise RuntimeError(f"rendering failed:\n{result.stdout}\n{result.stderr}")
        return RenderedTelegraf((directory / "telegraf.conf").read_text(), (directory / "telegraf.env").read_text())


def stack_variables(broker: MosquittoBroker, influxdb_url: str, **overrides: Any) -> dict[str, Any]:
    """The variables an inventory gives the stack's roles, pointed at these loopback daemons."""
    return {
        "mosquitto_users": [{"name": name, "password": pw} for name, pw in broker.users.items()],
        "mosquitto_listeners": [{"port": broker.port}],
        "influxdb_databases": [{"name": "telemetry"}],
        "influxdb_retention_policies": [{"database": "telemetry", "name": "raw", "duration": "1d", "default": True}],
        "influxdb_users": [{"name": "telegraf", "password": "pipeline-Telegraf-1"}],
        "telegraf_influxdb_urls": [influxdb_url],
        "telegraf_mqtt_client_id": "telegraf-pipeline-test",
        **overrides,
    }


@dataclass
class TelegrafProcess:
    """The built Telegraf running a rendered configuration, with its environment file loaded by sh."""

    binary: str
    rendered: RenderedTelegraf
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pipeline-telegraf-")))
    process: subprocess.Popen | None = None

    def _files(self) -> tuple[Path, Path]:
        self.root.mkdir(parents=True, exist_ok=True)
        config, environment = self.root / "telegraf.conf", self.root / "telegraf.env"
        config.write_text(self.rendered.config)
        environment.write_text(self.rendered.environment_file)
        environment.chmod(0o600)
        return config, environment

    def command(self, *arguments: str) -> list[str]:
        """``telegraf <arguments>`` with the environment file loaded first."""
        _, environment = self._files()
        return ["/bin/sh", "-c", WITH_ENVIRONMENT, "telegraf", str(environment), self.binary, *arguments]

    def check(self) -> subprocess.CompletedProcess:
        """``telegraf config check`` on the rendered configuration, as the role runs it before placing a file."""
        config = self.root / "telegraf.conf"
        command = self.command("config", "check", "--config", str(config), "--strict-env-handling")
        return subprocess.run(command, capture_output=True, text=True, check=False)

    def start(self) -> TelegrafProcess:
        config = self.root / "telegraf.conf"
        command = self.command("--config", str(config), "--strict-env-handling")
        log = self.root / "telegraf.log"
        self.process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while "Connected [tcp://" not in log.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Telegraf did not connect to the broker: {log.read_text()}")
            time.sleep(0.05)
        return self

    def log(self) -> str:
        return (self.root / "telegraf.log").read_text()

    def stop(self) -> None:
        """SIGTERM: Telegraf flushes its outputs before it exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
