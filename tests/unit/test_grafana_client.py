"""The shared Grafana client: auth, the org header, error mapping, paging and retries, against the API double.

The double runs in-process on loopback, so these tests take milliseconds; the retry tests record the back-off
instead of sleeping.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from ansible_collections.sensorstack.iot.plugins.module_utils import grafana as grafana_utils
from ansible_collections.sensorstack.iot.plugins.module_utils.grafana import (
    ATTEMPTS,
    FOLDERS_PAGE_SIZE,
    GrafanaClient,
    GrafanaError,
)
from ansible_collections.sensorstack.iot.plugins.module_utils.retry import may_send_again

from tests.grafana_double import GrafanaDouble
from tests.integration.ansible_module import free_port

PASSWORD = "client-test-password"
TOKEN = "glsa_client_test"


@pytest.fixture
def double() -> Iterator[GrafanaDouble]:
    with GrafanaDouble(password=PASSWORD, token=TOKEN) as server:
        yield server


def client_for(url: str, sleeps: list[float] | None = None, **options: Any) -> GrafanaClient:
    credentials = options or {"username": "admin", "password": PASSWORD}
    return GrafanaClient(url, sleep=(sleeps if sleeps is not None else []).append, **credentials)


def test_basic_auth_and_a_token_both_reach_the_api(double: GrafanaDouble) -> None:
    assert client_for(double.url).request("GET", "/api/user")["login"] == "admin"
    assert client_for(double.url, token=TOKEN).list_folders() == []
    assert [r.headers["authorization"] for r in double.requests] == ["Basic", "Bearer"]


def test_the_org_header_is_sent_only_when_an_org_is_chosen(double: GrafanaDouble) -> None:
    double.add_org(2, "Lab", members=("admin",))
    client_for(double.url).list_folders()
    client_for(double.url, username="admin", password=PASSWORD, org_id=2).create_folder("lab", "Lab")
    assert [r.headers.get("x-grafana-org-id") for r in double.requests] == [None, "2"]
    assert client_for(double.url).get_folder("lab") is None


def test_wrong_credentials_fail_with_grafanas_words_and_what_to_check(double: GrafanaDouble) -> None:
    with pytest.raises(GrafanaError) as raised:
        client_for(double.url, username="admin", password="wrong").list_folders()
    assert raised.value.status == 401
    assert "HTTP 401 (Invalid username or password)" in str(raised.value)
    assert "check url_username/url_password or token" in str(raised.value)


def test_a_missing_object_is_none_only_where_absence_is_an_answer(double: GrafanaDouble) -> None:
    client = client_for(double.url)
    assert client.get_dashboard("nope") is None and client.get_datasource_by_name("nope") is None
    with pytest.raises(GrafanaError, match=r"HTTP 404 \(folder not found\)"):
        client.update_folder("nope", "Title", 1)


def test_grafanas_status_field_is_kept_for_the_modules_to_explain(double: GrafanaDouble) -> None:
    client = client_for(double.url)
    client.save_dashboard({"dashboard": {"uid": "d", "title": "D"}})
    with pytest.raises(GrafanaError) as raised:
        client.save_dashboard({"dashboard": {"uid": "d", "title": "D", "version": 0}})
    assert (raised.value.status, raised.value.reason) == (412, "version-mismatch")


def test_names_and_uids_are_one_path_segment(double: GrafanaDouble) -> None:
    client = client_for(double.url)
    client.create_datasource({"name": "a/b ?x", "type": "influxdb"})
    assert client.get_datasource_by_name("a/b ?x")["name"] == "a/b ?x"
    assert double.requests[-1].path == "/api/datasources/name/a%2Fb%20%3Fx"


def test_every_folder_page_is_read(double: GrafanaDouble) -> None:
    org = double.state.orgs[1]
    for number in range(FOLDERS_PAGE_SIZE + 5):
        double.state.create_folder(org, {"uid": f"f{number:05}", "title": f"Folder {number:05}"})
    folders = client_for(double.url).list_folders()
    assert len(folders) == FOLDERS_PAGE_SIZE + 5 and folders[-1]["uid"] == f"f{FOLDERS_PAGE_SIZE + 4:05}"
    assert [r.query["page"] for r in double.requests] == [["1"], ["2"]]


def test_a_refused_connection_is_retried_then_reported() -> None:
    sleeps: list[float] = []
    with pytest.raises(GrafanaError, match=rf"cannot reach Grafana at .* after {ATTEMPTS} attempt"):
        client_for(f"http://127.0.0.1:{free_port()}", sleeps).create_folder("a", "A")
    assert len(sleeps) == ATTEMPTS - 1 and sleeps == sorted(sleeps)


def test_a_read_is_retried_on_a_gateway_error_and_a_write_is_not(double: GrafanaDouble) -> None:
    double.set_database_ok(False)
    sleeps: list[float] = []
    with pytest.raises(GrafanaError, match="HTTP 503"):
        client_for(double.url, sleeps).health()
    assert len(double.requests) == ATTEMPTS
    assert not grafana_utils.GrafanaClient._retry_status("POST", 503)


@pytest.mark.parametrize(
    ("method", "error", "retried"),
    [
        ("POST", ConnectionRefusedError(), True),
        ("POST", ConnectionResetError(), False),
        ("POST", TimeoutError(), False),
        ("GET", ConnectionResetError(), True),
        ("GET", TimeoutError(), True),
    ],
)
def test_only_failures_that_cannot_have_changed_anything_are_retried(
    method: str, error: Exception, retried: bool
) -> None:
    assert may_send_again(method, error) is retried


@pytest.fixture
def not_grafana() -> Iterator[str]:
    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            payload = b"<html>a login page</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_answer_that_is_not_json_asks_whether_the_url_is_grafanas(not_grafana: str) -> None:
    with pytest.raises(GrafanaError, match=r"not JSON: is .* Grafana's URL"):
        client_for(not_grafana).list_folders()
