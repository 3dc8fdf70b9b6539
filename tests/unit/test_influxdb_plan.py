"""Planning against a known server state: the statements and the diff a run would produce, without a server."""

from __future__ import annotations

import pytest
from ansible_collections.sensorstack.iot.plugins.module_utils.influxdb_ql import DAY, WEEK, InfluxQLError
from ansible_collections.sensorstack.iot.plugins.module_utils.influxdb_schema import (
    ContinuousQuerySpec,
    DatabaseSpec,
    Declaration,
    Plan,
    RetentionPolicy,
    RetentionPolicySpec,
    ServerState,
    UserSpec,
)


def state() -> ServerState:
    return ServerState(
        databases={"telemetry"},
        retention_policies={
            "telemetry": {"autogen": RetentionPolicy(0, WEEK, 1, True), "raw": RetentionPolicy(30 * DAY, DAY, 1, False)}
        },
        continuous_queries={
            "telemetry": {
                "hourly": "CREATE CONTINUOUS QUERY hourly ON telemetry BEGIN SELECT mean(v) INTO "
                "telemetry.autogen.out FROM telemetry.autogen.m GROUP BY time(1h) END"
            }
        },
        users={"grafana": False},
        grants={"grafana": {"telemetry": "READ", "old": "WRITE"}},
    )


def plan(password_ok: bool = True) -> Plan:
    return Plan(state(), lambda _name, _password, _admin: password_ok)


def test_only_the_changed_clauses_are_altered() -> None:
    planned = plan()
    planned.retention_policy(
        RetentionPolicySpec.parse({"database": "telemetry", "name": "raw", "duration": "720h", "replication": 2})
    )
    assert planned.statements == ['ALTER RETENTION POLICY "raw" ON "telemetry" REPLICATION 2']


def test_default_false_on_the_default_policy_plans_nothing() -> None:
    planned = plan()
    planned.retention_policy(
        RetentionPolicySpec.parse({"database": "telemetry", "name": "autogen", "duration": "INF", "default": False})
    )
    assert planned.statements == []
    assert planned.changed is False


def test_a_new_database_starts_with_autogen_so_its_rp_is_altered_not_created() -> None:
    planned = plan()
    planned.database(DatabaseSpec.parse({"name": "fresh"}))
    planned.retention_policy(RetentionPolicySpec.parse({"database": "fresh", "name": "autogen", "duration": "52w"}))
    assert planned.statements == ['CREATE DATABASE "fresh"', 'ALTER RETENTION POLICY "autogen" ON "fresh" DURATION 52w']


def test_an_unchanged_cq_plans_nothing_and_a_new_default_policy_changes_it() -> None:
    body = {"database": "telemetry", "name": "hourly", "query": "SELECT mean(v) INTO out FROM m GROUP BY time(1h)"}
    unchanged = plan()
    unchanged.continuous_query(ContinuousQuerySpec.parse(body))
    assert unchanged.statements == []
    moved = plan()
    moved.retention_policy(
        RetentionPolicySpec.parse({"database": "telemetry", "name": "raw", "duration": "30d", "default": True})
    )
    moved.continuous_query(ContinuousQuerySpec.parse(body))
    assert moved.statements[-2:] == [
        'DROP CONTINUOUS QUERY "hourly" ON "telemetry"',
        'CREATE CONTINUOUS QUERY "hourly" ON "telemetry" BEGIN SELECT mean(v) INTO out FROM m GROUP BY time(1h) END',
    ]


def test_grants_are_replaced_and_unlisted_ones_revoked() -> None:
    planned = plan()
    planned.user(UserSpec.parse({"name": "grafana", "grants": [{"database": "telemetry", "privilege": "read"}]}))
    assert planned.statements == ['REVOKE ALL ON "old" FROM "grafana"']
    assert planned.after["users"]["grafana"] == {"admin": False, "grants": {"telemetry": "READ"}}


def test_a_wrong_password_is_set_and_the_diff_never_shows_it() -> None:
    planned = plan(password_ok=False)
    planned.user(UserSpec.parse({"name": "grafana", "password": "s3cret"}))
    assert planned.statements == ["SET PASSWORD FOR \"grafana\" = 's3cret'"]
    assert "s3cret" not in repr(planned.before) + repr(planned.after)


def test_drops_come_after_creates_and_cqs_before_their_policies() -> None:
    planned = plan()
    planned.retention_policy(RetentionPolicySpec.parse({"database": "telemetry", "name": "raw", "state": "absent"}))
    planned.continuous_query(ContinuousQuerySpec.parse({"database": "telemetry", "name": "hourly", "state": "absent"}))
    planned.database(DatabaseSpec.parse({"name": "new"}))
    assert planned.statements == [
        'CREATE DATABASE "new"',
        'DROP CONTINUOUS QUERY "hourly" ON "telemetry"',
        'DROP RETENTION POLICY "raw" ON "telemetry"',
    ]


def test_grants_on_an_undeclared_database_are_refused_before_sending() -> None:
    with pytest.raises(InfluxQLError, match=r"user \(u\): grants: database 'nowhere' does not exist"):
        plan().user(
            UserSpec.parse({"name": "u", "password": "p", "grants": [{"database": "nowhere", "privilege": "read"}]})
        )


def downsample(into: str) -> ContinuousQuerySpec:
    body = f"SELECT mean(v) INTO {into} FROM telemetry.autogen.m GROUP BY time(1h)"
    return ContinuousQuerySpec.parse({"database": "telemetry", "name": "hourly", "query": body})


def test_a_query_changed_to_a_missing_policy_is_refused_before_its_old_version_is_dropped() -> None:
    planned = plan()
    with pytest.raises(InfluxQLError, match=r"hourly\): query: retention policy telemetry\.downsampled does not exist"):
        planned.continuous_query(downsample("telemetry.downsampled.out"))
    assert planned.statements == []


def test_a_query_may_name_a_policy_created_earlier_in_the_same_run() -> None:
    planned = plan()
    planned.retention_policy(
        RetentionPolicySpec.parse({"database": "telemetry", "name": "downsampled", "duration": "52w"})
    )
    planned.continuous_query(downsample("telemetry.downsampled.out"))
    assert planned.statements[-2:] == [
        'DROP CONTINUOUS QUERY "hourly" ON "telemetry"',
        'CREATE CONTINUOUS QUERY "hourly" ON "telemetry" BEGIN SELECT mean(v) INTO telemetry.downsampled.out '
        "FROM telemetry.autogen.m GROUP BY time(1h) END",
    ]


def test_check_mode_warns_of_what_an_earlier_task_would_create_and_plans_on() -> None:
    planned = Plan(state(), lambda _name, _password, _admin: True, check_mode=True)
    planned.continuous_query(downsample("telemetry.downsampled.out"))
    planned.retention_policy(RetentionPolicySpec.parse({"database": "newdb", "name": "raw", "duration": "1d"}))
    assert [warning.split(":")[0] for warning in planned.warnings] == [
        "continuous query (telemetry.hourly)",
        "retention policy (newdb.raw)",
    ]
    assert len(planned.statements) == 3


def test_two_default_policies_of_one_database_are_refused_naming_both() -> None:
    declaration = Declaration(
        retention_policies=[
            RetentionPolicySpec.parse({"database": "t", "name": name, "duration": "1d", "default": True})
            for name in ("raw", "ds2")
        ]
    )
    with pytest.raises(InfluxQLError, match="retention_policies: raw and ds2 of database t all have default: true"):
        declaration.check()


def test_a_missing_password_is_named_as_the_module_calls_it() -> None:
    with pytest.raises(InfluxQLError, match=r"user \(new\): user_password is required to create the user"):
        plan().user(UserSpec.parse({"name": "new"}, password_option="user_password"))
