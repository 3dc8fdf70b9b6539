"""InfluxQL for InfluxDB 1.x: quoting, durations, retention-policy rules and continuous-query normalisation.

Pure functions only (no I/O), shared by the influxdb_* modules and unit-tested without a server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal

NANOSECOND = 1
MICROSECOND = 1000 * NANOSECOND
MILLISECOND = 1000 * MICROSECOND
SECOND = 1000 * MILLISECOND
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
WEEK = 7 * DAY

INFINITE = 0  # the server's "0s": keep data forever

# Unit suffixes InfluxQL and Go's time.Duration.String() use; longest first so "ms" wins over "m".
_UNITS = (
    ("ns", NANOSECOND),
    ("us", MICROSECOND),
    ("µs", MICROSECOND),
    ("u", MICROSECOND),
    ("ms", MILLISECOND),
    ("s", SECOND),
    ("m", MINUTE),
    ("h", HOUR),
    ("d", DAY),
    ("w", WEEK),
)
_UNIT_SIZES = dict(_UNITS)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|u|s|m|h|d|w)")

MINIMUM_RP_DURATION = HOUR
MINIMUM_SHARD_DURATION = HOUR

PRIVILEGES = {"read": "READ", "write": "WRITE", "all": "ALL PRIVILEGES"}


class InfluxQLError(ValueError):
    """Input that the server would reject or misread; the message names the option."""


def quote_ident(name: str) -> str:
    """Quote an identifier (database, RP, user, CQ, measurement) for InfluxQL."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(value: str) -> str:
    """Quote a string literal (passwords) for InfluxQL.

    A raw newline ends the literal for the server's scanner, whose parse error then quotes the password's next
    word: it goes as the ``\\n`` escape, which the server reads back as a newline.
    """
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


_SECRET = re.compile(r"""(PASSWORD\s+(?:FOR\s+(?:"(?:[^"\\]|\\.)*"|\S+)\s*=\s*)?)'(?:[^'\\]|\\.)*'""", re.IGNORECASE)


def redact_secrets(statement: str) -> str:
    """Mask password literals so a statement can appear in an error message."""
    return _SECRET.sub(r"\1'********'", statement)


_PARSER_QUOTE = re.compile(r"\bfound .*?, expected", re.DOTALL)


def withhold_parser_quote(message: str) -> str:
    """A parse error of statements that carry a password, without the token the parser quotes: it may be part of it."""
    return _PARSER_QUOTE.sub("found (withheld: the statements carry a password), expected", message)


def parse_duration(text: str | int, option: str = "duration") -> int:
    """Parse a duration (``INF``, ``1h30m``, ``30d``, ``4w``, Go's ``336h0m0.014s``) into nanoseconds.

    ``INF`` and ``0``/``0s`` mean infinite and return 0.
    """
    value = str(text).strip()
    if value.upper() == "INF" or value in ("0", "0s"):
        return INFINITE
    position = 0
    total = Decimal(0)
    for match in _DURATION_PART.finditer(value):
        if match.start() != position:
            break
        total += Decimal(match.group(1)) * _UNIT_SIZES[match.group(2)]
        position = match.end()
    if position != len(value) or not value:
        raise InfluxQLError(
            f"{option}: {text!r} is not a duration (use INF or a number with a unit, e.g. 1h, 90m, 30d, 4w, 1h30m)"
        )
    return int(total.to_integral_value())


def format_duration(nanoseconds: int) -> str:
    """Render nanoseconds as an InfluxQL duration literal (``INF`` for infinite), largest units first."""
    if nanoseconds == INFINITE:
        return "INF"
    parts = []
    remainder = nanoseconds
    for unit, size in (
        ("w", WEEK),
        ("d", DAY),
        ("h", HOUR),
        ("m", MINUTE),
        ("s", SECOND),
        ("ms", MILLISECOND),
        ("u", MICROSECOND),
        ("ns", NANOSECOND),
    ):
        count, remainder = divmod(remainder, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def default_shard_duration(duration: int) -> int:
    """The shard group duration the server picks when none is given."""
    if duration == INFINITE or duration >= 180 * DAY:
        return WEEK
    if duration >= 2 * DAY:
        return DAY
    return HOUR


def check_retention_policy(duration: int, shard_duration: int | None, current_shard: int | None = None) -> None:
    """Apply the server's rules before sending: minimum 1h, and duration >= shard duration.

    ``current_shard`` is the existing policy's shard duration, which stays when ``shard_duration`` is omitted.
    """
    if duration != INFINITE and duration < MINIMUM_RP_DURATION:
        raise InfluxQLError(f"duration: {format_duration(duration)} is shorter than the server's minimum of 1h")
    if shard_duration is not None and shard_duration < MINIMUM_SHARD_DURATION:
        raise InfluxQLError(
            f"shard_duration: {format_duration(shard_duration)} is shorter than the server's minimum of 1h "
            "(it would silently store 1h)"
        )
    if shard_duration is not None:
        effective, source = shard_duration, "shard_duration"
    elif current_shard is not None:
        effective, source = current_shard, "the policy's current shard duration (shard_duration omitted)"
    else:
        effective, source = default_shard_duration(duration), "the default shard duration"
    if duration != INFINITE and duration < effective:
        raise InfluxQLError(
            f"duration: {format_duration(duration)} is shorter than {source} {format_duration(effective)}; "
            "the server requires duration >= shard_duration"
        )


def normalise_privilege(privilege: str, option: str = "privilege") -> str:
    """Map read/write/all (any case, or the server's spelling) to the server's READ/WRITE/ALL PRIVILEGES."""
    key = str(privilege).strip().lower()
    if key == "all privileges":
        key = "all"
    if key not in PRIVILEGES:
        raise InfluxQLError(f"{option}: {privilege!r} is not one of read, write, all")
    return PRIVILEGES[key]


# The retention policy the server creates with a database, its default until another is made the default.
AUTOGEN = "autogen"

# --- Continuous queries ---------------------------------------------------------------------------------------

KEYWORDS = frozenset(
    [
        "ALL",
        "ALTER",
        "AND",
        "ANY",
        "AS",
        "ASC",
        "BEGIN",
        "BY",
        "CONTINUOUS",
        "CREATE",
        "DATABASE",
        "DATABASES",
        "DEFAULT",
        "DELETE",
        "DESC",
        "DISTINCT",
        "DROP",
        "DURATION",
        "END",
        "EVERY",
        "EXPLAIN",
        "FIELD",
        "FOR",
        "FROM",
        "GRANT",
        "GRANTS",
        "GROUP",
        "GROUPS",
        "IN",
        "INF",
        "INTO",
        "KEY",
        "KEYS",
        "LIMIT",
        "MEASUREMENT",
        "MEASUREMENTS",
        "NAME",
        "OFFSET",
        "ON",
        "OR",
        "ORDER",
        "PASSWORD",
        "POLICIES",
        "POLICY",
        "PRIVILEGES",
        "QUERIES",
        "QUERY",
        "READ",
        "REPLICATION",
        "RESAMPLE",
        "RETENTION",
        "REVOKE",
        "SELECT",
        "SERIES",
        "SET",
        "SHARD",
        "SHARDS",
        "SHOW",
        "SLIMIT",
        "SOFFSET",
        "TAG",
        "TO",
        "USER",
        "USERS",
        "VALUES",
        "WHERE",
        "WITH",
        "WRITE",
        "TZ",
        "TRUE",
        "FALSE",
    ]
)

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<quoted>"(?:[^"\\]|\\.)*")
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<regex>/(?:[^/\\]|\\.)*/)
  | (?P<duration>\d+(?:ns|us|µs|ms|u|s|m|h|d|w)(?:\d+(?:ns|us|µs|ms|u|s|m|h|d|w))*(?![\w]))
  | (?P<number>(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<word>[A-Za-z_:][\w:]*)
  | (?P<parameter>\$\w+)
  | (?P<op>=~|!~|!=|<>|<=|>=|::|[-+*/%=<>(),.;&|^])
    """,
    re.VERBOSE,
)

Token = tuple[str, str]


def tokenize(text: str, continuous_query: bool = True) -> list[Token]:
    """Split InfluxQL into (kind, value) tokens; whitespace and identifier quoting disappear, and the spellings the
    server rewrites take its form (``<>`` is ``!=``, ``.5`` is ``0.500``). A number a continuous query would keep
    with fewer decimals is refused unless ``continuous_query`` is false."""
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise InfluxQLError(f"query: unexpected character {text[position]!r} at position {position}")
        position = match.end()
        kind = match.lastgroup or ""
        value = match.group()
        if kind == "space":
            continue
        if (
            kind == "regex"
            and tokens
            and tokens[-1] not in (("kw", "FROM"), ("op", "."), ("op", ","), ("op", "=~"), ("op", "!~"))
        ):
            # A slash that does not start a regex is division: re-scan it as an operator.
            position = match.start() + 1
            tokens.append(("op", "/"))
            continue
        if kind == "quoted":
            tokens.append(("ident", re.sub(r"\\(.)", r"\1", value[1:-1])))
        elif kind == "word":
            following = text[position:].lstrip()[:1]
            if value.upper() in KEYWORDS:
                tokens.append(("kw", value.upper()))
            elif following == "(":
                tokens.append(("func", value.lower()))
            else:
                tokens.append(("ident", value))
        elif kind == "duration":
            tokens.append(("duration", str(parse_duration(value, "query"))))
        elif kind == "number" and not continuous_query:
            tokens.append(("number", value))
        elif kind == "number":
            stored = _stored_number(value)
            if float(stored) != float(value):
                raise InfluxQLError(
                    f"query: InfluxDB keeps {STORED_DECIMALS} decimals of a number in a continuous query, so {value} "
                    f"would run as {stored}: write it with at most {STORED_DECIMALS} decimals"
                )
            tokens.append(("number", stored))
        elif value == "<>":
            tokens.append(("op", "!="))
        else:
            tokens.append((kind, value))
    return tokens


# The server keeps a continuous query's decimal numbers with three decimals (Go's FormatFloat(v, 'f', 3)): 1.8 comes
# back as 1.800. Integers stay as written.
STORED_DECIMALS = 3


def _stored_number(text: str) -> str:
    """A number as the server renders it in a stored continuous query."""
    if not any(mark in text for mark in ".eE"):
        return text
    return f"{float(text):.{STORED_DECIMALS}f}"


def _measurement_end(tokens: list[Token], start: int) -> int:
    """Index after a (possibly dotted) measurement reference starting at ``start``."""
    end = start
    while end < len(tokens):
        if tokens[end][0] in ("ident", "regex") or tokens[end] == ("op", "."):
            end += 1
        else:
            break
    return end


def _qualify(
    parts: list[Token], database: str, default_rp: str, other_defaults: Mapping[str, str] | None = None
) -> list[Token]:
    """Qualify a measurement reference as database.rp.measurement, as the server stores it: a reference without a
    policy takes its own database's default (``other_defaults`` for a database other than the query's, else
    autogen)."""
    names: list[Token | None] = []
    current: Token | None = None
    for token in parts:
        if token == ("op", "."):
            names.append(current)
            current = None
        else:
            current = token
    names.append(current)
    if len(names) == 1:
        names = [None, None, *names]
    elif len(names) == 2:
        names = [None, *names]
    db, rp, measurement = names[-3], names[-2], names[-1]
    if db is not None and db[1] != database:
        default_rp = (other_defaults or {}).get(db[1], AUTOGEN)
    return [
        db or ("ident", database),
        ("op", "."),
        rp or ("ident", default_rp),
        ("op", "."),
        measurement or ("ident", ""),
    ]


def normalise_continuous_query(
    text: str, database: str, default_rp: str, other_defaults: Mapping[str, str] | None = None
) -> tuple[Token, ...]:
    """A comparable form of a CREATE CONTINUOUS QUERY statement, equal for the server's rendering and ours.

    The server re-renders a stored CQ: it qualifies measurements after INTO and FROM as ``db.rp.m``, drops
    needless quotes, upper-cases keywords, lower-cases functions and rewrites durations (``1440m`` -> ``1d``).
    """
    tokens = tokenize(text)
    normalised: list[Token] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        normalised.append(token)
        index += 1
        if token in (("kw", "INTO"), ("kw", "FROM")):
            while index < len(tokens):
                end = _measurement_end(tokens, index)
                if end == index:
                    break
                normalised.extend(_qualify(tokens[index:end], database, default_rp, other_defaults))
                index = end
                if token == ("kw", "FROM") and index < len(tokens) and tokens[index] == ("op", ","):
                    normalised.append(tokens[index])
                    index += 1
                    continue
                break
    return tuple(normalised)


def continuous_query_targets(
    text: str, database: str, default_rp: str, other_defaults: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    """The (database, retention policy) pairs a continuous query writes to (INTO) and reads from (FROM), qualified
    as the server qualifies them; the server refuses the query when one of them does not exist."""
    tokens = normalise_continuous_query(text, database, default_rp, other_defaults)
    targets: list[tuple[str, str]] = []
    for index, token in enumerate(tokens):
        if token not in (("kw", "INTO"), ("kw", "FROM")):
            continue
        position = index + 1
        while position + 4 < len(tokens) and tokens[position + 1] == tokens[position + 3] == ("op", "."):
            targets.append((tokens[position][1], tokens[position + 2][1]))
            position += 5
            if token != ("kw", "FROM") or tokens[position : position + 1] != (("op", ","),):
                break
            position += 1
    return targets


def continuous_query_statement(
    name: str, database: str, query: str, resample_every: str | None = None, resample_for: str | None = None
) -> str:
    """The CREATE CONTINUOUS QUERY statement for a CQ body (``SELECT ... INTO ... FROM ... GROUP BY time(..)``)."""
    resample = ""
    if resample_every or resample_for:
        resample = " RESAMPLE"
        if resample_every:
            resample += f" EVERY {format_duration(parse_duration(resample_every, 'resample_every'))}"
        if resample_for:
            resample += f" FOR {format_duration(parse_duration(resample_for, 'resample_for'))}"
    return f"CREATE CONTINUOUS QUERY {quote_ident(name)} ON {quote_ident(database)}{resample} BEGIN {query.strip()} END"


def check_continuous_query_body(query: str) -> None:
    """Reject bodies the server would refuse, with a message naming the option, before anything is sent."""
    kinds = tokenize(query)
    words = [value for kind, value in kinds if kind == "kw"]
    if "BEGIN" in words or "END" in words or "RESAMPLE" in words:
        raise InfluxQLError("query: give only the SELECT body; BEGIN/END and RESAMPLE come from the other options")
    if not words or words[0] != "SELECT":
        raise InfluxQLError("query: a continuous query body starts with SELECT")
    if "INTO" not in words:
        raise InfluxQLError("query: a continuous query needs INTO <measurement> to write its results")
    if "FROM" not in words:
        raise InfluxQLError("query: a continuous query needs FROM <measurement>")
    flat = " ".join(value for _kind, value in kinds)
    if not re.search(r"\bGROUP BY\b.*\btime \(", flat):
        raise InfluxQLError("query: a continuous query needs GROUP BY time(<interval>)")
