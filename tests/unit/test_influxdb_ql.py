"""InfluxQL helpers: durations as the server reads and writes them, quoting, and CQ normalisation."""

from __future__ import annotations

import pytest
from ansible_collections.sensorstack.iot.plugins.module_utils.influxdb_ql import (
    DAY,
    HOUR,
    MINUTE,
    WEEK,
    InfluxQLError,
    check_continuous_query_body,
    check_retention_policy,
    continuous_query_statement,
    continuous_query_targets,
    default_shard_duration,
    format_duration,
    normalise_continuous_query,
    normalise_privilege,
    parse_duration,
    quote_ident,
    quote_string,
    redact_secrets,
    tokenize,
    withhold_parser_quote,
)
from ansible_collections.sensorstack.iot.plugins.modules.influxdb_query import check_read_only
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("INF", 0),
        ("inf", 0),
        ("0s", 0),
        ("1h", HOUR),
        ("90m", 90 * MINUTE),
        ("30d", 30 * DAY),
        ("4w", 4 * WEEK),
        ("1h30m", 90 * MINUTE),
        ("168h0m0s", WEEK),
        ("8736h0m0s", 52 * WEEK),
        ("336h0m0.014s", 2 * WEEK + 14_000_000),
        ("1500ms", 1_500_000_000),
        ("2µs", 2000),
    ],
)
def test_durations_parse_to_nanoseconds(text: str, nanoseconds: int) -> None:
    assert parse_duration(text) == nanoseconds


@pytest.mark.parametrize("text", ["", "30", "30 days", "1h 30m", "h", "-1h", "1y", "1h30"])
def test_bad_durations_name_the_option(text: str) -> None:
    with pytest.raises(InfluxQLError, match=r"^shard_duration: .* is not a duration"):
        parse_duration(text, "shard_duration")


@given(st.integers(min_value=1, max_value=10 * 52 * WEEK))
def test_formatting_then_parsing_a_duration_gives_it_back(nanoseconds: int) -> None:
    assert parse_duration(format_duration(nanoseconds)) == nanoseconds


@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=500), st.sampled_from(["w", "d", "h", "m", "s"])),
        min_size=1,
        max_size=5,
    )
)
def test_equal_durations_compare_equal_whatever_the_spelling(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{count}{unit}" for count, unit in parts)
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


def test_formatting_uses_the_largest_units() -> None:
    assert format_duration(0) == "INF"
    assert format_duration(WEEK) == "1w"
    assert format_duration(30 * DAY) == "4w2d"
    assert format_duration(90 * MINUTE) == "1h30m"


@pytest.mark.parametrize(
    ("duration", "shard"),
    [(0, WEEK), (180 * DAY, WEEK), (179 * DAY, DAY), (2 * DAY, DAY), (47 * HOUR, HOUR), (HOUR, HOUR)],
)
def test_default_shard_durations_follow_the_server(duration: int, shard: int) -> None:
    assert default_shard_duration(duration) == shard


def test_retention_policy_rules_match_the_server() -> None:
    check_retention_policy(HOUR, None)
    check_retention_policy(0, WEEK)
    check_retention_policy(DAY, DAY)  # equal is allowed
    with pytest.raises(InfluxQLError, match=r"^duration: 59m is shorter than the server's minimum of 1h"):
        check_retention_policy(59 * MINUTE, None)
    with pytest.raises(InfluxQLError, match=r"^shard_duration: 30m is shorter"):
        check_retention_policy(DAY, 30 * MINUTE)
    with pytest.raises(InfluxQLError, match=r"^duration: 2h is shorter than shard_duration 1d"):
        check_retention_policy(2 * HOUR, DAY)
    with pytest.raises(InfluxQLError, match="current shard duration"):
        check_retention_policy(12 * HOUR, None, current_shard=DAY)


@pytest.mark.parametrize(
    ("given_", "expected"),
    [("read", "READ"), ("Write", "WRITE"), ("ALL", "ALL PRIVILEGES"), ("all privileges", "ALL PRIVILEGES")],
)
def test_privileges_are_case_insensitive(given_: str, expected: str) -> None:
    assert normalise_privilege(given_) == expected


def test_an_unknown_privilege_names_the_option() -> None:
    with pytest.raises(InfluxQLError, match=r"^grants\[0\]: 'own' is not one of read, write, all"):
        normalise_privilege("own", "grants[0]")


def test_quoting_escapes_what_would_end_the_literal() -> None:
    assert quote_ident('we"ird\\db') == '"we\\"ird\\\\db"'
    assert quote_string("it's \\ ok") == "'it\\'s \\\\ ok'"
    # A raw newline would end the literal (the server's parse error then quotes the password's next word).
    assert quote_string("vault\nblock\n") == "'vault\\nblock\\n'"


def test_a_parse_error_of_statements_with_a_password_keeps_the_quoted_token_back() -> None:
    error = "error parsing query: found Sup3rSecret, expected string at line 1, char 32"
    assert withhold_parser_quote(error) == (
        "error parsing query: found (withheld: the statements carry a password), expected string at line 1, char 32"
    )


def test_passwords_are_masked_in_statements() -> None:
    assert redact_secrets("CREATE USER \"a\" WITH PASSWORD 'p\\'w' WITH ALL PRIVILEGES") == (
        "CREATE USER \"a\" WITH PASSWORD '********' WITH ALL PRIVILEGES"
    )
    assert redact_secrets("SET PASSWORD FOR \"u\" = 'abc'") == "SET PASSWORD FOR \"u\" = '********'"


# The server's own renderings, captured from influxd 1.6.7 (SHOW CONTINUOUS QUERIES) for the statements we sent.
SERVER_RENDERINGS = [
    (
        "CREATE CONTINUOUS QUERY cq_30m ON telemetry RESAMPLE EVERY 1h FOR 2h BEGIN SELECT mean(value) AS value, "
        'max("value") INTO telemetry."1y".readings_30m FROM readings WHERE site = \'a\' GROUP BY time(30m), * '
        "fill(none) END",
        "CREATE CONTINUOUS QUERY cq_30m ON telemetry RESAMPLE EVERY 1h FOR 2h BEGIN SELECT mean(value) AS value, "
        "max(value) INTO telemetry.\"1y\".readings_30m FROM telemetry.autogen.readings WHERE site = 'a' GROUP BY "
        "time(30m), * fill(none) END",
    ),
    (
        'CREATE CONTINUOUS QUERY "cq2" ON "telemetry" BEGIN SELECT mean(*) INTO "1y".:MEASUREMENT FROM /.*/ '
        "GROUP BY time(1440m),site END",
        'CREATE CONTINUOUS QUERY cq2 ON telemetry BEGIN SELECT mean(*) INTO telemetry."1y".:MEASUREMENT FROM '
        "telemetry.autogen./.*/ GROUP BY time(1d), site END",
    ),
    # InfluxQL's <> and .5 come back as != and 0.500.
    (
        "CREATE CONTINUOUS QUERY q ON telemetry BEGIN SELECT mean(v) INTO out FROM m WHERE v > .5 AND site <> 'lab' "
        "GROUP BY time(1m) END",
        "CREATE CONTINUOUS QUERY q ON telemetry BEGIN SELECT mean(v) INTO telemetry.autogen.out FROM "
        "telemetry.autogen.m WHERE v > 0.500 AND site != 'lab' GROUP BY time(1m) END",
    ),
    (
        "create continuous query q on telemetry begin select MEAN(v) into out from a, b group by TIME(2h) end",
        "CREATE CONTINUOUS QUERY q ON telemetry BEGIN SELECT mean(v) INTO telemetry.autogen.out FROM "
        "telemetry.autogen.a, telemetry.autogen.b GROUP BY time(2h) END",
    ),
]


@pytest.mark.parametrize(("ours", "servers"), SERVER_RENDERINGS)
def test_the_servers_rendering_normalises_like_ours(ours: str, servers: str) -> None:
    assert normalise_continuous_query(ours, "telemetry", "autogen") == normalise_continuous_query(
        servers, "telemetry", "autogen"
    )


@pytest.mark.parametrize(
    "changed",
    [
        "SELECT max(value) INTO telemetry.autogen.out FROM telemetry.autogen.readings GROUP BY time(1h)",
        "SELECT mean(value) INTO telemetry.autogen.out FROM telemetry.autogen.readings GROUP BY time(2h)",
        "SELECT mean(value) INTO telemetry.autogen.out FROM telemetry.raw.readings GROUP BY time(1h)",
        "SELECT mean(Value) INTO telemetry.autogen.out FROM telemetry.autogen.readings GROUP BY time(1h)",
        "SELECT mean(value) INTO telemetry.autogen.out FROM telemetry.autogen.readings WHERE a = 'x' GROUP BY time(1h)",
    ],
)
def test_a_real_change_to_a_query_is_seen(changed: str) -> None:
    base = "SELECT mean(value) INTO out FROM readings GROUP BY time(1h)"
    assert normalise_continuous_query(continuous_query_statement("q", "telemetry", base), "telemetry", "autogen") != (
        normalise_continuous_query(continuous_query_statement("q", "telemetry", changed), "telemetry", "autogen")
    )


def test_decimals_compare_as_the_server_stores_them() -> None:
    ours = "SELECT mean(v) * 1.8 + 32 INTO out FROM m WHERE v > 0.5 AND w < 10.0 GROUP BY time(1m)"
    # influxd 1.6.7 keeps three decimals of every decimal number: captured from SHOW CONTINUOUS QUERIES.
    servers = (
        "CREATE CONTINUOUS QUERY q ON telemetry BEGIN SELECT mean(v) * 1.800 + 32 INTO telemetry.autogen.out FROM "
        "telemetry.autogen.m WHERE v > 0.500 AND w < 10.000 GROUP BY time(1m) END"
    )
    assert normalise_continuous_query(continuous_query_statement("q", "telemetry", ours), "telemetry", "autogen") == (
        normalise_continuous_query(servers, "telemetry", "autogen")
    )


def test_a_number_the_server_would_cut_to_three_decimals_is_refused() -> None:
    with pytest.raises(InfluxQLError, match=r"query: .* 0\.1234 would run as 0\.123"):
        check_continuous_query_body("SELECT mean(v) INTO out FROM m WHERE v > 0.1234 GROUP BY time(1m)")
    check_continuous_query_body("SELECT mean(v) INTO out FROM m WHERE v > 0.1230 GROUP BY time(1m)")


def test_the_policies_a_query_writes_to_and_reads_from_are_qualified_like_the_server_does() -> None:
    statement = continuous_query_statement(
        "q", "telemetry", 'SELECT mean(v) INTO other."1y".out FROM m, raw.n, /re/ GROUP BY time(1m)'
    )
    assert continuous_query_targets(statement, "telemetry", "autogen") == [
        ("other", "1y"),
        ("telemetry", "autogen"),
        ("telemetry", "raw"),
        ("telemetry", "autogen"),
    ]


def test_the_default_policy_qualifies_unqualified_measurements() -> None:
    body = continuous_query_statement("q", "db", "SELECT mean(v) INTO out FROM m GROUP BY time(1h)")
    stored_under_raw = (
        "CREATE CONTINUOUS QUERY q ON db BEGIN SELECT mean(v) INTO db.raw.out FROM db.raw.m GROUP BY time(1h) END"
    )
    assert normalise_continuous_query(body, "db", "raw") == normalise_continuous_query(stored_under_raw, "db", "raw")
    assert normalise_continuous_query(body, "db", "autogen") != normalise_continuous_query(
        stored_under_raw, "db", "raw"
    )


def test_division_is_not_mistaken_for_a_regex() -> None:
    body = "SELECT mean(value) / 2 INTO out FROM readings GROUP BY time(1h)"
    check_continuous_query_body(body)
    tokens = normalise_continuous_query(continuous_query_statement("q", "d", body), "d", "autogen")
    assert ("op", "/") in tokens


def test_resample_durations_are_rendered_and_validated() -> None:
    statement = continuous_query_statement("q", "d", "SELECT 1", resample_every="90m", resample_for="1d")
    assert statement == 'CREATE CONTINUOUS QUERY "q" ON "d" RESAMPLE EVERY 1h30m FOR 1d BEGIN SELECT 1 END'
    with pytest.raises(InfluxQLError, match=r"^resample_for: "):
        continuous_query_statement("q", "d", "SELECT 1", resample_for="soon")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("SELECT mean(v) INTO o FROM m", "GROUP BY time"),
        ("SELECT mean(v) FROM m GROUP BY time(1h)", "needs INTO"),
        ("SELECT mean(v) INTO o GROUP BY time(1h)", "needs FROM"),
        ("SHOW DATABASES", "starts with SELECT"),
        ("BEGIN SELECT mean(v) INTO o FROM m GROUP BY time(1h) END", "only the SELECT body"),
    ],
)
def test_continuous_query_bodies_are_checked(body: str, message: str) -> None:
    with pytest.raises(InfluxQLError, match=message):
        check_continuous_query_body(body)


def test_a_plain_query_keeps_its_numbers_and_parameters_as_written() -> None:
    tokens = tokenize(
        "SHOW TAG VALUES FROM m WITH KEY = site WHERE v > 0.1234 AND time > $start", continuous_query=False
    )
    assert tokens[0] == ("kw", "SHOW")
    assert ("number", "0.1234") in tokens
    assert ("parameter", "$start") in tokens


@pytest.mark.parametrize(
    "query", ["SHOW DATABASES", "SHOW STATS", "SELECT * FROM m WHERE lat = 52.520008", "SELECT * FROM m WHERE v > $d"]
)
def test_the_query_module_reads_show_and_any_select(query: str) -> None:
    check_read_only(query)


@pytest.mark.parametrize("query", ["SELECT * INTO copy FROM m", "DROP DATABASE d", "SHOW DATABASES; DROP USER x"])
def test_the_query_module_refuses_what_writes(query: str) -> None:
    with pytest.raises(InfluxQLError):
        check_read_only(query)


def test_a_reference_to_another_database_takes_that_databases_default_policy() -> None:
    query = "SELECT mean(v) INTO archive..r1h FROM readings, archive..old GROUP BY time(1h)"
    defaults = {"telemetry": "raw", "archive": "weekly"}
    assert continuous_query_targets(query, "telemetry", "raw", defaults) == [
        ("archive", "weekly"),
        ("telemetry", "raw"),
        ("archive", "weekly"),
    ]
    # A database the plan knows nothing of: the server's own default.
    assert continuous_query_targets(query, "telemetry", "raw")[0] == ("archive", "autogen")
