"""The grafana_* modules, run by ansible-playbook as a user's task would, against Grafana's API.

By default the tests start the Grafana API double (``tests/grafana_double``) on a free loopback port. The same file
runs unchanged against a real Grafana when these are set (see ``docs/grafana-testing.md``)::

    GRAFANA_URL=http://127.0.0.1:3000 GRAFANA_USER=admin GRAFANA_PASSWORD=... \
        pytest tests/integration/test_grafana_modules.py
    GRAFANA_URL=https://grafana.lab GRAFANA_TOKEN=glsa_... GRAFANA_CA_PATH=/etc/ssl/lab-ca.pem \
        pytest tests/integration/test_grafana_modules.py

Against a real server every object gets a unique ``sstest-`` uid and is deleted afterwards. "Check mode sends no
write" is asserted from the double's own request record, and on a real server from a recording proxy in front of
it. Concurrent edits are made deterministic by a proxy that saves the object as another user would, between the
module's read and its write. Only what needs the double's back door (provisioned objects, reading a stored secret,
organizations) is skipped on a real server.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.grafana_double import GrafanaDouble, InterleavingProxy, JsonApi, basic_auth

from .ansible_module import ROOT, free_port, run_module

DOUBLE_PASSWORD = "module-tests-password"
DOUBLE_TOKEN = "glsa_module_tests"
SECRET = "influx-reader-secret-6d1f"
SHIPPED_DASHBOARD = ROOT / "roles/grafana/files/dashboards/sensorstack-sensors.json"
REAL_SERVER = bool(os.environ.get("GRAFANA_URL"))

only_on_the_double = pytest.mark.skipif(REAL_SERVER, reason="needs the double's back door (not an API call)")


@dataclass
class Grafana:
    """The server under test and how to reach it: module arguments, a bare API client, cleanup."""

    url: str
    credentials: dict[str, Any]
    api: JsonApi
    double: GrafanaDouble | None
    created: list[tuple[str, str]] = field(default_factory=list)

    def args(self, *, at: str | None = None, url_option: str = "url", **extra: Any) -> dict[str, Any]:
        """Module arguments reaching the server (or the proxy/recorder URL ``at``), plus ``extra``."""
        return {url_option: at or self.url, **self.credentials, **extra}

    def uid(self, kind: str) -> str:
        """A fresh uid, deleted from the server after the test."""
        uid = f"sstest-{kind}-{uuid.uuid4().hex[:10]}"
        self.created.append((kind, uid))
        return uid

    @contextmanager
    def recorded(self) -> Iterator[Session]:
        """A URL to give the module and the requests it sent: the double's record, or a proxy's on a real server."""
        if self.double is not None:
            with self.double.recording() as requests:
                session = Session(self.url, requests)
                yield session
            return
        with self._proxy() as proxy:
            yield Session(proxy.url, proxy.requests)

    @contextmanager
    def interleaving(self, method: str, path: str, action: Callable[[], None]) -> Iterator[str]:
        """A URL through which ``action`` runs right after the module's ``method path`` was answered."""
        with self._proxy() as proxy:
            proxy.interleave(method, path, action)
            yield proxy.url
            assert proxy.interleaved(), f"the module never sent {method} {path}"

    def _proxy(self) -> InterleavingProxy:
        verify = os.environ.get("GRAFANA_VALIDATE_CERTS", "true").lower() != "false"
        return InterleavingProxy(self.url, verify_tls=verify, ca_file=os.environ.get("GRAFANA_CA_PATH"))

    def cleanup(self) -> None:
        paths = {"dashboard": "/api/dashboards/uid/", "folder": "/api/folders/", "datasource": "/api/datasources/uid/"}
        for kind, uid in reversed(self.created):
            self.api("DELETE", paths[kind] + uid)
        self.created.clear()


@dataclass
class Session:
    url: str
    requests: list[Any]

    def writes(self) -> list[str]:
        return [f"{request.method} {request.path}" for request in self.requests if request.is_write]


def real_grafana() -> Grafana:
    url = os.environ["GRAFANA_URL"].rstrip("/")
    validate = os.environ.get("GRAFANA_VALIDATE_CERTS", "true").lower() != "false"
    ca_path = os.environ.get("GRAFANA_CA_PATH")
    connection: dict[str, Any] = {"validate_certs": validate} | ({"ca_path": ca_path} if ca_path else {})
    if os.environ.get("GRAFANA_TOKEN"):
        credentials = {"token": os.environ["GRAFANA_TOKEN"]}
        authorization = f"Bearer {os.environ['GRAFANA_TOKEN']}"
    else:
        user, password = os.environ.get("GRAFANA_USER", "admin"), os.environ["GRAFANA_PASSWORD"]
        credentials = {"url_username": user, "url_password": password}
        authorization = basic_auth(user, password)
    api = JsonApi(url, authorization, ca_file=ca_path, verify=validate)
    return Grafana(url, credentials | connection, api, None)


@pytest.fixture(scope="module")
def server() -> Iterator[Grafana]:
    if REAL_SERVER:
        yield real_grafana()
        return
    with GrafanaDouble(port=free_port(), password=DOUBLE_PASSWORD, token=DOUBLE_TOKEN) as double:
        credentials = {"url_username": "admin", "url_password": DOUBLE_PASSWORD}
        yield Grafana(double.url, credentials, JsonApi(double.url, basic_auth("admin", DOUBLE_PASSWORD)), double)


@pytest.fixture
def grafana(server: Grafana) -> Iterator[Grafana]:
    yield server
    server.cleanup()


def dashboard_json(uid: str | None, title: str, **extra: Any) -> dict[str, Any]:
    dashboard: dict[str, Any] = {
        "title": title,
        "tags": ["sensorstack-test"],
        "timezone": "utc",
        "schemaVersion": 39,
        "panels": [
            {"id": 1, "type": "timeseries", "title": "Temperature", "gridPos": {"x": 0, "y": 0, "w": 12, "h": 8}}
        ],
        **extra,
    }
    if uid is not None:
        dashboard["uid"] = uid
    return dashboard


def stored_dashboard(grafana: Grafana, uid: str) -> dict[str, Any]:
    status, body = grafana.api("GET", f"/api/dashboards/uid/{uid}")
    assert status == 200, body
    return body


def assert_failed(result: dict[str, Any], *fragments: str) -> None:
    assert result.get("failed"), f"expected a failure, got {result}"
    for fragment in fragments:
        assert fragment in result["msg"], f"{fragment!r} not in {result['msg']!r}"


# --- grafana_dashboard ------------------------------------------------------------------------------------------------


def test_a_dashboard_is_created_then_left_alone_without_a_single_write(grafana: Grafana) -> None:
    uid = grafana.uid("dashboard")
    args = grafana.args(dashboard=dashboard_json(uid, f"Sensors {uid}"), message="created by the tests")
    created = run_module("sensorstack.iot.grafana_dashboard", args)
    assert created["changed"] and created["changes"] == ["created"]
    assert created["uid"] == uid and created["url"].startswith(f"/d/{uid}/")
    with grafana.recorded() as session:
        again = run_module("sensorstack.iot.grafana_dashboard", args | {"url": session.url})
    assert not again["changed"] and again["changes"] == [] and again["version"] == created["version"]
    assert session.writes() == []


def test_a_changed_dashboard_is_saved_once_with_a_new_version_and_a_diff(grafana: Grafana) -> None:
    uid = grafana.uid("dashboard")
    run_module("sensorstack.iot.grafana_dashboard", grafana.args(dashboard=dashboard_json(uid, f"Sensors {uid}")))
    version = stored_dashboard(grafana, uid)["dashboard"]["version"]
    changed_json = dashboard_json(uid, f"Sensors {uid}", refresh="1m")
    result = run_module("sensorstack.iot.grafana_dashboard", grafana.args(dashboard=changed_json), diff=True)
    assert result["changed"] and result["changes"] == ["dashboard"] and result["version"] == version + 1
    assert "refresh" not in result["diff"]["before"]["dashboard"]
    assert result["diff"]["after"]["dashboard"]["refresh"] == "1m"
    assert "version" not in result["diff"]["after"]["dashboard"] and "id" not in result["diff"]["after"]["dashboard"]
    again = run_module("sensorstack.iot.grafana_dashboard", grafana.args(dashboard=changed_json))
    assert not again["changed"]


def test_an_exported_dashboard_with_a_stale_id_and_version_does_not_flap(grafana: Grafana) -> None:
    uid = grafana.uid("dashboard")
    exported = dashboard_json(uid, f"Exported {uid}", id=999, version=42)
    assert run_module("sensorstack.iot.grafana_dashboard", grafana.args(dashboard=exported))["changed"]
    assert not run_module("sensorstack.iot.grafana_dashboard", grafana.args(dashboard=exported))["changed"]


def test_check_mode_reports_the_change_and_sends_no_write(grafana: Grafana) -> None:
    uid = grafana.uid("dashboard")
    wanted = dashboard_json(uid, f"Sensors {uid}")
    with grafana.recorded() as session:
        planned = run_module(
            "sensorstack.iot.grafana_dashboard", grafana.args(at=session.url, dashboard=wanted), check=True
        )
    assert planned["changed"] and planned["changes"] == ["created"] and session.writes() == []
    assert grafana.api("GET", f"/api/dashboards/uid/{uid}")[0] == 404
    run_module("sensorstack.iot.grafana_dashboard", grafana.args(dashboard=wanted))
    changed = dashboard_json(uid, f"Sensors {uid}", refresh="5m")
    with grafana.recorded() as session:
        planned = run_module(
            "sensorstack.iot.grafana_dashboard", grafana.args(at=session.url, dashboard=changed), check=True, diff=True
        )
    assert planned["changed"] and planned["diff"]["after"]["dashboard"]["refresh"] == "5m"
    assert session.writes() == [] and "refresh" not in stored_dashboard(grafana, uid)["dashboard"]


def test_a_dashboard_moves_between_folders_and_back_to_general(grafana: Grafana) -> None:
    uid, folder = grafana.uid("dashboard"), grafana.uid("folder")
    run_module("sensorstack.iot.grafana_folder", grafana.args(uid=folder, title=f"Folder {folder}"))
    wanted = dashboard_json(uid, f"Sensors {uid}")
    run_module("sensorstack.iot.grafana_dashboard", grafana.args(dashboard=wanted))
    moved = run_module("sensorstack.iot.grafana_dashboard", grafana.args(dashboard=wanted, folder_uid=folder))
    assert moved["changes"] == ["folder"] and stored_dashboard(grafana, uid)["meta"]["folderUid"] == folder
    assert not run_module("sensorstack.iot.grafana_dashboard", grafana.args(dashboard=wanted, folder_uid=folder))[
        "changed"
    ]
    back = run_module("sensorstack.iot.grafana_dashboard", grafana.args(dashboard=wanted))
    assert back["changes"] == ["folder"] and stored_dashboard(grafana, uid)["meta"].get("folderUid", "") == ""


def test_a_concurrent_save_fails_clearly_and_overwrite_true_saves_regardless(grafana: Grafana) -> None:
    uid = grafana.uid("dashboard")
    title = f"Sensors {uid}"
    run_module("sensorstack.iot.grafana_dashboard", grafana.args(dashboard=dashboard_json(uid, title)))

    def someone_saves_in_the_ui() -> None:
        current = stored_dashboard(grafana, uid)["dashboard"]
        status, body = grafana.api("POST", "/api/dashboards/db", {"dashboard": current | {"description": "UI edit"}})
        assert status == 200, body

    wanted = dashboard_json(uid, title, refresh="1m")
    with grafana.interleaving("GET", f"/api/dashboards/uid/{uid}", someone_saves_in_the_ui) as url:
        result = run_module("sensorstack.iot.grafana_dashboard", grafana.args(at=url, dashboard=wanted))
    assert_failed(result, f"dashboard {uid!r} was saved by someone else", "nothing was overwritten", "overwrite: true")
    assert stored_dashboard(grafana, uid)["dashboard"]["description"] == "UI edit"
    with grafana.interleaving("GET", f"/api/dashboards/uid/{uid}", someone_saves_in_the_ui) as url:
        result = run_module("sensorstack.iot.grafana_dashboard", grafana.args(at=url, dashboard=wanted, overwrite=True))
    assert result["changed"] and "description" not in stored_dashboard(grafana, uid)["dashboard"]


def test_a_dashboard_without_uid_is_rejected_before_any_request(grafana: Grafana) -> None:
    with grafana.recorded() as session:
        result = run_module(
            "sensorstack.iot.grafana_dashboard", grafana.args(at=session.url, dashboard=dashboard_json(None, "No uid"))
        )
    assert_failed(result, "the dashboard has no uid", "set the uid option", "create another copy")
    assert session.requests == []


def test_the_uid_option_gives_an_exported_dashboard_a_stable_identity(grafana: Grafana, tmp_path: Path) -> None:
    uid = grafana.uid("dashboard")
    path = tmp_path / "exported.json"
    path.write_text(json.dumps(dashboard_json(None, f"From a file {uid}", id=3)))
    assert run_module("sensorstack.iot.grafana_dashboard", grafana.args(path=str(path), uid=uid))["changed"]
    assert not run_module("sensorstack.iot.grafana_dashboard", grafana.args(path=str(path), uid=uid))["changed"]
    assert stored_dashboard(grafana, uid)["dashboard"]["title"] == f"From a file {uid}"


def test_the_shipped_sensor_dashboard_converges(grafana: Grafana) -> None:
    uid = grafana.uid("dashboard")
    args = grafana.args(path=str(SHIPPED_DASHBOARD), uid=uid)
    assert run_module("sensorstack.iot.grafana_dashboard", args)["changed"]
    assert not run_module("sensorstack.iot.grafana_dashboard", args)["changed"]


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"dashboard": {"uid": "sstest-untitled", "title": ""}}, ["has no title", "empty title"]),
        ({"uid": "has space"}, ["may only hold letters, digits"]),
        ({"folder_uid": "sstest-no-such-folder"}, ["folder_uid 'sstest-no-such-folder' does not exist"]),
    ],
    ids=["empty title", "bad uid", "unknown folder"],
)
def test_what_grafana_would_refuse_fails_with_a_message_and_no_write(
    grafana: Grafana, change: dict[str, Any], fragments: list[str]
) -> None:
    uid = grafana.uid("dashboard")
    with grafana.recorded() as session:
        result = run_module(
            "sensorstack.iot.grafana_dashboard",
            grafana.args(at=session.url, dashboard=dashboard_json(uid, uid)) | change,
        )
    assert_failed(result, *fragments)
    assert session.writes() == []


def test_check_mode_of_a_dashboard_in_a_folder_still_to_create_warns_and_writes_nothing(grafana: Grafana) -> None:
    uid = grafana.uid("dashboard")
    with grafana.recorded() as session:
        result = run_module(
            "sensorstack.iot.grafana_dashboard",
            grafana.args(at=session.url, dashboard=dashboard_json(uid, uid), folder_uid="sstest-folder-to-come"),
            check=True,
        )
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True
    assert any("folder_uid 'sstest-folder-to-come' does not exist" in warning for warning in result["warnings"])
    assert session.writes() == []


def test_a_dashboard_is_removed_once_and_check_mode_only_says_so(grafana: Grafana) -> None:
    uid = grafana.uid("dashboard")
    run_module("sensorstack.iot.grafana_dashboard", grafana.args(dashboard=dashboard_json(uid, f"Doomed {uid}")))
    with grafana.recorded() as session:
        planned = run_module(
            "sensorstack.iot.grafana_dashboard", grafana.args(at=session.url, uid=uid, state="absent"), check=True
        )
    assert planned["changed"] and session.writes() == [] and grafana.api("GET", f"/api/dashboards/uid/{uid}")[0] == 200
    removed = run_module("sensorstack.iot.grafana_dashboard", grafana.args(uid=uid, state="absent"), diff=True)
    assert removed["changed"] and removed["changes"] == ["deleted"] and removed["diff"]["after"] == {}
    assert grafana.api("GET", f"/api/dashboards/uid/{uid}")[0] == 404
    assert not run_module("sensorstack.iot.grafana_dashboard", grafana.args(uid=uid, state="absent"))["changed"]


@only_on_the_double
def test_a_provisioned_dashboard_is_reported_instead_of_saved(grafana: Grafana) -> None:
    assert grafana.double is not None
    uid = grafana.uid("dashboard")
    grafana.double.add_provisioned_dashboard(dashboard_json(uid, f"Provisioned {uid}"))
    result = run_module("sensorstack.iot.grafana_dashboard", grafana.args(dashboard=dashboard_json(uid, "Changed")))
    assert_failed(result, "is provisioned from a file", "change its provisioning file")
    unchanged = run_module(
        "sensorstack.iot.grafana_dashboard", grafana.args(dashboard=dashboard_json(uid, f"Provisioned {uid}"))
    )
    assert not unchanged["changed"] and not unchanged.get("failed")


# --- grafana_folder ---------------------------------------------------------------------------------------------------


def test_a_folder_is_created_renamed_and_removed(grafana: Grafana) -> None:
    uid = grafana.uid("folder")
    created = run_module("sensorstack.iot.grafana_folder", grafana.args(uid=uid, title=f"Site {uid}"))
    assert created["changed"] and created["folder"]["uid"] == uid
    with grafana.recorded() as session:
        again = run_module("sensorstack.iot.grafana_folder", grafana.args(at=session.url, uid=uid, title=f"Site {uid}"))
    assert not again["changed"] and session.writes() == []
    with grafana.recorded() as session:
        planned = run_module(
            "sensorstack.iot.grafana_folder", grafana.args(at=session.url, uid=uid, title=f"Renamed {uid}"), check=True
        )
    assert planned["changed"] and session.writes() == []
    renamed = run_module("sensorstack.iot.grafana_folder", grafana.args(uid=uid, title=f"Renamed {uid}"), diff=True)
    assert renamed["changes"] == ["title"]
    assert renamed["diff"] == {
        "before": {"uid": uid, "title": f"Site {uid}"},
        "after": {"uid": uid, "title": f"Renamed {uid}"},
    }
    assert grafana.api("GET", f"/api/folders/{uid}")[1]["title"] == f"Renamed {uid}"
    assert run_module("sensorstack.iot.grafana_folder", grafana.args(uid=uid, state="absent"))["changed"]
    assert grafana.api("GET", f"/api/folders/{uid}")[0] == 404
    assert not run_module("sensorstack.iot.grafana_folder", grafana.args(uid=uid, state="absent"))["changed"]


def test_a_folder_title_taken_by_another_folder_names_that_folder(grafana: Grafana) -> None:
    holder, uid = grafana.uid("folder"), grafana.uid("folder")
    run_module("sensorstack.iot.grafana_folder", grafana.args(uid=holder, title=f"Taken {holder}"))
    result = run_module("sensorstack.iot.grafana_folder", grafana.args(uid=uid, title=f"Taken {holder}"))
    assert_failed(result, f"is already used by folder {holder!r}")


def test_a_concurrent_folder_rename_fails_clearly(grafana: Grafana) -> None:
    uid = grafana.uid("folder")
    run_module("sensorstack.iot.grafana_folder", grafana.args(uid=uid, title=f"Site {uid}"))

    def someone_renames() -> None:
        assert grafana.api("PUT", f"/api/folders/{uid}", {"title": f"Theirs {uid}", "overwrite": True})[0] == 200

    with grafana.interleaving("GET", f"/api/folders/{uid}", someone_renames) as url:
        result = run_module("sensorstack.iot.grafana_folder", grafana.args(at=url, uid=uid, title=f"Mine {uid}"))
    assert_failed(result, f"folder {uid!r} was changed by someone else", "nothing was overwritten")
    assert grafana.api("GET", f"/api/folders/{uid}")[1]["title"] == f"Theirs {uid}"


# --- grafana_datasource -----------------------------------------------------------------------------------------------


def influx_args(grafana: Grafana, uid: str, **extra: Any) -> dict[str, Any]:
    options = {
        "name": f"InfluxDB {uid}",
        "uid": uid,
        "type": "influxdb",
        "access": "proxy",
        "url": "http://influxdb.sensorstack.svc:8086",
        "user": "grafana",
        "json_data": {"dbName": "sensors", "httpMode": "POST"},
        "secure_json_data": {"password": SECRET},
    }
    return grafana.args(url_option="grafana_url", **(options | extra))


def test_a_datasource_is_created_with_its_secret_and_a_rerun_changes_nothing(grafana: Grafana) -> None:
    uid = grafana.uid("datasource")
    created = run_module("sensorstack.iot.grafana_datasource", influx_args(grafana, uid), diff=True)
    assert created["changed"] and created["changes"] == ["created"] and created["uid"] == uid
    assert created["datasource"]["secureJsonFields"] == {"password": True}
    assert SECRET not in json.dumps(created)
    stored = grafana.api("GET", f"/api/datasources/uid/{uid}")[1]
    assert (stored["type"], stored["access"], stored["jsonData"]) == (
        "influxdb",
        "proxy",
        {"dbName": "sensors", "httpMode": "POST"},
    )
    if grafana.double is not None:
        assert grafana.double.secrets_of(uid) == {"password": SECRET}
    with grafana.recorded() as session:
        again = run_module(
            "sensorstack.iot.grafana_datasource", influx_args(grafana, uid) | {"grafana_url": session.url}
        )
    assert not again["changed"] and session.writes() == []


def test_a_changed_datasource_is_updated_by_uid_with_secrets_masked_in_the_diff(grafana: Grafana) -> None:
    uid = grafana.uid("datasource")
    run_module("sensorstack.iot.grafana_datasource", influx_args(grafana, uid))
    changed = influx_args(grafana, uid, url="http://influxdb.lab:8086", json_data={"dbName": "lab", "httpMode": "POST"})
    with grafana.recorded() as session:
        result = run_module("sensorstack.iot.grafana_datasource", changed | {"grafana_url": session.url}, diff=True)
    assert result["changed"] and result["changes"] == ["url", "jsonData"]
    assert session.writes() == [f"PUT /api/datasources/uid/{uid}"]
    assert result["diff"]["before"]["url"] == "http://influxdb.sensorstack.svc:8086"
    assert result["diff"]["after"]["url"] == "http://influxdb.lab:8086"
    assert result["diff"]["after"]["secureJsonData"] == {"password": "********"}
    assert SECRET not in json.dumps(result)
    assert not run_module("sensorstack.iot.grafana_datasource", changed)["changed"]


def test_check_mode_on_a_datasource_sends_no_write(grafana: Grafana) -> None:
    uid = grafana.uid("datasource")
    with grafana.recorded() as session:
        planned = run_module(
            "sensorstack.iot.grafana_datasource", influx_args(grafana, uid) | {"grafana_url": session.url}, check=True
        )
    assert planned["changed"] and session.writes() == []
    assert grafana.api("GET", f"/api/datasources/uid/{uid}")[0] == 404


def test_secrets_follow_update_secure_json_data(grafana: Grafana) -> None:
    uid = grafana.uid("datasource")
    run_module("sensorstack.iot.grafana_datasource", influx_args(grafana, uid))
    rotated = influx_args(grafana, uid, secure_json_data={"password": "rotated-secret"})
    assert not run_module("sensorstack.iot.grafana_datasource", rotated)["changed"]
    always = run_module(
        "sensorstack.iot.grafana_datasource", rotated | {"update_secure_json_data": "always"}, diff=True
    )
    assert always["changed"] and always["changes"] == ["secureJsonData"]
    assert always["diff"]["after"]["secureJsonData"] == {"password": "******** (written by this task)"}
    if grafana.double is not None:
        assert grafana.double.secrets_of(uid) == {"password": "rotated-secret"}
    added = influx_args(grafana, uid, secure_json_data={"password": "rotated-secret", "basicAuthPassword": "b"})
    first = run_module("sensorstack.iot.grafana_datasource", added)
    assert first["changed"] and first["datasource"]["secureJsonFields"] == {"password": True, "basicAuthPassword": True}
    assert not run_module("sensorstack.iot.grafana_datasource", added)["changed"]


def test_options_left_out_keep_the_servers_values(grafana: Grafana) -> None:
    uid = grafana.uid("datasource")
    run_module("sensorstack.iot.grafana_datasource", influx_args(grafana, uid))
    minimal = grafana.args(url_option="grafana_url", name=f"InfluxDB {uid}", uid=uid, type="influxdb")
    assert not run_module("sensorstack.iot.grafana_datasource", minimal)["changed"]
    assert grafana.api("GET", f"/api/datasources/uid/{uid}")[1]["url"] == "http://influxdb.sensorstack.svc:8086"


def test_a_datasource_is_renamed_through_its_uid(grafana: Grafana) -> None:
    uid = grafana.uid("datasource")
    run_module("sensorstack.iot.grafana_datasource", influx_args(grafana, uid))
    renamed = run_module("sensorstack.iot.grafana_datasource", influx_args(grafana, uid, name=f"Renamed {uid}"))
    assert renamed["changes"] == ["name"] and renamed["datasource"]["name"] == f"Renamed {uid}"


def test_a_name_held_by_another_uid_is_explained(grafana: Grafana) -> None:
    holder, uid = grafana.uid("datasource"), grafana.uid("datasource")
    run_module("sensorstack.iot.grafana_datasource", influx_args(grafana, holder))
    result = run_module("sensorstack.iot.grafana_datasource", influx_args(grafana, uid, name=f"InfluxDB {holder}"))
    assert_failed(result, f"already exists with uid {holder!r}", f"give uid: {holder}")


def test_a_datasource_changed_concurrently_fails_clearly(grafana: Grafana) -> None:
    uid = grafana.uid("datasource")
    run_module("sensorstack.iot.grafana_datasource", influx_args(grafana, uid))

    def someone_edits() -> None:
        current = grafana.api("GET", f"/api/datasources/uid/{uid}")[1]
        edited = {key: current[key] for key in ("name", "type", "access", "url", "user", "jsonData", "version")}
        assert grafana.api("PUT", f"/api/datasources/uid/{uid}", edited | {"url": "http://theirs:8086"})[0] == 200

    with grafana.interleaving("GET", f"/api/datasources/uid/{uid}", someone_edits) as url:
        result = run_module(
            "sensorstack.iot.grafana_datasource",
            influx_args(grafana, uid, url="http://mine:8086") | {"grafana_url": url},
        )
    assert_failed(result, "was changed by someone else", "nothing was overwritten")
    assert grafana.api("GET", f"/api/datasources/uid/{uid}")[1]["url"] == "http://theirs:8086"


def test_a_datasource_is_removed_by_name(grafana: Grafana) -> None:
    uid = grafana.uid("datasource")
    run_module("sensorstack.iot.grafana_datasource", influx_args(grafana, uid))
    absent = grafana.args(url_option="grafana_url", name=f"InfluxDB {uid}", state="absent")
    with grafana.recorded() as session:
        planned = run_module("sensorstack.iot.grafana_datasource", absent | {"grafana_url": session.url}, check=True)
    assert planned["changed"] and session.writes() == []
    assert run_module("sensorstack.iot.grafana_datasource", absent)["changes"] == ["deleted"]
    assert grafana.api("GET", f"/api/datasources/uid/{uid}")[0] == 404
    assert not run_module("sensorstack.iot.grafana_datasource", absent)["changed"]


@only_on_the_double
def test_a_provisioned_datasource_is_left_alone_or_reported(grafana: Grafana) -> None:
    assert grafana.double is not None
    uid = grafana.uid("datasource")
    provisioned = {
        "name": f"InfluxDB {uid}",
        "uid": uid,
        "type": "influxdb",
        "access": "proxy",
        "url": "http://influxdb.sensorstack.svc:8086",
        "user": "grafana",
        "jsonData": {"dbName": "sensors", "httpMode": "POST"},
        "secureJsonData": {"password": SECRET},
    }
    grafana.double.add_provisioned_datasource(provisioned)
    assert not run_module("sensorstack.iot.grafana_datasource", influx_args(grafana, uid))["changed"]
    result = run_module("sensorstack.iot.grafana_datasource", influx_args(grafana, uid, url="http://other:8086"))
    assert_failed(result, "is provisioned from a file", "read-only", "differs in: url")


# --- Connection -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "args"),
    [
        ("sensorstack.iot.grafana_dashboard", {"uid": "sstest-any", "state": "absent"}),
        ("sensorstack.iot.grafana_folder", {"uid": "sstest-any", "state": "absent"}),
        ("sensorstack.iot.grafana_datasource", {"name": "sstest-any", "state": "absent"}),
    ],
)
def test_wrong_credentials_fail_clearly(grafana: Grafana, module: str, args: dict[str, Any]) -> None:
    url_option = "grafana_url" if module.endswith("datasource") else "url"
    wrong = {"url_username": f"sstest-nobody-{uuid.uuid4().hex[:6]}", "url_password": "wrong"}
    connection = {key: value for key, value in grafana.credentials.items() if key in ("validate_certs", "ca_path")}
    result = run_module(module, {url_option: grafana.url, **connection, **wrong, **args})
    assert_failed(result, "HTTP 401", "check url_username/url_password or token")


def test_a_wrong_token_fails_clearly(grafana: Grafana) -> None:
    connection = {key: value for key, value in grafana.credentials.items() if key in ("validate_certs", "ca_path")}
    result = run_module(
        "sensorstack.iot.grafana_folder",
        {"url": grafana.url, "token": "glsa_sstest_wrong", **connection, "uid": "x", "state": "absent"},
    )
    assert_failed(result, "HTTP 401")
    assert "glsa_sstest_wrong" not in json.dumps(result)


def test_an_unreachable_grafana_fails_clearly_after_retries() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run_module(
        "sensorstack.iot.grafana_folder", {"url": url, "token": "glsa_sstest_unreachable", "uid": "x", "title": "X"}
    )
    assert_failed(result, f"cannot reach Grafana at {url}", "after 3 attempt(s)")


@only_on_the_double
def test_a_token_and_an_organization_are_honoured(grafana: Grafana) -> None:
    assert grafana.double is not None
    grafana.double.add_org(7, "Lab", members=("admin",))
    uid = grafana.uid("folder")
    in_org = run_module("sensorstack.iot.grafana_folder", grafana.args(uid=uid, title=f"Lab {uid}", org_id=7))
    assert in_org["changed"] and grafana.api("GET", f"/api/folders/{uid}")[0] == 404
    token = {"url": grafana.url, "token": DOUBLE_TOKEN, "uid": uid, "title": f"Main {uid}"}
    assert run_module("sensorstack.iot.grafana_folder", token)["changed"]
    refused = run_module("sensorstack.iot.grafana_folder", token | {"org_id": 7})
    assert_failed(refused, "HTTP 401", "API key does not belong to the requested organization")
