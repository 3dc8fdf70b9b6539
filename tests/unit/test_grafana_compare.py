"""Dashboard, folder and datasource normalisation and comparison: what makes the modules converge without flapping."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.sensorstack.iot.plugins.module_utils.grafana_compare import (
    SECRET_MASK,
    dashboard_changes,
    dashboard_diff_view,
    dashboard_payload,
    dashboard_problems,
    dashboard_uid,
    datasource_body,
    datasource_changes,
    datasource_result,
    datasource_view,
    folder_changes,
    normalize_dashboard,
    secrets_to_write,
    uid_problem,
    wanted_datasource,
)

SHIPPED = Path(__file__).resolve().parents[2] / "roles/grafana/files/dashboards"

WANTED = {"uid": "temps", "title": "Temperatures", "panels": [{"id": 1, "type": "timeseries"}], "tags": ["iot"]}


def stored(dashboard: dict[str, Any], version: int = 3, folder_uid: str = "", dashboard_id: int = 17) -> dict[str, Any]:
    """Grafana's answer to GET /api/dashboards/uid/:uid for a dashboard saved from ``dashboard``."""
    data = copy.deepcopy(dashboard) | {"id": dashboard_id, "version": version}
    return {"dashboard": data, "meta": {"folderUid": folder_uid, "url": f"/d/{dashboard['uid']}/x"}}


# --- Identity -----------------------------------------------------------------------------------------------------


def test_the_uid_option_wins_over_the_json_uid() -> None:
    assert dashboard_uid({"uid": "from-json"}, "from-option") == "from-option"
    assert dashboard_uid({"uid": "from-json"}, None) == "from-json"


@pytest.mark.parametrize("dashboard", [{}, {"uid": ""}, {"uid": None}, {"uid": "  "}])
def test_a_dashboard_without_any_uid_is_rejected_with_the_reason(dashboard: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"has no uid.*new uid on every save"):
        dashboard_uid(dashboard, None)


@pytest.mark.parametrize(
    ("uid", "fragment"), [("x" * 41, "longer than Grafana's limit of 40"), ("a b", "letters, digits, '-' and '_'")]
)
def test_a_uid_grafana_would_refuse_is_rejected_before_any_request(uid: str, fragment: str) -> None:
    assert fragment in (uid_problem(uid, "uid") or "")
    with pytest.raises(ValueError, match=fragment):
        dashboard_uid({}, uid)


def test_a_dashboard_needs_a_title_and_must_be_an_object() -> None:
    assert dashboard_problems({"title": " "}) == [
        "the dashboard has no title: Grafana refuses an empty title (HTTP 400)"
    ]
    assert "must be a JSON object" in dashboard_problems(["not", "a", "dashboard"])[0]
    assert dashboard_problems(WANTED) == []


# --- Normalisation and comparison ------------------------------------------------------------------------------------


def test_normalising_drops_what_grafana_owns_and_sets_the_stable_uid() -> None:
    exported = WANTED | {"id": 42, "version": 9, "uid": "someone-elses"}
    assert normalize_dashboard(exported, "temps") == WANTED


def test_normalising_copies_so_the_callers_dashboard_is_untouched() -> None:
    source = copy.deepcopy(WANTED)
    normalize_dashboard(source, "temps")["panels"].append({"id": 2})
    assert source == WANTED


def test_the_same_dashboard_read_back_from_grafana_has_no_changes() -> None:
    assert dashboard_changes(normalize_dashboard(WANTED, "temps"), "", stored(WANTED)) == []


def test_an_exported_dashboard_with_an_old_id_and_version_is_unchanged_against_the_stored_one() -> None:
    exported = normalize_dashboard(WANTED | {"id": 3, "version": 1}, "temps")
    assert dashboard_changes(exported, "", stored(WANTED, version=12, dashboard_id=99)) == []


def test_key_order_does_not_matter() -> None:
    reordered = dict(reversed(list(WANTED.items())))
    assert dashboard_changes(normalize_dashboard(reordered, "temps"), "", stored(WANTED)) == []


def test_a_changed_panel_is_a_dashboard_change() -> None:
    changed = normalize_dashboard(WANTED | {"panels": [{"id": 1, "type": "stat"}]}, "temps")
    assert dashboard_changes(changed, "", stored(WANTED)) == ["dashboard"]


def test_a_panel_removed_in_the_ui_is_a_change_back_to_the_declared_json() -> None:
    edited = WANTED | {"panels": []}
    assert dashboard_changes(normalize_dashboard(WANTED, "temps"), "", stored(edited)) == ["dashboard"]


def test_a_key_added_in_the_ui_is_a_change_back_to_the_declared_json() -> None:
    edited = WANTED | {"refresh": "5s"}
    assert dashboard_changes(normalize_dashboard(WANTED, "temps"), "", stored(edited)) == ["dashboard"]


def test_the_folder_is_part_of_the_wanted_state() -> None:
    wanted = normalize_dashboard(WANTED, "temps")
    assert dashboard_changes(wanted, "site-a", stored(WANTED)) == ["folder"]
    assert dashboard_changes(wanted, "", stored(WANTED, folder_uid="site-a")) == ["folder"]
    assert dashboard_changes(wanted, "site-a", stored(WANTED, folder_uid="site-a")) == []


def test_an_absent_dashboard_is_a_creation() -> None:
    assert dashboard_changes(normalize_dashboard(WANTED, "temps"), "", None) == ["created"]


@pytest.mark.parametrize("path", sorted(SHIPPED.glob("*.json")), ids=lambda path: path.name)
def test_a_shipped_dashboard_read_back_unchanged_is_not_a_change(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    uid = dashboard_uid(dashboard, None)
    roundtrip = json.loads(json.dumps(stored(dashboard)))
    assert (
        dashboard_changes(
            normalize_dashboard(dashboard, uid), "sensorstack", roundtrip | {"meta": {"folderUid": "sensorstack"}}
        )
        == []
    )


# --- Save payload -----------------------------------------------------------------------------------------------------


def test_an_update_is_saved_with_the_version_that_was_read_and_overwrite_as_asked() -> None:
    payload = dashboard_payload(normalize_dashboard(WANTED, "temps"), "site-a", stored(WANTED, version=5), "m", False)
    assert payload["dashboard"]["version"] == 5 and payload["dashboard"]["id"] == 17
    assert payload["folderUid"] == "site-a" and payload["overwrite"] is False and payload["message"] == "m"
    assert dashboard_payload(normalize_dashboard(WANTED, "temps"), "", stored(WANTED), None, True)["overwrite"]


def test_a_creation_never_overwrites_and_carries_no_version() -> None:
    payload = dashboard_payload(normalize_dashboard(WANTED, "temps"), "", None, None, True)
    assert payload["overwrite"] is False and "version" not in payload["dashboard"] and "message" not in payload
    assert payload["dashboard"]["id"] is None and payload["folderUid"] == ""


def test_the_diff_shows_the_json_and_the_folder() -> None:
    assert dashboard_diff_view(None, "") == {}
    assert dashboard_diff_view(WANTED, "") == {"folder_uid": "", "dashboard": WANTED}


# --- Folders ----------------------------------------------------------------------------------------------------------


def test_a_folder_changes_only_when_its_title_does() -> None:
    assert folder_changes("Site A", None) == ["created"]
    assert folder_changes("Site A", {"uid": "a", "title": "Site A", "version": 4}) == []
    assert folder_changes("Site B", {"uid": "a", "title": "Site A"}) == ["title"]


# --- Datasources ------------------------------------------------------------------------------------------------------

OPTIONS = {
    "name": "InfluxDB",
    "uid": "influx",
    "type": "influxdb",
    "url": "http://influxdb.sensorstack.svc:8086",
    "access": None,
    "database": None,
    "user": "grafana",
    "json_data": {"dbName": "sensors", "httpMode": "POST"},
    "is_default": None,
}
CURRENT = {
    "id": 3,
    "uid": "influx",
    "orgId": 1,
    "name": "InfluxDB",
    "type": "influxdb",
    "access": "proxy",
    "url": "http://influxdb.sensorstack.svc:8086",
    "user": "grafana",
    "database": "",
    "basicAuth": False,
    "basicAuthUser": "",
    "withCredentials": False,
    "isDefault": True,
    "jsonData": {"dbName": "sensors", "httpMode": "POST"},
    "secureJsonFields": {"password": True},
    "version": 4,
    "readOnly": False,
}


def test_options_left_out_are_not_part_of_the_wanted_state() -> None:
    wanted = wanted_datasource(OPTIONS)
    assert "access" not in wanted and "isDefault" not in wanted and "database" not in wanted
    assert wanted["jsonData"] == {"dbName": "sensors", "httpMode": "POST"}


def test_a_datasource_matching_the_options_has_no_changes() -> None:
    assert datasource_changes(wanted_datasource(OPTIONS), CURRENT) == []


def test_changed_fields_are_named_as_grafana_names_them() -> None:
    options = OPTIONS | {"url": "http://other:8086", "json_data": {"dbName": "sensors"}, "is_default": False}
    assert datasource_changes(wanted_datasource(options), CURRENT) == ["url", "jsonData", "isDefault"]


def test_an_empty_json_data_matches_a_datasource_without_json_data() -> None:
    assert datasource_changes({"jsonData": {}}, CURRENT | {"jsonData": None}) == []


def test_an_update_carries_every_stored_field_and_the_version_that_was_read() -> None:
    body = datasource_body({"url": "http://other:8086"}, CURRENT, {})
    assert body["url"] == "http://other:8086" and body["version"] == 4 and body["isDefault"] is True
    assert body["basicAuth"] is False and body["jsonData"] == CURRENT["jsonData"] and "secureJsonData" not in body
    assert "secureJsonFields" not in body and "readOnly" not in body and "id" not in body


def test_a_creation_defaults_to_proxy_access_and_not_default() -> None:
    body = datasource_body(wanted_datasource(OPTIONS), None, {"password": "p"})
    assert body["access"] == "proxy" and body["isDefault"] is False
    assert body["secureJsonData"] == {"password": "p"} and "version" not in body


@pytest.mark.parametrize(
    ("policy", "creating", "set_fields", "expected"),
    [
        ("on_create", True, {}, {"password": "p"}),
        ("on_create", False, {"password": True}, {}),
        ("on_create", False, {}, {"password": "p"}),
        ("on_create", False, {"password": False}, {"password": "p"}),
        ("always", False, {"password": True}, {"password": "p"}),
    ],
)
def test_secrets_are_written_only_when_the_policy_says_so(
    policy: str, creating: bool, set_fields: dict[str, bool], expected: dict[str, str]
) -> None:
    assert secrets_to_write({"password": "p"}, set_fields, policy, creating) == expected


def test_a_secret_added_to_the_task_later_is_written_once_with_on_create() -> None:
    wanted = {"password": "p", "basicAuthPassword": "b"}
    assert secrets_to_write(wanted, {"password": True}, "on_create", False) == {"basicAuthPassword": "b"}
    assert secrets_to_write(wanted, {"password": True, "basicAuthPassword": True}, "on_create", False) == {}


def test_empty_secrets_are_never_sent_so_they_cannot_flap() -> None:
    assert secrets_to_write({"password": "", "token": None}, {}, "on_create", False) == {}
    assert secrets_to_write({"password": ""}, {}, "always", True) == {}


def test_the_diff_masks_secrets_and_says_which_the_task_writes() -> None:
    before = datasource_view(CURRENT, CURRENT["secureJsonFields"])
    after = datasource_view(CURRENT, CURRENT["secureJsonFields"], ("password",))
    assert before["secureJsonData"] == {"password": SECRET_MASK}
    assert after["secureJsonData"] == {"password": f"{SECRET_MASK} (written by this task)"}
    assert "p4ss" not in json.dumps([before, after])
    assert datasource_view(None) == {}


def test_the_result_never_carries_a_secret() -> None:
    legacy = CURRENT | {"secureJsonData": {"password": "p"}, "password": "p", "basicAuthPassword": "b"}
    assert set(datasource_result(legacy)) == set(CURRENT)
    assert datasource_result(None) == {}
