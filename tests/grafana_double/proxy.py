"""A recording proxy that can slip another client's change in between a module's read and its write.

It forwards every request to an upstream Grafana (the double or a real server) and records it, so the same test can
assert "check mode sent no write" against either. ``interleave`` runs an action after the upstream answered a chosen
request and before that answer reaches the module: the module then holds a stale read, exactly as when a user saves
the same dashboard in the UI while Ansible runs. That makes optimistic-locking tests deterministic on a real server.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from .server import WRITE_METHODS

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host"})


@dataclass(frozen=True)
class ProxiedRequest:
    method: str
    path: str
    body: Any

    @property
    def is_write(self) -> bool:
        return self.method in WRITE_METHODS


@dataclass
class _Interleave:
    method: str
    path: str
    action: Callable[[], None]
    done: bool = False


class InterleavingProxy:
    """``http://127.0.0.1:<port>`` forwarding to ``upstream``; use as a context manager."""

    def __init__(self, upstream: str, verify_tls: bool = True, ca_file: str | None = None) -> None:
        parts = urlsplit(upstream)
        self._scheme = parts.scheme
        self._netloc = parts.netloc
        self._base_path = parts.path.rstrip("/")
        self._context = ssl.create_default_context(cafile=ca_file)
        if not verify_tls:
            self._context.check_hostname = False
            self._context.verify_mode = ssl.CERT_NONE
        self.requests: list[ProxiedRequest] = []
        self._interleaves: list[_Interleave] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="grafana-proxy", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> InterleavingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def writes(self) -> list[ProxiedRequest]:
        with self._lock:
            return [request for request in self.requests if request.is_write]

    def interleave(self, method: str, path: str, action: Callable[[], None]) -> None:
        """Run ``action`` once, after upstream answered ``method path`` and before the client sees the answer."""
        with self._lock:
            self._interleaves.append(_Interleave(method, path, action))

    def interleaved(self) -> bool:
        """Whether every registered action has run."""
        with self._lock:
            return all(item.done for item in self._interleaves)

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, list, bytes]:
        connection_class = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        kwargs: dict[str, Any] = {"timeout": 30}
        if self._scheme == "https":
            kwargs["context"] = self._context
        connection = connection_class(self._netloc, **kwargs)
        try:
            forwarded = {key: value for key, value in headers.items() if key.lower() not in HOP_BY_HOP}
            connection.request(method, self._base_path + path, body=body or None, headers=forwarded)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def _due(self, method: str, path: str) -> _Interleave | None:
        with self._lock:
            for item in self._interleaves:
                if not item.done and item.method == method and path.split("?")[0] == item.path:
                    item.done = True
                    return item
        return None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except json.JSONDecodeError:
                    body = raw.decode(errors="replace")
                with proxy._lock:
                    proxy.requests.append(ProxiedRequest(self.command, self.path.split("?")[0], body))
                status, headers, payload = proxy._forward(self.command, self.path, dict(self.headers.items()), raw)
                due = proxy._due(self.command, self.path)
                if due is not None:
                    due.action()
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _serve

            def log_message(self, format: str, *args: Any) -> None:
                """Stay quiet: the request record is the log."""

        return Handler
