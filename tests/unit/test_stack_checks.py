"""The stack roles' semantic checks (one filter per role) and the values the roles read from each other's variables.

The preflight play and each role call the same filters, so these cases are what both refuse.
"""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.sensorstack.iot.plugins.filter.grafana import grafana_clear_credentials, grafana_problems
from ansible_collections.sensorstack.iot.plugins.filter.influxdb import influxdb_problems
from ansible_collections.sensorstack.iot.plugins.filter.mosquitto import mosquitto_problems
from ansible_collections.sensorstack.iot.plugins.filter.stack import (
    admin_password_problems,
    stack_first_database,
    stack_user_password,
)

# --- Shared definitions ---------------------------------------------------------------------------------------------

USERS = [
    {"name": "retired", "password": "old", "state": "absent"},
    {"name": "telegraf", "password": "s3cret"},
    {"name": "grafana"},
]


def test_a_user_s_password_comes_from_the_present_entry_only() -> None:
    assert stack_user_password(USERS, "telegraf") == "s3cret"
    assert stack_user_password(USERS, "retired") == ""
    assert stack_user_password(USERS, "grafana") == ""
    assert stack_user_password([], "telegraf") == ""


def test_the_first_database_is_the_first_present_one_and_none_names_the_variable_to_set() -> None:
    databases = [{"name": "old", "state": "absent"}, {"name": "telemetry"}, {"name": "other"}]
    assert stack_first_database(databases, "telegraf_influxdb_database") == "telemetry"
    with pytest.raises(AnsibleFilterError, match="declares no database: set grafana_influxdb_database"):
        stack_first_database([{"name": "old", "state": "absent"}], "grafana_influxdb_database")
    with pytest.raises(AnsibleFilterError, match="influxdb_databases must be a list"):
        stack_first_database("telemetry", "telegraf_influxdb_database")


@pytest.mark.parametrize("password", [None, "", "short", "changeme", "PASSWORD", "influxdb", "Admin"])
def test_a_missing_short_or_well_known_admin_password_is_refused_without_showing_it(password: Any) -> None:
    problems = admin_password_problems(password, "influxdb_admin_password", "influxdb")
    assert len(problems) == 1 and problems[0].startswith("influxdb_admin_password must be set")
    if password:
        assert repr(password) not in problems[0]


def test_a_real_admin_password_passes() -> None:
    assert admin_password_problems("vaulted-9f2c", "grafana_admin_password", "grafana") == []


# --- mosquitto ------------------------------------------------------------------------------------------------------

PLAIN = {"port": 1883}


def mosquitto(**settings: Any) -> dict[str, Any]:
    return {
        "mosquitto_listeners": [PLAIN],
        "mosquitto_tls_cert": "",
        "mosquitto_tls_key": "",
        "mosquitto_tls_ca": "",
        "mosquitto_acl_patterns": [{"topic": "sensors/%u/#", "access": "write"}],
        "mosquitto_acl_anonymous": [],
        "mosquitto_users": [],
    } | settings


def test_the_shipped_broker_settings_pass() -> None:
    assert mosquitto_problems(mosquitto()) == []


def test_two_listeners_on_one_port_are_named() -> None:
    problems = mosquitto_problems(mosquitto(mosquitto_listeners=[PLAIN, {"port": 1883, "protocol": "websockets"}]))
    assert problems == ["mosquitto_listeners: port 1883 is used by more than one listener"]


def test_a_tls_listener_needs_its_files_from_itself_or_the_shared_variables() -> None:
    bare = mosquitto(mosquitto_listeners=[{"port": 8883, "tls": True}])
    assert mosquitto_problems(bare) == [
        "mosquitto_listeners: the TLS listener on port 8883 needs certfile (or mosquitto_tls_cert)",
        "mosquitto_listeners: the TLS listener on port 8883 needs keyfile (or mosquitto_tls_key)",
    ]
    shared = bare | {"mosquitto_tls_cert": "-----BEGIN CERTIFICATE-----", "mosquitto_tls_key": "-----BEGIN KEY-----"}
    assert mosquitto_problems(shared) == []
    own = mosquitto(mosquitto_listeners=[{"port": 8883, "tls": True, "certfile": "/c", "keyfile": "/k"}])
    assert mosquitto_problems(own) == []


def test_client_certificates_need_a_ca_and_identity_as_username_needs_client_certificates() -> None:
    listener = {"port": 8883, "tls": True, "certfile": "/c", "keyfile": "/k"}
    settings = mosquitto(mosquitto_listeners=[listener | {"require_certificate": True}])
    assert mosquitto_problems(settings) == [
        "mosquitto_listeners: the TLS listener on port 8883: require_certificate needs cafile (or mosquitto_tls_ca)"
    ]
    assert mosquitto_problems(settings | {"mosquitto_tls_ca": "-----BEGIN CERTIFICATE-----"}) == []
    identity = mosquitto(mosquitto_listeners=[listener | {"use_identity_as_username": True}])
    assert mosquitto_problems(identity) == [
        "mosquitto_listeners: the TLS listener on port 8883: use_identity_as_username needs require_certificate"
    ]


def test_acl_rules_need_a_topic_and_a_known_access_wherever_they_are_declared() -> None:
    settings = mosquitto(
        mosquitto_acl_patterns=[{"topic": "", "access": "read"}],
        mosquitto_acl_anonymous=[{"topic": "public/#", "access": "subscribe"}],
        mosquitto_users=[{"name": "dev1", "topics": [{"topic": "sensors/dev1/#", "access": "rw"}]}],
    )
    assert mosquitto_problems(settings) == [
        "mosquitto_acl_patterns: a rule has no topic",
        "mosquitto_acl_anonymous: the rule public/# has access 'subscribe'; use read, write, readwrite, deny",
        "mosquitto_users[dev1].topics: the rule sensors/dev1/# has access 'rw'; use read, write, readwrite, deny",
    ]


# --- influxdb -------------------------------------------------------------------------------------------------------


def test_influxdb_needs_a_real_admin_password_only_with_authentication() -> None:
    assert influxdb_problems({"influxdb_auth_enabled": True, "influxdb_admin_password": "vaulted-9f2c"}) == []
    assert influxdb_problems({"influxdb_auth_enabled": True, "influxdb_admin_password": "influxdb"}) != []
    assert influxdb_problems({"influxdb_auth_enabled": True}) != []
    assert influxdb_problems({"influxdb_auth_enabled": False}) == []


def test_a_credential_in_influxdb_conf_is_refused_on_kubernetes_only_and_never_shown() -> None:
    overrides = {"http": {"shared-secret": "jwt-signing-9f2c", "max-body-size": 0}, "meta": {"token-ttl": ""}}
    settings = {"influxdb_auth_enabled": False, "influxdb_config_overrides": overrides}
    assert influxdb_problems(settings | {"influxdb_platform": "systemd"}) == []
    problems = influxdb_problems(settings | {"influxdb_platform": "kubernetes"})
    assert problems == [
        "influxdb_config_overrides.http.shared-secret: on Kubernetes influxdb.conf is the ConfigMap influxdb-config,"
        " readable by whoever reads ConfigMaps; give it in influxdb_environment (InfluxDB reads"
        " INFLUXDB_<SECTION>_<KEY>, e.g. INFLUXDB_HTTP_SHARED_SECRET), which is the Secret influxdb-environment"
    ]
    assert "jwt-signing" not in " ".join(problems)


def test_influxdb_environment_takes_variable_names_and_one_line_values() -> None:
    settings = {"influxdb_auth_enabled": False}
    assert influxdb_problems(settings | {"influxdb_environment": {"INFLUXDB_HTTP_SHARED_SECRET": "s3cret"}}) == []
    assert influxdb_problems(settings | {"influxdb_environment": {"HTTP SECRET": "x"}}) == [
        "influxdb_environment: environment variable name 'HTTP SECRET' is not a valid name (letters, digits, _)"
    ]
    assert influxdb_problems(settings | {"influxdb_environment": {"INFLUXDB_X": "two\nlines"}}) == [
        "influxdb_environment: environment variable INFLUXDB_X: the value holds a line break or NUL"
    ]
    assert influxdb_problems(settings | {"influxdb_environment": []}) == [
        "influxdb_environment: an environment must be a mapping of variable names to values"
    ]
    overriding = {"INFLUXDB_HTTP_AUTH_ENABLED": False, "INFLUXDB_DATA_DIR": "/tmp"}
    assert influxdb_problems(settings | {"influxdb_environment": overriding}) == [
        "influxdb_environment: INFLUXDB_DATA_DIR would override what the role sets and checks; set influxdb_data_dir",
        "influxdb_environment: INFLUXDB_HTTP_AUTH_ENABLED would override what the role sets and checks; set"
        " influxdb_auth_enabled",
    ]


def test_a_credential_in_an_array_of_tables_is_found_too() -> None:
    overrides = {"graphite": [{"enabled": True}, {"password": "in-the-clear"}]}
    problems = influxdb_problems(
        {"influxdb_auth_enabled": False, "influxdb_platform": "kubernetes", "influxdb_config_overrides": overrides}
    )
    assert [problem.split(":")[0] for problem in problems] == ["influxdb_config_overrides.graphite[1].password"]


# --- grafana --------------------------------------------------------------------------------------------------------


def grafana(**settings: Any) -> dict[str, Any]:
    return {
        "grafana_admin_password": "vaulted-admin-9f2c",
        "grafana_platform": "systemd",
        "grafana_apt_key_checksum": "sha256:" + "a" * 64,
        "grafana_apt_key_url": "https://apt.grafana.com/gpg.key",
        "grafana_influxdb_datasource_enabled": True,
        "grafana_influxdb_user": "grafana",
        "grafana_influxdb_password": "vaulted-reader",
        "grafana_provisioned_datasources": [{"name": "InfluxDB", "isDefault": True}],
        "grafana_dashboards_all": [{"src": "a.json", "folder_uid": "sensors"}, {"src": "b.json"}],
        "grafana_dashboard_folders": [{"uid": "sensors", "title": "Sensors"}],
    } | settings


def test_the_shipped_grafana_settings_pass() -> None:
    assert grafana_problems(grafana()) == []


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"grafana_admin_password": "admin"}, "grafana_admin_password must be set"),
        ({"grafana_apt_key_checksum": ""}, "grafana_apt_key_checksum must pin"),
        ({"grafana_apt_key_checksum": "md5:abc"}, "got 'md5:abc'"),
        ({"grafana_apt_key_checksum": "", "grafana_apt_key_fingerprint": "B53A E77B"}, "got 'B53A E77B'"),
        ({"grafana_influxdb_password": ""}, "grafana_influxdb_user is grafana but grafana_influxdb_password is empty"),
        (
            {
                "grafana_provisioned_datasources": [
                    {"name": "InfluxDB", "isDefault": True},
                    {"name": "Loki", "isDefault": 1},
                ]
            },
            "these are: InfluxDB, Loki",
        ),
        (
            {"grafana_dashboards_all": [{"src": "a.json", "folder_uid": "nope"}]},
            "folder_uid nope of grafana_dashboards",
        ),
    ],
)
def test_each_grafana_refusal_names_its_variable(settings: dict[str, Any], fragment: str) -> None:
    problems = grafana_problems(grafana(**settings))
    assert len(problems) == 1 and fragment in problems[0], problems


def test_an_unpinned_key_is_fine_where_no_apt_repository_is_used() -> None:
    assert grafana_problems(grafana(grafana_platform="kubernetes", grafana_apt_key_checksum="")) == []


def test_no_user_or_no_datasource_needs_no_password() -> None:
    assert grafana_problems(grafana(grafana_influxdb_user="", grafana_influxdb_password="")) == []
    assert grafana_problems(grafana(grafana_influxdb_datasource_enabled=False, grafana_influxdb_password="")) == []


def test_grafanas_key_may_be_pinned_by_its_fingerprint_instead_of_its_checksum() -> None:
    fingerprint = "0123 4567 89AB CDEF 0123  4567 89AB CDEF 0123 4567"
    assert grafana_problems(grafana(grafana_apt_key_checksum="", grafana_apt_key_fingerprint=fingerprint)) == []


def test_on_kubernetes_a_listener_names_no_tls_file_the_broker_pod_lacks() -> None:
    own = {"port": 8883, "tls": True, "certfile": "/etc/mosquitto/certs/site.crt", "keyfile": "/etc/mosquitto/k"}
    on_kubernetes = mosquitto(mosquitto_listeners=[own], mosquitto_platform="kubernetes")
    assert mosquitto_problems(on_kubernetes) == [
        "mosquitto_listeners: the TLS listener on port 8883 names certfile /etc/mosquitto/certs/site.crt, which the"
        " broker's pod does not have on Kubernetes (its files come from the Secret mosquitto alone): give the PEM"
        " text in mosquitto_tls_cert and leave certfile out",
        "mosquitto_listeners: the TLS listener on port 8883 names keyfile /etc/mosquitto/k, which the broker's pod"
        " does not have on Kubernetes (its files come from the Secret mosquitto alone): give the PEM text in"
        " mosquitto_tls_key and leave keyfile out",
    ]
    # On a host the files may be the operator's own; on Kubernetes, naming the files the role places is fine.
    assert mosquitto_problems(on_kubernetes | {"mosquitto_platform": "systemd"}) == []
    placed = on_kubernetes | {"mosquitto_tls_placed_files": ["/etc/mosquitto/certs/site.crt", "/etc/mosquitto/k"]}
    assert mosquitto_problems(placed) == []


@pytest.mark.parametrize(
    ("settings", "clear"),
    [
        ({"grafana_ini": {"smtp": {"password": "in-the-clear"}}}, True),
        ({"grafana_ini": {"smtp": {"password": "$__file{/etc/grafana/secrets/smtp}"}}}, False),
        ({"grafana_ini": {"database": {"url": "postgres://grafana:pw@db/grafana"}}}, True),
        ({"grafana_datasources": [{"name": "x", "secureJsonData": {"token": "in-the-clear"}}]}, True),
        ({"grafana_datasources": [{"name": "x", "secureJsonData": {"token": "$__file{/run/t}"}}]}, False),
        ({"grafana_datasources": [{"name": "x", "url": "http://reader:pw@influxdb:8086"}]}, True),
        ({"grafana_datasources": [{"name": "x", "url": "http://influxdb:8086"}]}, False),
        ({"grafana_ini": {"server": {"http_port": 3000}}, "grafana_datasources": []}, False),
    ],
)
def test_clear_credentials_are_found_on_either_platform(settings: dict[str, Any], clear: bool) -> None:
    """What keeps the systemd role's grafana.ini and provisioning diff from being printed."""
    assert grafana_clear_credentials(settings) is clear
