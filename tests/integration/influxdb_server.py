"""A real influxd (Debian's 1.6.7 here) on loopback ports with a throwaway config: auth on, HTTP unless asked."""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .ansible_module import free_port

CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{root}/meta"
[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = {auth_enabled}
  log-enabled = false
  https-enabled = {https_enabled}
  https-certificate = "{https_certificate}"
  https-private-key = "{https_private_key}"
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = true
"""


@dataclass
class InfluxDBServer:
    binary: str
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="influxdb-test-")))
    http_port: int = field(default_factory=free_port)
    rpc_port: int = field(default_factory=free_port)
    auth_enabled: bool = True
    # (certificate, key, CA that signed the certificate): serve HTTPS instead of HTTP.
    https: tuple[Path, Path, Path] | None = None
    # Environment variables of influxd, over this process's (InfluxDB reads INFLUXDB_<SECTION>_<KEY> over its file).
    environment: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.https else 'http'}://127.0.0.1:{self.http_port}"

    def _tls_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cafile=str(self.https[2])) if self.https else None

    def start(self) -> InfluxDBServer:
        config = self.root / "influxdb.conf"
        certificate, key, _ca = self.https or ("", "", "")
        config.write_text(
            CONFIG.format(
                root=self.root,
                http_port=self.http_port,
                rpc_port=self.rpc_port,
                auth_enabled=str(self.auth_enabled).lower(),
                https_enabled=str(bool(self.https)).lower(),
                https_certificate=certificate,
                https_private_key=key,
            )
        )
        log = (self.root / "influxd.log").open("w")
        self.process = subprocess.Popen(
            [self.binary, "-config", str(config)], stdout=log, stderr=log, env=os.environ | self.environment
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=1, context=self._tls_context()):
                    return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"influxd exited: {(self.root / 'influxd.log').read_text()}") from None
                time.sleep(0.2)
        raise TimeoutError("influxd did not answer /ping within 30s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)

    def query(
        self, statement: str, user: str | None = None, password: str | None = None, database: str | None = None
    ) -> dict[str, Any]:
        """Run InfluxQL straight over HTTP (POST), bypassing the modules under test."""
        form = {"q": statement} | ({"db": database} if database else {})
        request = urllib.request.Request(f"{self.url}/query", data=urllib.parse.urlencode(form).encode())
        if user is not None:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=10, context=self._tls_context()) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            return json.loads(error.read() or b"{}") | {"status": error.code}
