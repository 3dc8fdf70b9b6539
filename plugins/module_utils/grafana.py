"""One HTTP client for Grafana's API, shared by the sensorstack.iot grafana_* modules.

It speaks the documented HTTP API through Ansible's ``open_url``: basic auth or a service-account token in the
``Authorization`` header, ``X-Grafana-Org-Id`` when an organization is chosen, TLS verification with an optional CA,
a timeout per request, and bounded retries for connection errors (every request when nothing reached the server;
reads also when the connection broke later or a gateway answered 502/503/504). HTTP errors become ``GrafanaError``
with Grafana's own message and a hint for the usual causes. The modules build no URL themselves: every endpoint
they use is a method here.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode

from ansible.module_utils.urls import ConnectionError as AnsibleConnectionError
from ansible.module_utils.urls import SSLValidationError, open_url
from ansible_collections.sensorstack.iot.plugins.module_utils.retry import (
    READ_METHODS,
    TryAgain,
    call_with_retries,
    may_send_again,
)

CONNECTION_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "url_username": {"type": "str", "aliases": ["grafana_user"]},
    "url_password": {"type": "str", "no_log": True, "aliases": ["grafana_password"]},
    "token": {"type": "str", "no_log": True, "aliases": ["grafana_api_key"]},
    "validate_certs": {"type": "bool", "default": True},
    "ca_path": {"type": "path"},
    "timeout": {"type": "int", "default": 10},
    "org_id": {"type": "int"},
}
CONNECTION_CONSTRAINTS: dict[str, list[Any]] = {
    "mutually_exclusive": [["token", "url_username"], ["token", "url_password"]],
    "required_together": [["url_username", "url_password"]],
    "required_one_of": [["url_username", "token"]],
}

ATTEMPTS = 3
BACKOFF_SECONDS = 1.0
RETRIED_GATEWAY_STATUSES = frozenset({502, 503, 504})
FOLDERS_PAGE_SIZE = 1000


def argument_spec(url_option: str = "url") -> dict[str, dict[str, Any]]:
    """The connection options; ``url_option`` names the server URL (``grafana_url`` where ``url`` means more)."""
    url = {"type": "str", "required": True}
    if url_option == "url":
        url["aliases"] = ["grafana_url"]
    return {url_option: url, **CONNECTION_ARGUMENT_SPEC}


class GrafanaError(Exception):
    """A request Grafana refused or that never reached it, with Grafana's own words and a hint."""

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body

    @property
    def reason(self) -> str:
        """Grafana's machine-readable ``status`` field (``version-mismatch``, ``name-exists``...) or ''."""
        return str(self.body.get("status", "")) if isinstance(self.body, dict) else ""


def server_message(body: Any) -> str:
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(body or "").strip()[:300]


def describe_failure(method: str, path: str, status: int, body: Any) -> str:
    """A message saying what was refused, Grafana's reason, and what usually fixes it."""
    words = server_message(body)
    text = f"Grafana refused {method} {path}: HTTP {status}" + (f" ({words})" if words else "")
    hints = {
        401: "check url_username/url_password or token (and org_id: the identity must belong to that organization)",
        403: "the identity lacks the permission for this change, or the object is provisioned (read-only)",
    }
    return f"{text}; {hints[status]}" if status in hints else text


class GrafanaClient:
    def __init__(
        self,
        url: str,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        validate_certs: bool = True,
        ca_path: str | None = None,
        timeout: int = 10,
        org_id: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        self.username = username
        self.password = password
        self.token = token
        self.validate_certs = validate_certs
        self.ca_path = ca_path
        self.timeout = timeout
        self.org_id = org_id
        self._sleep = sleep

    @classmethod
    def from_module(cls, module: Any, url_option: str = "url") -> GrafanaClient:
        params = module.params
        return cls(
            url=params[url_option],
            username=params["url_username"],
            password=params["url_password"],
            token=params["token"],
            validate_certs=params["validate_certs"],
            ca_path=params["ca_path"],
            timeout=params["timeout"],
            org_id=params["org_id"],
        )

    # --- Transport ------------------------------------------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.org_id is not None:
            headers["X-Grafana-Org-Id"] = str(self.org_id)
        return headers

    def request(self, method: str, path: str, body: Any = None, missing_ok: bool = False) -> Any:
        """Send one request; return the decoded JSON, or None for a 404 when ``missing_ok``."""
        data = None if body is None else json.dumps(body).encode()

        def attempt_once(attempt: int) -> Any:
            try:
                return self._send(method, path, data)
            except HTTPError as error:
                failure = self._http_failure(method, path, error)
                if failure.status == 404 and missing_ok:
                    return None
                if self._retry_status(method, failure.status):
                    raise TryAgain(failure) from None
                raise failure from None
            except SSLValidationError as error:
                raise self._tls_failure(error) from None
            except (URLError, AnsibleConnectionError, OSError) as error:
                if isinstance(getattr(error, "reason", error), ssl.SSLError):
                    raise self._tls_failure(error) from None
                unreachable = GrafanaError(
                    f"cannot reach Grafana at {self.url} for {method} {path} after {attempt} attempt(s): "
                    f"{getattr(error, 'reason', error)}"
                )
                if may_send_again(method, error):
                    raise TryAgain(unreachable) from None
                raise unreachable from None

        return call_with_retries(attempt_once, ATTEMPTS, lambda attempt: BACKOFF_SECONDS * attempt, self._sleep)

    def _send(self, method: str, path: str, data: bytes | None) -> Any:
        response = open_url(
            self.url + path,
            data=data,
            headers=self.headers(),
            method=method,
            timeout=self.timeout,
            validate_certs=self.validate_certs,
            ca_path=self.ca_path,
            url_username=None if self.token else self.username,
            url_password=None if self.token else self.password,
            force_basic_auth=not self.token,
            follow_redirects="none",
            use_proxy=True,
            use_netrc=False,
        )
        raw = response.read()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise GrafanaError(
                f"{method} {path} answered something that is not JSON: is {self.url} Grafana's URL "
                f"(with its sub path, if served under one)?"
            ) from None

    def _tls_failure(self, error: Exception) -> GrafanaError:
        return GrafanaError(
            f"TLS verification of {self.url} failed ({getattr(error, 'reason', error)}); give the CA that signed "
            "Grafana's certificate in ca_path (validate_certs: false only for a throwaway lab)"
        )

    @staticmethod
    def _http_failure(method: str, path: str, error: HTTPError) -> GrafanaError:
        try:
            raw = error.read()
        except (OSError, AttributeError):
            raw = b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        message = describe_failure(method, path, error.code, body)
        location = error.headers.get("Location") if error.headers else None
        if 300 <= error.code < 400 and location:
            message += f"; the URL redirects to {location}: give that URL instead"
        return GrafanaError(message, error.code, body)

    @staticmethod
    def _retry_status(method: str, status: int | None) -> bool:
        return method in READ_METHODS and status in RETRIED_GATEWAY_STATUSES

    # --- Endpoints ------------------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/api/health")

    def get_dashboard(self, uid: str) -> dict[str, Any] | None:
        return self.request("GET", f"/api/dashboards/uid/{_segment(uid)}", missing_ok=True)

    def save_dashboard(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/api/dashboards/db", payload)

    def delete_dashboard(self, uid: str) -> dict[str, Any] | None:
        return self.request("DELETE", f"/api/dashboards/uid/{_segment(uid)}", missing_ok=True)

    def get_folder(self, uid: str) -> dict[str, Any] | None:
        return self.request("GET", f"/api/folders/{_segment(uid)}", missing_ok=True)

    def list_folders(self) -> list[dict[str, Any]]:
        """Every folder, page after page (``GET /api/folders`` returns at most ``limit`` per page)."""
        folders: list[dict[str, Any]] = []
        page = 1
        while True:
            query = urlencode({"limit": FOLDERS_PAGE_SIZE, "page": page})
            batch = self.request("GET", f"/api/folders?{query}") or []
            folders.extend(batch)
            if len(batch) < FOLDERS_PAGE_SIZE:
                return folders
            page += 1

    def create_folder(self, uid: str, title: str) -> dict[str, Any]:
        return self.request("POST", "/api/folders", {"uid": uid, "title": title})

    def update_folder(self, uid: str, title: str, version: int, overwrite: bool = False) -> dict[str, Any]:
        body = {"title": title, "version": version, "overwrite": overwrite}
        return self.request("PUT", f"/api/folders/{_segment(uid)}", body)

    def delete_folder(self, uid: str) -> dict[str, Any] | None:
        return self.request("DELETE", f"/api/folders/{_segment(uid)}", missing_ok=True)

    def get_datasource(self, uid: str) -> dict[str, Any] | None:
        return self.request("GET", f"/api/datasources/uid/{_segment(uid)}", missing_ok=True)

    def get_datasource_by_name(self, name: str) -> dict[str, Any] | None:
        return self.request("GET", f"/api/datasources/name/{_segment(name)}", missing_ok=True)

    def create_datasource(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/api/datasources", body)

    def update_datasource(self, uid: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("PUT", f"/api/datasources/uid/{_segment(uid)}", body)

    def delete_datasource(self, uid: str) -> dict[str, Any] | None:
        return self.request("DELETE", f"/api/datasources/uid/{_segment(uid)}", missing_ok=True)


def _segment(value: str) -> str:
    """One URL path segment: a uid or name can never reach another endpoint."""
    return quote(str(value), safe="")


def run_module(
    module: Any, run: Callable[[GrafanaClient, dict[str, Any], bool], dict[str, Any]], url_option: str = "url"
) -> None:
    """The whole of a grafana_* module's run: converge (or plan, in check mode) and report; diff only when asked."""
    try:
        result = run(GrafanaClient.from_module(module, url_option=url_option), module.params, module.check_mode)
    except (GrafanaError, ValueError) as error:
        module.fail_json(msg=str(error))
    if not module._diff:
        result.pop("diff")
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(**result)
