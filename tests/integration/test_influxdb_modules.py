"""The influxdb_* modules against a real influxd (Debian's 1.6.7) with authentication on.

Each test works in its own database and users, so they share one server. Every change is read back straight
from the server over HTTP, not through the modules.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.tiers import unavailable

from .ansible_module import run_module
from .certificates import SERVER_EXTENSIONS, issue, make_ca
from .influxdb_server import InfluxDBServer

ADMIN_PASSWORD = "admin-Secret-42"


@contextmanager
def own_server(**settings: Any) -> Iterator[InfluxDBServer]:
    """An influxd of the test's own (``settings`` as InfluxDBServer takes them), stopped afterwards."""
    binary = shutil.which("influxd")
    if binary is None:
        unavailable("integration", "needs influxd (apt-get install influxdb)")
    influxd = InfluxDBServer(binary, **settings).start()
    try:
        yield influxd
    finally:
        influxd.stop()


@pytest.fixture(scope="module")
def server() -> Iterator[InfluxDBServer]:
    with own_server() as influxd:
        influxd.query(f"CREATE USER admin WITH PASSWORD '{ADMIN_PASSWORD}' WITH ALL PRIVILEGES")
        yield influxd


def connection(server: InfluxDBServer, password: str = ADMIN_PASSWORD) -> dict[str, Any]:
    return {"url": server.url, "username": "admin", "password": password, "retries": 0}


def module(module_name: str, server: InfluxDBServer, check: bool = False, diff: bool = False, **args: Any) -> dict:
    return run_module(f"sensorstack.iot.{module_name}", connection(server) | args, check=check, diff=diff)


def rows(server: InfluxDBServer, statement: str) -> list[dict[str, Any]]:
    result = server.query(statement, "admin", ADMIN_PASSWORD)["results"][0]
    assert "error" not in result, result
    return [
        dict(zip(series["columns"], values, strict=True))
        for series in result.get("series", [])
        for values in series.get("values", [])
    ]


def retention_policies(server: InfluxDBServer, database: str) -> dict[str, dict[str, Any]]:
    return {row.pop("name"): row for row in rows(server, f'SHOW RETENTION POLICIES ON "{database}"')}


def continuous_queries(server: InfluxDBServer, database: str) -> dict[str, str]:
    result = server.query("SHOW CONTINUOUS QUERIES", "admin", ADMIN_PASSWORD)["results"][0]
    for series in result.get("series", []):
        if series["name"] == database:
            return {name: query for name, query in series.get("values", [])}
    return {}


def snapshot(server: InfluxDBServer) -> str:
    """Everything the modules could change, for 'left the server unchanged' checks."""
    databases = [row["name"] for row in rows(server, "SHOW DATABASES")]
    users = rows(server, "SHOW USERS")
    state = {
        "databases": databases,
        "users": users,
        "grants": {user["user"]: rows(server, f'SHOW GRANTS FOR "{user["user"]}"') for user in users},
        "rps": {database: retention_policies(server, database) for database in databases},
        "cqs": server.query("SHOW CONTINUOUS QUERIES", "admin", ADMIN_PASSWORD),
    }
    return json.dumps(state, sort_keys=True)


def can_log_in(server: InfluxDBServer, user: str, password: str) -> bool:
    return "error" not in server.query("SHOW DATABASES", user, password)


# --- databases ------------------------------------------------------------------------------------------------


def test_database_is_created_once_and_dropped(server: InfluxDBServer) -> None:
    first = module("influxdb_database", server, name="db_life", diff=True)
    assert first["changed"] is True
    assert first["diff"] == {
        "before": {"databases": {"db_life": {"exists": False}}},
        "after": {"databases": {"db_life": {"exists": True}}},
    }
    assert {"name": "db_life"} in rows(server, "SHOW DATABASES")
    assert module("influxdb_database", server, name="db_life")["changed"] is False

    planned = module("influxdb_database", server, name="db_life", state="absent", check=True)
    assert planned["changed"] is True
    assert {"name": "db_life"} in rows(server, "SHOW DATABASES"), "check mode dropped the database"

    assert module("influxdb_database", server, name="db_life", state="absent")["changed"] is True
    assert {"name": "db_life"} not in rows(server, "SHOW DATABASES")
    assert module("influxdb_database", server, name="db_life", state="absent")["changed"] is False


def test_wrong_credentials_fail_clearly_and_change_nothing(server: InfluxDBServer) -> None:
    before = snapshot(server)
    result = run_module(
        "sensorstack.iot.influxdb_database", connection(server, password="wrong") | {"name": "db_denied"}
    )
    assert result["failed"] is True
    assert "authentication failed" in result["msg"]
    assert "check username and password" in result["msg"]
    assert snapshot(server) == before


def test_an_unreachable_server_fails_after_bounded_retries(server: InfluxDBServer) -> None:
    result = run_module(
        "sensorstack.iot.influxdb_database", {"url": "http://127.0.0.1:1", "name": "x", "retries": 1, "timeout": 2}
    )
    assert result["failed"] is True
    assert "cannot reach InfluxDB at http://127.0.0.1:1" in result["msg"]


# --- retention policies ---------------------------------------------------------------------------------------


def test_retention_policy_is_created_compared_in_nanoseconds_and_altered(server: InfluxDBServer) -> None:
    server.query("CREATE DATABASE rp_life", "admin", ADMIN_PASSWORD)
    created = module("influxdb_retention_policy", server, database="rp_life", name="raw", duration="30d", diff=True)
    assert created["changed"] is True
    assert retention_policies(server, "rp_life")["raw"] == {
        "duration": "720h0m0s",
        "shardGroupDuration": "24h0m0s",
        "replicaN": 1,
        "default": False,
    }
    assert created["diff"]["after"]["retention_policies"]["rp_life.raw"]["shard_duration"] == "1d"

    for same in ("720h", "4w2d", "30d"):
        rerun = module("influxdb_retention_policy", server, database="rp_life", name="raw", duration=same)
        assert rerun["changed"] is False, same

    altered = module(
        "influxdb_retention_policy", server, database="rp_life", name="raw", duration="1h30m", shard_duration="1h"
    )
    assert altered["changed"] is True
    assert altered["statements"] == ['ALTER RETENTION POLICY "raw" ON "rp_life" DURATION 1h30m SHARD DURATION 1h']
    assert retention_policies(server, "rp_life")["raw"]["duration"] == "1h30m0s"


def test_default_true_moves_the_default_and_false_never_flaps(server: InfluxDBServer) -> None:
    server.query("CREATE DATABASE rp_default", "admin", ADMIN_PASSWORD)
    args = {"database": "rp_default", "name": "main", "duration": "INF"}
    assert module("influxdb_retention_policy", server, default=True, **args)["changed"] is True
    policies = retention_policies(server, "rp_default")
    assert policies["main"]["default"] is True
    assert policies["autogen"]["default"] is False
    assert module("influxdb_retention_policy", server, default=True, **args)["changed"] is False
    assert module("influxdb_retention_policy", server, default=False, **args)["changed"] is False
    assert retention_policies(server, "rp_default")["main"]["default"] is True


def test_the_servers_autogen_policy_can_be_managed(server: InfluxDBServer) -> None:
    server.query("CREATE DATABASE rp_autogen", "admin", ADMIN_PASSWORD)
    args = {"database": "rp_autogen", "name": "autogen", "duration": "52w"}
    assert module("influxdb_retention_policy", server, **args)["changed"] is True
    assert retention_policies(server, "rp_autogen")["autogen"]["duration"] == "8736h0m0s"
    assert module("influxdb_retention_policy", server, **args)["changed"] is False


def test_retention_policy_check_mode_changes_nothing(server: InfluxDBServer) -> None:
    server.query("CREATE DATABASE rp_check", "admin", ADMIN_PASSWORD)
    before = snapshot(server)
    result = module(
        "influxdb_retention_policy",
        server,
        check=True,
        diff=True,
        database="rp_check",
        name="raw",
        duration="7d",
        default=True,
    )
    assert result["changed"] is True
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"]["retention_policies"]["rp_check.raw"]["default"] is True
    assert snapshot(server) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"name": "short", "duration": "30m"}, "duration: 30m is shorter than the server's minimum of 1h"),
        ({"name": "tiny_shard", "duration": "2d", "shard_duration": "30m"}, "shard_duration: 30m is shorter"),
        (
            {"name": "inverted", "duration": "2h", "shard_duration": "1d"},
            "duration: 2h is shorter than shard_duration 1d",
        ),
        ({"name": "existing", "duration": "12h"}, "current shard duration (shard_duration omitted) 1d"),
        ({"name": "typo", "duration": "30 days"}, "duration: '30 days' is not a duration"),
    ],
)
def test_invalid_retention_policies_fail_naming_the_option_and_leave_the_server_unchanged(
    server: InfluxDBServer, args: dict[str, str], message: str
) -> None:
    server.query("CREATE DATABASE rp_invalid", "admin", ADMIN_PASSWORD)
    server.query('CREATE RETENTION POLICY "existing" ON rp_invalid DURATION 30d REPLICATION 1', "admin", ADMIN_PASSWORD)
    before = snapshot(server)
    result = module("influxdb_retention_policy", server, database="rp_invalid", **args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert snapshot(server) == before


def test_a_policy_on_a_missing_database_is_refused(server: InfluxDBServer) -> None:
    result = module("influxdb_retention_policy", server, database="nowhere", name="raw", duration="1d")
    assert result["failed"] is True
    assert "database 'nowhere' does not exist" in result["msg"]


# --- continuous queries ---------------------------------------------------------------------------------------

CQ_BODY = 'SELECT mean("value") AS "value" INTO "rollup"."readings_1d" FROM readings GROUP BY time(1440m), *'


def test_continuous_query_is_not_recreated_when_the_server_rewrote_it(server: InfluxDBServer) -> None:
    server.query("CREATE DATABASE cq_life", "admin", ADMIN_PASSWORD)
    server.query('CREATE RETENTION POLICY "rollup" ON cq_life DURATION 52w REPLICATION 1', "admin", ADMIN_PASSWORD)
    args = {"database": "cq_life", "name": "daily", "query": CQ_BODY}
    assert module("influxdb_continuous_query", server, **args)["changed"] is True
    stored = continuous_queries(server, "cq_life")["daily"]
    assert "cq_life.autogen.readings" in stored and "time(1d)" in stored, stored  # the server's own rendering
    assert module("influxdb_continuous_query", server, **args)["changed"] is False

    changed = module(
        "influxdb_continuous_query", server, diff=True, **(args | {"query": CQ_BODY.replace("mean", "max")})
    )
    assert changed["changed"] is True
    assert changed["statements"][0] == 'DROP CONTINUOUS QUERY "daily" ON "cq_life"'
    assert "max(value)" in continuous_queries(server, "cq_life")["daily"]
    assert changed["diff"]["before"]["continuous_queries"]["cq_life.daily"] == stored

    resampled = module(
        "influxdb_continuous_query",
        server,
        resample_every="2h",
        resample_for="2d",
        **(args | {"query": CQ_BODY.replace("mean", "max")}),
    )
    assert resampled["changed"] is True
    assert "RESAMPLE EVERY 2h FOR 2d" in continuous_queries(server, "cq_life")["daily"]

    before = snapshot(server)
    assert (
        module("influxdb_continuous_query", server, check=True, database="cq_life", name="daily", state="absent")[
            "changed"
        ]
        is True
    )
    assert snapshot(server) == before
    assert (
        module("influxdb_continuous_query", server, database="cq_life", name="daily", state="absent")["changed"] is True
    )
    assert "daily" not in continuous_queries(server, "cq_life")
    assert (
        module("influxdb_continuous_query", server, database="cq_life", name="daily", state="absent")["changed"]
        is False
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELECT mean(value) INTO out FROM readings", "needs GROUP BY time(<interval>)"),
        ("SELECT mean(value) FROM readings GROUP BY time(1h)", "needs INTO"),
        ("DROP MEASUREMENT readings", "starts with SELECT"),
        ("SELECT mean(value) INTO out FROM readings GROUP BY time(1h) fill(", "error parsing query"),
        ("SELECT mean(value) INTO nope.out FROM readings GROUP BY time(1h)", "retention policy cq_bad.nope does not"),
        ("SELECT mean(value) INTO out FROM elsewhere.autogen.readings GROUP BY time(1h)", "'elsewhere' does not"),
    ],
)
def test_a_malformed_continuous_query_fails_and_keeps_the_old_one(
    server: InfluxDBServer, query: str, message: str
) -> None:
    server.query("CREATE DATABASE cq_bad", "admin", ADMIN_PASSWORD)
    server.query(
        "CREATE CONTINUOUS QUERY keep ON cq_bad BEGIN SELECT mean(value) INTO out FROM readings GROUP BY time(1h) END",
        "admin",
        ADMIN_PASSWORD,
    )
    before = snapshot(server)
    result = module("influxdb_continuous_query", server, database="cq_bad", name="keep", query=query)
    assert result["failed"] is True
    assert message in result["msg"]
    assert snapshot(server) == before


def test_a_query_into_another_databases_default_policy_converges(server: InfluxDBServer) -> None:
    """db..m takes the default policy of db, not of the query's own database."""
    server.query("CREATE DATABASE cq_source", "admin", ADMIN_PASSWORD)
    server.query("CREATE DATABASE cq_archive", "admin", ADMIN_PASSWORD)
    server.query(
        'CREATE RETENTION POLICY "raw" ON cq_source DURATION 4w REPLICATION 1 DEFAULT', "admin", ADMIN_PASSWORD
    )
    args = {
        "database": "cq_source",
        "name": "to_archive",
        "query": "SELECT mean(v) INTO cq_archive..hourly FROM readings GROUP BY time(1h)",
    }
    first = module("influxdb_continuous_query", server, **args)
    assert first["changed"] is True, first
    stored = continuous_queries(server, "cq_source")["to_archive"]
    assert "cq_archive.autogen.hourly" in stored and "cq_source.raw.readings" in stored, stored
    assert module("influxdb_continuous_query", server, **args)["changed"] is False


def test_a_query_with_decimals_converges_although_the_server_rewrites_them(server: InfluxDBServer) -> None:
    server.query("CREATE DATABASE cq_decimals", "admin", ADMIN_PASSWORD)
    args = {
        "database": "cq_decimals",
        "name": "fahrenheit",
        "query": "SELECT mean(celsius) * 1.8 + 32 INTO out FROM readings WHERE celsius > .5 AND site <> 'lab' "
        "GROUP BY time(1h)",
    }
    assert module("influxdb_continuous_query", server, **args)["changed"] is True
    stored = continuous_queries(server, "cq_decimals")["fahrenheit"]
    assert "* 1.800 + 32" in stored
    assert "celsius > 0.500 AND site != 'lab'" in stored
    assert module("influxdb_continuous_query", server, **args)["changed"] is False


# --- users ----------------------------------------------------------------------------------------------------


def test_user_password_admin_flag_and_grants_converge(server: InfluxDBServer) -> None:
    server.query("CREATE DATABASE users_a", "admin", ADMIN_PASSWORD)
    server.query("CREATE DATABASE users_b", "admin", ADMIN_PASSWORD)
    user = {
        "name": "sensor_reader",
        "user_password": "first-Pass-1",
        "grants": [{"database": "users_a", "privilege": "read"}],
    }
    created = module("influxdb_user", server, diff=True, **user)
    assert created["changed"] is True
    assert can_log_in(server, "sensor_reader", "first-Pass-1")
    assert rows(server, 'SHOW GRANTS FOR "sensor_reader"') == [{"database": "users_a", "privilege": "READ"}]
    assert "first-Pass-1" not in json.dumps(created)
    assert module("influxdb_user", server, **user)["changed"] is False

    upper = user | {"grants": [{"database": "users_a", "privilege": "READ"}]}
    assert module("influxdb_user", server, **upper)["changed"] is False, "privilege case must not flap"

    regranted = module(
        "influxdb_user",
        server,
        **(
            user
            | {"grants": [{"database": "users_a", "privilege": "Write"}, {"database": "users_b", "privilege": "all"}]}
        ),
    )
    assert regranted["changed"] is True
    assert sorted(rows(server, 'SHOW GRANTS FOR "sensor_reader"'), key=lambda row: row["database"]) == [
        {"database": "users_a", "privilege": "WRITE"},
        {"database": "users_b", "privilege": "ALL PRIVILEGES"},
    ]
    assert module("influxdb_user", server, name="sensor_reader")["changed"] is False, "omitted grants: leave alone"

    new_password = module("influxdb_user", server, name="sensor_reader", user_password="second-Pass-2", diff=True)
    assert new_password["changed"] is True
    assert new_password["diff"]["after"]["users"]["sensor_reader"]["password"] == "changed"
    assert "second-Pass-2" not in json.dumps(new_password)
    assert can_log_in(server, "sensor_reader", "second-Pass-2")
    assert not can_log_in(server, "sensor_reader", "first-Pass-1")
    on_create = module(
        "influxdb_user", server, name="sensor_reader", user_password="third", update_password="on_create"
    )
    assert on_create["changed"] is False

    assert module("influxdb_user", server, name="sensor_reader", admin=True)["changed"] is True
    assert {"user": "sensor_reader", "admin": True} in rows(server, "SHOW USERS")
    assert (
        module("influxdb_user", server, name="sensor_reader", user_password="second-Pass-2", admin=True)["changed"]
        is False
    ), "the password check must use the current admin flag"
    assert module("influxdb_user", server, name="sensor_reader", admin=False)["changed"] is True
    assert {"user": "sensor_reader", "admin": False} in rows(server, "SHOW USERS")

    revoked = module("influxdb_user", server, name="sensor_reader", grants=[])
    assert revoked["changed"] is True
    assert all(row["privilege"] == "NO PRIVILEGES" for row in rows(server, 'SHOW GRANTS FOR "sensor_reader"'))
    assert module("influxdb_user", server, name="sensor_reader", grants=[])["changed"] is False

    assert module("influxdb_user", server, name="sensor_reader", state="absent")["changed"] is True
    assert "sensor_reader" not in [row["user"] for row in rows(server, "SHOW USERS")]


def test_user_check_mode_creates_nothing_and_diff_hides_the_password(server: InfluxDBServer) -> None:
    before = snapshot(server)
    result = module("influxdb_user", server, check=True, diff=True, name="planned", user_password="Plan-Secret-9")
    assert result["changed"] is True
    assert result["diff"]["after"]["users"]["planned"] == {"admin": False, "grants": {}}
    assert "Plan-Secret-9" not in json.dumps(result)
    assert snapshot(server) == before


def test_a_password_changed_behind_the_modules_back_is_set_again(server: InfluxDBServer) -> None:
    user = {"name": "drifter", "user_password": "Declared-Pass-1"}
    assert module("influxdb_user", server, **user)["changed"] is True
    assert module("influxdb_user", server, **user)["changed"] is False  # the server now remembers this login
    server.query("SET PASSWORD FOR drifter = 'Changed-By-Hand-2'", "admin", ADMIN_PASSWORD)
    assert module("influxdb_user", server, **user)["changed"] is True
    assert can_log_in(server, "drifter", "Declared-Pass-1")
    assert not can_log_in(server, "drifter", "Changed-By-Hand-2")


def test_a_password_ending_in_a_newline_logs_in_and_never_reaches_an_error(server: InfluxDBServer) -> None:
    # A vaulted value written as a YAML block keeps its final newline.
    user = {"name": "vaulted", "user_password": "Vault-Secret-7\nsecond line\n"}
    result = module("influxdb_user", server, **user)
    assert result.get("failed") is not True, result.get("msg")
    assert can_log_in(server, "vaulted", "Vault-Secret-7\nsecond line\n")
    assert module("influxdb_user", server, **user)["changed"] is False


def test_passwords_are_checked_on_a_server_with_authentication_off() -> None:
    """With auth off any login succeeds, so the check must not rely on one."""
    with own_server(auth_enabled=False) as open_server:
        login = {"url": open_server.url, "retries": 0}
        declared = {"users": [{"name": "device", "password": "First-Pass-1"}]}
        assert run_module("sensorstack.iot.influxdb_schema", login | declared)["changed"] is True
        assert run_module("sensorstack.iot.influxdb_schema", login | declared)["changed"] is False
        changed = {"users": [{"name": "device", "password": "Second-Pass-2"}]}
        assert run_module("sensorstack.iot.influxdb_schema", login | changed)["changed"] is True
        # CREATE USER of an existing user succeeds only when the password matches.
        assert "error" not in open_server.query("CREATE USER device WITH PASSWORD 'Second-Pass-2'")["results"][0]
        assert "error" in open_server.query("CREATE USER device WITH PASSWORD 'First-Pass-1'")["results"][0]


def test_modules_verify_the_servers_certificate(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        unavailable("integration", "needs openssl")
    ca = make_ca(tmp_path, "ca")
    certificate, key = issue(tmp_path, "influxdb", ca, SERVER_EXTENSIONS)
    with own_server(https=(certificate, key, ca[1])) as tls_server:
        tls_server.query(f"CREATE USER admin WITH PASSWORD '{ADMIN_PASSWORD}' WITH ALL PRIVILEGES")
        login = {"url": tls_server.url, "username": "admin", "password": ADMIN_PASSWORD, "retries": 3}
        declared = {"databases": [{"name": "over_tls"}], "users": [{"name": "tls_user", "password": "Tls-Pass-3"}]}

        unverified = run_module("sensorstack.iot.influxdb_schema", login | declared)
        assert unverified["failed"] is True
        assert "TLS verification of https://127.0.0.1" in unverified["msg"]
        assert "ca_path" in unverified["msg"]

        trusted = login | {"ca_path": str(ca[1])}
        assert run_module("sensorstack.iot.influxdb_schema", trusted | declared)["changed"] is True
        assert run_module("sensorstack.iot.influxdb_schema", trusted | declared)["changed"] is False
        insecure = login | {"validate_certs": False}
        assert run_module("sensorstack.iot.influxdb_schema", insecure | declared)["changed"] is False
        assert {"name": "over_tls"} in rows(tls_server, "SHOW DATABASES")


def test_a_user_without_password_or_with_a_bad_privilege_is_refused(server: InfluxDBServer) -> None:
    server.query("CREATE DATABASE users_bad", "admin", ADMIN_PASSWORD)
    before = snapshot(server)
    nopass = module("influxdb_user", server, name="nopass")
    assert nopass["failed"] is True and "user_password is required" in nopass["msg"]
    badpriv = module(
        "influxdb_user",
        server,
        name="badpriv",
        user_password="x",
        grants=[{"database": "users_bad", "privilege": "own"}],
    )
    assert badpriv["failed"] is True
    assert "grants[0]: privilege: 'own' is not one of read, write, all" in badpriv["msg"]
    assert snapshot(server) == before


# --- query ----------------------------------------------------------------------------------------------------


def test_query_returns_rows_and_refuses_writes(server: InfluxDBServer) -> None:
    server.query("CREATE DATABASE query_db", "admin", ADMIN_PASSWORD)
    server.query("SHOW DATABASES")  # keep the server warm
    import urllib.request

    write = urllib.request.Request(
        f"{server.url}/write?db=query_db&u=admin&p={ADMIN_PASSWORD}",
        data=b"readings,site=lab,device=p1 temperature=21.5 1700000000000000000",
    )
    urllib.request.urlopen(write, timeout=10).close()
    result = module(
        "influxdb_query",
        server,
        check=True,
        database="query_db",
        epoch="s",
        query="SELECT temperature FROM readings WHERE site = 'lab'",
    )
    assert result["changed"] is False
    assert result["rows"] == [{"_series": "readings", "time": 1700000000, "temperature": 21.5}]
    # SHOW statements, and numbers with more decimals than a continuous query keeps, are read as they are.
    shown = module("influxdb_query", server, query="SHOW DATABASES")
    assert {"_series": "databases", "name": "query_db"} in shown["rows"], shown
    precise = module(
        "influxdb_query", server, database="query_db", query="SELECT * FROM readings WHERE temperature < 21.500001"
    )
    assert not precise.get("failed") and len(precise["rows"]) == 1, precise
    for statement in ("SELECT * INTO copy FROM readings", "DROP DATABASE query_db", "SHOW DATABASES; DROP USER x"):
        refused = module("influxdb_query", server, database="query_db", query=statement)
        assert refused["failed"] is True, statement
    assert {"name": "query_db"} in rows(server, "SHOW DATABASES")


# --- the declarative module -----------------------------------------------------------------------------------


def schema(count: int) -> dict[str, Any]:
    return {
        "databases": [{"name": f"site_{i}"} for i in range(count)],
        "retention_policies": [
            {"database": f"site_{i}", "name": "raw", "duration": "30d", "default": True} for i in range(count)
        ],
        "continuous_queries": [
            {
                "database": f"site_{i}",
                "name": "hourly",
                "query": f'SELECT mean(*) INTO "site_{i}"."autogen".:MEASUREMENT FROM /.*/ GROUP BY time(1h), *',
            }
            for i in range(count)
        ],
        "users": [
            {
                "name": f"writer_{i}",
                "password": f"Writer-{i}-secret",
                "grants": [{"database": f"site_{i}", "privilege": "write"}],
            }
            for i in range(count)
        ],
    }


def test_schema_converges_every_object_in_one_call_with_one_diff(server: InfluxDBServer) -> None:
    declared = schema(3)
    first = module("influxdb_schema", server, diff=True, **declared)
    assert first["changed"] is True
    assert set(first["diff"]["after"]) == {"databases", "retention_policies", "continuous_queries", "users"}
    assert not any("Writer-" in statement for statement in first["statements"])
    for i in range(3):
        assert retention_policies(server, f"site_{i}")["raw"]["default"] is True
        assert "hourly" in continuous_queries(server, f"site_{i}")
        assert can_log_in(server, f"writer_{i}", f"Writer-{i}-secret")
        assert rows(server, f'SHOW GRANTS FOR "writer_{i}"') == [{"database": f"site_{i}", "privilege": "WRITE"}]
    second = module("influxdb_schema", server, **declared)
    assert second["changed"] is False, second["statements"]
    assert second["statements"] == []


def test_schema_bootstraps_the_admin_on_a_fresh_server() -> None:
    with own_server() as fresh:
        args = {"users": [{"name": "root", "password": "Root-Pass-7", "admin": True}], "databases": [{"name": "boot"}]}
        login = {"url": fresh.url, "username": "root", "password": "Root-Pass-7"}
        planned = run_module("sensorstack.iot.influxdb_schema", login | args, check=True)
        assert planned["changed"] is True
        assert "create admin user first" in json.dumps(fresh.query("SHOW USERS"))
        first = run_module("sensorstack.iot.influxdb_schema", login | args)
        assert first["changed"] is True, first
        assert can_log_in(fresh, "root", "Root-Pass-7")
        assert run_module("sensorstack.iot.influxdb_schema", login | args)["changed"] is False
