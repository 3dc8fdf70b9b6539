"""One HTTP client for InfluxDB 1.x, shared by the influxdb_* modules.

It speaks the documented HTTP API through Ansible's ``Request`` (what ``open_url`` wraps): POST for every statement
that changes state, basic auth in a header (never the ``u``/``p`` query parameters, which end up in access logs),
bounded retries for connection errors, and every ``results[i].error`` read and raised. Nothing but Python runs on
the target.
"""

from __future__ import annotations

import json
import ssl
import time
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode

from ansible.module_utils.urls import Request, make_context
from ansible_collections.sensorstack.iot.plugins.module_utils.influxdb_ql import redact_secrets, withhold_parser_quote
from ansible_collections.sensorstack.iot.plugins.module_utils.retry import TryAgain, call_with_retries, may_send_again

CONNECTION_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "url": {"type": "str", "default": "http://localhost:8086"},
    "username": {"type": "str", "aliases": ["login_username"]},
    "password": {"type": "str", "no_log": True, "aliases": ["login_password"]},
    "validate_certs": {"type": "bool", "default": True},
    "ca_path": {"type": "path"},
    "timeout": {"type": "int", "default": 10},
    "retries": {"type": "int", "default": 3},
}

NO_ADMIN_YET = "create admin user first"


class InfluxDBError(Exception):
    """A request or a statement the server refused, with the server's own words."""

    def __init__(self, message: str, status: int | None = None, statement: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.statement = statement

    @property
    def needs_admin_bootstrap(self) -> bool:
        return self.status == 403 and NO_ADMIN_YET in str(self)


class InfluxDBClient:
    def __init__(
        self,
        url: str,
        username: str | None = None,
        password: str | None = None,
        validate_certs: bool = True,
        ca_path: str | None = None,
        timeout: int = 10,
        retries: int = 3,
    ) -> None:
        self.url = url.rstrip("/")
        self.username = username
        self.password = password
        self.validate_certs = validate_certs
        self.ca_path = ca_path
        self.timeout = timeout
        self.retries = max(0, retries)
        self._tls_context: ssl.SSLContext | None = None

    def _context(self) -> ssl.SSLContext:
        # open_url builds a TLS context for every request, reading every system CA certificate: about 50 ms of CPU,
        # which a password check of many users would spend on a host the server shares. Build it once, and for a
        # plain http URL not at all: that context is never used (a redirect to https would fail verification).
        if self._tls_context is None:
            if self.url.lower().startswith("https://"):
                self._tls_context = make_context(cafile=self.ca_path, validate_certs=self.validate_certs)
            else:
                self._tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        return self._tls_context

    @classmethod
    def from_module(cls, module: Any) -> InfluxDBClient:
        params = module.params
        return cls(
            url=params["url"],
            username=params["username"],
            password=params["password"],
            validate_certs=params["validate_certs"],
            ca_path=params["ca_path"],
            timeout=params["timeout"],
            retries=params["retries"],
        )

    def _request(self, method: str, path: str, form: dict[str, str] | None = None, authenticate: bool = True) -> Any:
        body = urlencode(form).encode() if form is not None else None
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        use_auth = authenticate and self.username is not None

        def attempt_once(_attempt: int) -> Any:
            try:
                return Request().open(
                    method,
                    self.url + path,
                    data=body,
                    headers=headers,
                    url_username=self.username if use_auth else None,
                    url_password=self.password if use_auth else None,
                    force_basic_auth=use_auth,
                    validate_certs=self.validate_certs,
                    ca_path=self.ca_path,
                    timeout=self.timeout,
                    context=self._context(),
                    # Credentials come from the options only: an unauthenticated probe must stay unauthenticated.
                    use_netrc=False,
                )
            except HTTPError as error:
                raise InfluxDBError(_http_error_message(error), status=error.code) from None
            except (URLError, ConnectionError, TimeoutError, OSError) as error:
                reason = getattr(error, "reason", error)
                if isinstance(reason, ssl.SSLError):
                    # Retrying cannot make a certificate valid.
                    raise InfluxDBError(
                        f"TLS verification of {self.url} failed ({reason}); give the CA that signed the server's "
                        "certificate in ca_path (validate_certs: false only for a throwaway lab)"
                    ) from None
                unreachable = InfluxDBError(f"cannot reach InfluxDB at {self.url}: {reason}")
                if may_send_again(method, error):
                    raise TryAgain(unreachable) from None
                raise unreachable from None

        return call_with_retries(
            attempt_once, self.retries + 1, lambda attempt: min(0.5 * 2 ** (attempt - 1), 4.0), time.sleep
        )

    def ping(self) -> str:
        """Return the server version (``/ping`` needs no credentials)."""
        response = self._request("GET", "/ping", authenticate=False)
        return response.headers.get("X-Influxdb-Version", "unknown")

    def _payload(self, body: bytes) -> dict[str, Any]:
        """The JSON of a /query answer; anything else (a proxy's page, Grafana's HTML at the same port) is named."""
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise InfluxDBError(
                f"{self.url}/query answered with something other than InfluxDB's JSON: is url InfluxDB?"
            )
        return payload

    def query(
        self,
        statements: str,
        database: str | None = None,
        change: bool = False,
        authenticate: bool = True,
        epoch: str | None = None,
    ) -> list[dict[str, Any]]:
        """Run one or more ``;``-separated statements and return their results; raise on any statement error.

        Changes are POSTed. A failed statement stops the server from running the ones after it, so the error names
        the statement that failed.
        """
        form = {"q": statements}
        if database:
            form["db"] = database
        if epoch:
            form["epoch"] = epoch
        carries_secret = redact_secrets(statements) != statements
        try:
            if change:
                response = self._request("POST", "/query", form, authenticate=authenticate)
            else:
                response = self._request("GET", "/query?" + urlencode(form), authenticate=authenticate)
            payload = self._payload(response.read())
            if "error" in payload:
                raise InfluxDBError(payload["error"])
        except InfluxDBError as error:
            if not carries_secret:
                raise
            raise InfluxDBError(withhold_parser_quote(str(error)), status=error.status) from None
        results = payload.get("results", [])
        split = split_statements(statements)
        for result in results:
            if result.get("error"):
                index = result.get("statement_id", 0)
                statement = redact_secrets(split[index]) if index < len(split) else None
                raise InfluxDBError(result["error"], statement=statement)
        return results

    def can_log_in(self, username: str, password: str) -> bool:
        """Whether the server accepts these credentials: a read-only query sent as that user (basic auth header).

        Meaningful only when the server has authentication on; otherwise it accepts anything.
        """
        as_user = InfluxDBClient(
            self.url, username, password, self.validate_certs, self.ca_path, self.timeout, self.retries
        )
        as_user._tls_context = self._context()
        try:
            as_user.query("SHOW DATABASES")
        except InfluxDBError as error:
            if error.status == 401:
                return False
            raise
        return True

    def change(self, statements: list[str], database: str | None = None, authenticate: bool = True) -> None:
        """POST statements that change state, all in one request."""
        if statements:
            self.query("; ".join(statements), database=database, change=True, authenticate=authenticate)


def _http_error_message(error: HTTPError) -> str:
    try:
        body = json.loads(error.read() or b"{}")
        detail = body.get("error") or error.reason
    except (ValueError, AttributeError):
        detail = error.reason
    if error.code == 401:
        return f"authentication failed (HTTP 401: {detail}): check username and password"
    return f"HTTP {error.code}: {detail}"


def split_statements(statements: str) -> list[str]:
    """Split on ``;`` outside quotes, so an error can name its statement."""
    parts: list[str] = []
    current: list[str] = []
    quote: str | None = None
    escaped = False
    for char in statements:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == ";":
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


def series_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of every series of one statement result, as dicts keyed by column (``series`` is absent when empty)."""
    rows = []
    for series in result.get("series", []) or []:
        columns = series.get("columns", [])
        for values in series.get("values", []) or []:
            row = dict(zip(columns, values, strict=False))
            if "name" in series:
                row["_series"] = series["name"]
            rows.append(row)
    return rows
