"""The Grafana API double answers as Grafana does: status codes and bodies from Grafana's docs and server source.

Each test names the rule it pins; the citations are Grafana's HTTP API documentation (``/docs/grafana/latest/
developers/http_api/``: dashboard, data_source, folder, other) and, where the docs are silent, the server source
(``pkg/api/datasources.go``, ``pkg/api/apierrors``, ``pkg/services/dashboards/errors.go``). The module tests trust the
double only as far as these tests pin it. The double runs on loopback in-process, so these tests take milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.grafana_double import GrafanaDouble, InterleavingProxy, JsonApi, basic_auth

PASSWORD = "s3cret-for-tests"
TOKEN = "glsa_test_token"


@pytest.fixture
def double() -> Iterator[GrafanaDouble]:
    with GrafanaDouble(password=PASSWORD, token=TOKEN) as server:
        yield server


@pytest.fixture
def api(double: GrafanaDouble) -> JsonApi:
    return JsonApi(double.url, basic_auth("admin", PASSWORD))


def save(api: JsonApi, dashboard: dict[str, Any], **extra: Any) -> tuple[int, Any]:
    return api("POST", "/api/dashboards/db", {"dashboard": dashboard, **extra})


# --- Health and auth (docs: other.md "Health API"; authentication.md) ------------------------------------------------


def test_health_needs_no_auth_and_reports_the_database(double: GrafanaDouble) -> None:
    status, body = JsonApi(double.url, None)("GET", "/api/health")
    assert status == 200
    assert body["database"] == "ok" and body["version"]


def test_health_is_503_with_a_failing_database(double: GrafanaDouble) -> None:
    double.set_database_ok(False)
    status, body = JsonApi(double.url, None)("GET", "/api/health")
    assert (status, body["database"]) == (503, "failing")


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "Unauthorized"),
        (basic_auth("admin", "wrong"), "Invalid username or password"),
        (basic_auth("nobody", PASSWORD), "Invalid username or password"),
        ("Bearer glsa_not_a_token", "Invalid API key"),
        ("Token " + TOKEN, "Unauthorized"),
    ],
)
def test_missing_or_wrong_credentials_are_401(double: GrafanaDouble, authorization: str | None, message: str) -> None:
    status, body = JsonApi(double.url, authorization)("GET", "/api/folders")
    assert (status, body["message"]) == (401, message)


def test_basic_auth_and_a_bearer_token_are_both_accepted(double: GrafanaDouble) -> None:
    assert JsonApi(double.url, basic_auth("admin", PASSWORD))("GET", "/api/user")[1]["login"] == "admin"
    assert JsonApi(double.url, "Bearer " + TOKEN)("GET", "/api/folders") == (200, [])


def test_the_org_header_selects_the_organization_the_caller_belongs_to(double: GrafanaDouble) -> None:
    double.add_org(2, "Lab", members=("admin",))
    JsonApi(double.url, basic_auth("admin", PASSWORD), org=2)("POST", "/api/folders", {"uid": "lab", "title": "Lab"})
    assert JsonApi(double.url, basic_auth("admin", PASSWORD), org=2)("GET", "/api/folders")[1][0]["uid"] == "lab"
    assert JsonApi(double.url, basic_auth("admin", PASSWORD))("GET", "/api/folders") == (200, [])
    status, body = JsonApi(double.url, "Bearer " + TOKEN, org=2)("GET", "/api/folders")
    assert (status, body["message"]) == (401, "API key does not belong to the requested organization")
    assert JsonApi(double.url, basic_auth("admin", PASSWORD), org=9)("GET", "/api/folders")[0] == 401


# --- Dashboards (docs: dashboard.md "Create / Update dashboard", "Get dashboard by uid", "Delete dashboard by uid") --


def test_a_new_dashboard_gets_version_1_an_id_and_the_given_uid(api: JsonApi) -> None:
    status, body = save(api, {"uid": "temps", "title": "Temperatures", "panels": []})
    assert status == 200
    assert body["status"] == "success" and body["uid"] == "temps" and body["version"] == 1
    assert body["url"] == "/d/temps/temperatures" and body["slug"] == "temperatures" and body["id"] > 0


def test_a_dashboard_without_uid_gets_a_generated_one_each_time(api: JsonApi) -> None:
    first = save(api, {"title": "No uid"})[1]["uid"]
    second = save(api, {"title": "No uid either"})[1]["uid"]
    assert first and second and first != second and len(first) <= 40


def test_get_returns_the_stored_json_with_id_uid_version_and_meta(api: JsonApi) -> None:
    save(api, {"uid": "temps", "title": "Temperatures", "tags": ["iot"]})
    status, body = api("GET", "/api/dashboards/uid/temps")
    assert status == 200
    assert body["dashboard"] == {"uid": "temps", "title": "Temperatures", "tags": ["iot"], "id": 1, "version": 1}
    assert body["meta"]["folderUid"] == "" and body["meta"]["provisioned"] is False
    assert body["meta"]["url"] == "/d/temps/temperatures"


def test_an_absent_dashboard_is_404_not_found(api: JsonApi) -> None:
    assert api("GET", "/api/dashboards/uid/nope") == (404, {"message": "Dashboard not found", "status": "not-found"})


def test_an_update_with_the_stored_version_counts_up(api: JsonApi) -> None:
    save(api, {"uid": "temps", "title": "Temperatures"})
    status, body = save(api, {"uid": "temps", "title": "Temperatures", "version": 1, "refresh": "1m"})
    assert (status, body["version"]) == (200, 2)
    assert api("GET", "/api/dashboards/uid/temps")[1]["dashboard"]["refresh"] == "1m"


def test_a_stale_version_without_overwrite_is_412_version_mismatch(api: JsonApi) -> None:
    save(api, {"uid": "temps", "title": "Temperatures"})
    save(api, {"uid": "temps", "title": "Temperatures", "version": 1})
    status, body = save(api, {"uid": "temps", "title": "Edited elsewhere", "version": 1})
    assert status == 412
    assert body == {"status": "version-mismatch", "message": "The dashboard has been changed by someone else"}
    assert api("GET", "/api/dashboards/uid/temps")[1]["dashboard"]["title"] == "Temperatures"


def test_an_update_without_any_version_is_also_a_mismatch(api: JsonApi) -> None:
    save(api, {"uid": "temps", "title": "Temperatures"})
    assert save(api, {"uid": "temps", "title": "Temperatures"})[0] == 412


def test_overwrite_saves_over_a_stale_version(api: JsonApi) -> None:
    save(api, {"uid": "temps", "title": "Temperatures"})
    status, body = save(api, {"uid": "temps", "title": "Mine", "version": 7}, overwrite=True)
    assert (status, body["version"]) == (200, 2)


def test_an_empty_title_is_400(api: JsonApi) -> None:
    status, body = save(api, {"uid": "temps", "title": "  "})
    assert (status, body["message"]) == (400, "Dashboard title cannot be empty")


@pytest.mark.parametrize(
    ("uid", "message"), [("x" * 41, "uid too long, max 40 characters"), ("bad uid!", "uid contains illegal characters")]
)
def test_a_malformed_uid_is_400(api: JsonApi, uid: str, message: str) -> None:
    assert save(api, {"uid": uid, "title": "T"}) == (400, {"message": message})


def test_the_same_title_in_a_folder_under_another_uid_is_412_name_exists(api: JsonApi) -> None:
    save(api, {"uid": "one", "title": "Temperatures"})
    status, body = save(api, {"uid": "two", "title": "Temperatures"})
    assert (status, body["status"]) == (412, "name-exists")


def test_saving_into_a_folder_moves_the_dashboard_and_omitting_it_moves_it_back_to_general(api: JsonApi) -> None:
    api("POST", "/api/folders", {"uid": "site-a", "title": "Site A"})
    save(api, {"uid": "temps", "title": "Temperatures"})
    save(api, {"uid": "temps", "title": "Temperatures", "version": 1}, folderUid="site-a")
    meta = api("GET", "/api/dashboards/uid/temps")[1]["meta"]
    assert (meta["folderUid"], meta["folderTitle"]) == ("site-a", "Site A")
    save(api, {"uid": "temps", "title": "Temperatures", "version": 2})
    assert api("GET", "/api/dashboards/uid/temps")[1]["meta"]["folderUid"] == ""


def test_saving_into_an_unknown_folder_is_400(api: JsonApi) -> None:
    assert save(api, {"uid": "temps", "title": "T"}, folderUid="nope") == (400, {"message": "folder not found"})


def test_delete_answers_with_the_title_and_then_the_dashboard_is_gone(api: JsonApi) -> None:
    dashboard_id = save(api, {"uid": "temps", "title": "Temperatures"})[1]["id"]
    status, body = api("DELETE", "/api/dashboards/uid/temps")
    assert (status, body) == (
        200,
        {"title": "Temperatures", "message": "Dashboard Temperatures deleted", "id": dashboard_id},
    )
    assert api("DELETE", "/api/dashboards/uid/temps")[0] == 404


def test_a_provisioned_dashboard_cannot_be_saved_or_deleted(double: GrafanaDouble, api: JsonApi) -> None:
    double.add_provisioned_dashboard({"uid": "fixed", "title": "Fixed"})
    assert api("GET", "/api/dashboards/uid/fixed")[1]["meta"]["provisioned"] is True
    assert save(api, {"uid": "fixed", "title": "Fixed", "version": 1}) == (
        400,
        {"message": "Cannot save provisioned dashboard"},
    )
    assert api("DELETE", "/api/dashboards/uid/fixed")[0] == 400


# --- Datasources (docs: data_source.md; pkg/api/datasources.go) ---------------------------------------------------

INFLUX = {
    "name": "InfluxDB",
    "uid": "influx",
    "type": "influxdb",
    "access": "proxy",
    "url": "http://influxdb.sensorstack.svc:8086",
    "user": "grafana",
    "jsonData": {"dbName": "sensors", "httpMode": "POST"},
    "secureJsonData": {"password": "reader-secret"},
}


def test_creating_a_datasource_answers_datasource_added_and_hides_the_secret(api: JsonApi) -> None:
    status, body = api("POST", "/api/datasources", INFLUX)
    assert status == 200
    assert (body["message"], body["name"]) == ("Datasource added", "InfluxDB")
    assert body["datasource"]["secureJsonFields"] == {"password": True}
    assert "secureJsonData" not in json.dumps(body) and "reader-secret" not in json.dumps(body)


def test_a_datasource_reads_back_by_uid_and_by_name_with_every_documented_field(api: JsonApi) -> None:
    api("POST", "/api/datasources", INFLUX)
    by_uid = api("GET", "/api/datasources/uid/influx")[1]
    assert api("GET", "/api/datasources/name/InfluxDB")[1] == by_uid
    expected = {"id", "uid", "orgId", "name", "type", "access", "url", "user", "database", "basicAuth"}
    expected |= {"basicAuthUser", "withCredentials", "isDefault", "jsonData", "secureJsonFields", "version", "readOnly"}
    assert expected <= set(by_uid)
    assert (by_uid["version"], by_uid["readOnly"], by_uid["jsonData"]["httpMode"]) == (1, False, "POST")


def test_an_absent_datasource_is_404_data_source_not_found(api: JsonApi) -> None:
    assert api("GET", "/api/datasources/uid/nope") == (404, {"message": "Data source not found"})
    assert api("GET", "/api/datasources/name/nope") == (404, {"message": "Data source not found"})


def test_a_duplicate_name_or_uid_is_409(api: JsonApi) -> None:
    api("POST", "/api/datasources", INFLUX)
    status, body = api("POST", "/api/datasources", INFLUX | {"uid": "other"})
    assert (status, body["message"]) == (409, "data source with the same name already exists")
    status, body = api("POST", "/api/datasources", INFLUX | {"name": "Other"})
    assert (status, body["message"]) == (409, "data source with the same uid already exists")


def test_an_update_keeps_secrets_it_does_not_name_and_counts_the_version(double: GrafanaDouble, api: JsonApi) -> None:
    api("POST", "/api/datasources", INFLUX)
    update = {key: value for key, value in INFLUX.items() if key != "secureJsonData"} | {"url": "http://new:8086"}
    status, body = api("PUT", "/api/datasources/uid/influx", update | {"version": 1})
    assert (status, body["message"]) == (200, "Datasource updated")
    assert body["datasource"]["version"] == 2 and body["datasource"]["url"] == "http://new:8086"
    assert double.secrets_of("influx") == {"password": "reader-secret"}
    api("PUT", "/api/datasources/uid/influx", update | {"version": 2, "secureJsonData": {"password": "rotated"}})
    assert double.secrets_of("influx") == {"password": "rotated"}


def test_an_update_older_than_the_stored_version_is_409(api: JsonApi) -> None:
    api("POST", "/api/datasources", INFLUX)
    api("PUT", "/api/datasources/uid/influx", INFLUX | {"version": 1})
    status, body = api("PUT", "/api/datasources/uid/influx", INFLUX | {"version": 1})
    assert status == 409
    assert body["message"] == "Datasource has already been updated by someone else. Please reload and try again"


def test_renaming_onto_another_datasource_name_is_409(api: JsonApi) -> None:
    api("POST", "/api/datasources", INFLUX)
    api("POST", "/api/datasources", INFLUX | {"uid": "second", "name": "Second"})
    status, _ = api("PUT", "/api/datasources/uid/second", INFLUX | {"uid": "second", "name": "InfluxDB"})
    assert status == 409


def test_a_provisioned_datasource_is_read_only(double: GrafanaDouble, api: JsonApi) -> None:
    double.add_provisioned_datasource(INFLUX)
    assert api("GET", "/api/datasources/uid/influx")[1]["readOnly"] is True
    assert api("PUT", "/api/datasources/uid/influx", INFLUX) == (
        403,
        {"message": "Cannot update read-only data source"},
    )
    assert api("DELETE", "/api/datasources/uid/influx") == (403, {"message": "Cannot delete read-only data source"})


def test_a_new_default_datasource_clears_the_old_default(api: JsonApi) -> None:
    api("POST", "/api/datasources", INFLUX | {"isDefault": True})
    api("POST", "/api/datasources", INFLUX | {"uid": "second", "name": "Second", "isDefault": True})
    defaults = {item["uid"]: item["isDefault"] for item in api("GET", "/api/datasources")[1]}
    assert defaults == {"influx": False, "second": True}


def test_deleting_by_uid_or_by_name_answers_data_source_deleted(api: JsonApi) -> None:
    created = api("POST", "/api/datasources", INFLUX)[1]
    assert api("DELETE", "/api/datasources/uid/influx") == (
        200,
        {"message": "Data source deleted", "id": created["id"]},
    )
    api("POST", "/api/datasources", INFLUX)
    assert api("DELETE", "/api/datasources/name/InfluxDB")[1]["message"] == "Data source deleted"
    assert api("DELETE", "/api/datasources/name/InfluxDB")[0] == 404


# --- Folders (docs: folder.md; pkg/api/apierrors/folder.go) -------------------------------------------------------


def test_a_folder_is_created_read_and_absent_folders_are_404(api: JsonApi) -> None:
    status, body = api("POST", "/api/folders", {"uid": "site-a", "title": "Site A"})
    assert (status, body["uid"], body["title"], body["version"]) == (200, "site-a", "Site A", 1)
    assert api("GET", "/api/folders/site-a")[1]["url"] == "/dashboards/f/site-a/site-a"
    assert api("GET", "/api/folders/nope") == (404, {"status": "not-found", "message": "folder not found"})


def test_a_duplicate_folder_uid_or_title_is_409(api: JsonApi) -> None:
    api("POST", "/api/folders", {"uid": "site-a", "title": "Site A"})
    assert api("POST", "/api/folders", {"uid": "site-a", "title": "Other"})[0] == 409
    assert api("POST", "/api/folders", {"uid": "other", "title": "Site A"})[0] == 409


def test_a_folder_update_with_a_stale_version_is_412_and_overwrite_wins(api: JsonApi) -> None:
    api("POST", "/api/folders", {"uid": "site-a", "title": "Site A"})
    assert api("PUT", "/api/folders/site-a", {"title": "Site A1", "version": 1})[1]["version"] == 2
    status, body = api("PUT", "/api/folders/site-a", {"title": "Site A2", "version": 1})
    assert (status, body["status"]) == (412, "version-mismatch")
    assert api("PUT", "/api/folders/site-a", {"title": "Site A2", "overwrite": True})[1]["title"] == "Site A2"


def test_folders_are_listed_by_title_in_pages(api: JsonApi) -> None:
    for number in range(5):
        api("POST", "/api/folders", {"uid": f"f{number}", "title": f"Folder {number}"})
    assert [f["uid"] for f in api("GET", "/api/folders?limit=2&page=1")[1]] == ["f0", "f1"]
    assert [f["uid"] for f in api("GET", "/api/folders?limit=2&page=3")[1]] == ["f4"]
    assert api("GET", "/api/folders?limit=2&page=4")[1] == []
    assert len(api("GET", "/api/folders")[1]) == 5


def test_deleting_a_folder_deletes_its_dashboards(api: JsonApi) -> None:
    api("POST", "/api/folders", {"uid": "site-a", "title": "Site A"})
    save(api, {"uid": "temps", "title": "Temperatures"}, folderUid="site-a")
    assert api("DELETE", "/api/folders/site-a")[1]["message"] == "Folder deleted"
    assert api("GET", "/api/dashboards/uid/temps")[0] == 404


def test_folders_and_dashboards_share_one_uid_namespace(api: JsonApi) -> None:
    save(api, {"uid": "shared", "title": "Dashboard"})
    assert api("POST", "/api/folders", {"uid": "shared", "title": "Folder"})[0] == 409


# --- The record and the proxy ----------------------------------------------------------------------------------------


def test_every_request_is_recorded_with_the_secret_part_of_auth_removed(double: GrafanaDouble, api: JsonApi) -> None:
    with double.recording() as requests:
        api("GET", "/api/folders")
        api("POST", "/api/folders", {"uid": "a", "title": "A"})
    assert [(r.method, r.path, r.is_write) for r in requests] == [
        ("GET", "/api/folders", False),
        ("POST", "/api/folders", True),
    ]
    assert requests[1].headers["authorization"] == "Basic" and requests[1].body == {"uid": "a", "title": "A"}
    assert [r.path for r in double.writes()] == ["/api/folders"]


def test_the_proxy_records_and_can_interleave_a_concurrent_change(double: GrafanaDouble, api: JsonApi) -> None:
    save(api, {"uid": "temps", "title": "Temperatures"})
    with InterleavingProxy(double.url) as proxy:
        proxy.interleave(
            "GET", "/api/dashboards/uid/temps", lambda: save(api, {"uid": "temps", "title": "Edit", "version": 1})
        )
        seen = JsonApi(proxy.url, basic_auth("admin", PASSWORD))("GET", "/api/dashboards/uid/temps")[1]
    assert seen["dashboard"]["version"] == 1 and proxy.interleaved()
    assert api("GET", "/api/dashboards/uid/temps")[1]["dashboard"]["version"] == 2
    assert [(r.method, r.path) for r in proxy.requests] == [("GET", "/api/dashboards/uid/temps")]
    assert proxy.writes() == []


# --- Persistence (Grafana keeps the API's objects in its database; provisioning rewrites its own at start) -----------


def test_a_restart_from_a_snapshot_keeps_what_the_api_wrote_and_leaves_provisioning_to_the_files(
    double: GrafanaDouble, api: JsonApi
) -> None:
    api("POST", "/api/folders", {"uid": "site-a", "title": "Site A"})
    save(api, {"uid": "temps", "title": "Temperatures"}, folderUid="site-a")
    save(api, {"uid": "temps", "title": "Temperatures", "version": 1}, folderUid="site-a")
    api("POST", "/api/datasources", INFLUX | {"secureJsonData": {"password": "influx-secret"}})
    double.add_provisioned_datasource(INFLUX | {"uid": "from-file", "name": "From file"})
    double.add_provisioned_dashboard({"uid": "shipped", "title": "Shipped"})

    with GrafanaDouble(password=PASSWORD, token=TOKEN) as restarted:
        restarted.state.restore(json.loads(json.dumps(double.state.snapshot())))
        again = JsonApi(restarted.url, basic_auth("admin", PASSWORD))

        dashboard = again("GET", "/api/dashboards/uid/temps")[1]
        assert (dashboard["dashboard"]["version"], dashboard["meta"]["folderUid"]) == (2, "site-a")
        assert again("GET", "/api/folders/site-a")[1]["title"] == "Site A"
        assert again("GET", "/api/datasources/uid/influx")[1]["secureJsonFields"] == {"password": True}
        assert restarted.secrets_of("influx") == {"password": "influx-secret"}
        assert again("GET", "/api/datasources/uid/from-file")[0] == 404
        assert again("GET", "/api/dashboards/uid/shipped")[0] == 404
        created = again("POST", "/api/folders", {"uid": "site-b", "title": "Site B"})[1]
        assert created["id"] > dashboard["dashboard"]["id"]


def test_on_write_sees_each_change_and_no_read_or_refused_write(double: GrafanaDouble, api: JsonApi) -> None:
    seen: list[list[str]] = []
    double.on_write = lambda state: seen.append(sorted(state.orgs[1].folders))

    api("POST", "/api/folders", {"uid": "site-a", "title": "Site A"})
    api("GET", "/api/folders")
    api("POST", "/api/folders", {"uid": "site-a", "title": "Site A"})
    api("DELETE", "/api/folders/site-a")

    assert seen == [["site-a"], []]
