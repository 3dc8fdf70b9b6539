"""A bare JSON-over-HTTP client for tests: arrange and inspect Grafana (double or real) without the code under test."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from typing import Any


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class JsonApi:
    """``api(method, path, body)`` returns ``(status, decoded JSON or None)``; HTTP errors are answers, not raises."""

    def __init__(
        self,
        url: str,
        authorization: str | None,
        org: int | None = None,
        ca_file: str | None = None,
        verify: bool = True,
    ) -> None:
        self.url = url.rstrip("/")
        self.authorization = authorization
        self.org = org
        self._context = ssl.create_default_context(cafile=ca_file)
        if not verify:
            self._context.check_hostname = False
            self._context.verify_mode = ssl.CERT_NONE

    def __call__(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        request.add_header("Accept", "application/json")
        if self.authorization:
            request.add_header("Authorization", self.authorization)
        if self.org is not None:
            request.add_header("X-Grafana-Org-Id", str(self.org))
        context = self._context if self.url.startswith("https:") else None
        try:
            with urllib.request.urlopen(request, timeout=10, context=context) as response:
                return response.status, _decode(response.read())
        except urllib.error.HTTPError as error:
            return error.code, _decode(error.read())


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw.decode(errors="replace")
