"""Read an InfluxDB 1.x server's schema once and plan the statements that converge it to what is declared.

The planner is shared by the single-object modules (influxdb_database, influxdb_retention_policy,
influxdb_continuous_query, influxdb_user) and the declarative influxdb_schema module: one read, one ordered list
of statements, one before/after diff. Planning never writes; the caller decides (check mode) whether to send.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.sensorstack.iot.plugins.module_utils.check_mode import created_earlier_warning
from ansible_collections.sensorstack.iot.plugins.module_utils.influxdb_client import (
    InfluxDBClient,
    InfluxDBError,
    series_rows,
)
from ansible_collections.sensorstack.iot.plugins.module_utils.influxdb_ql import (
    AUTOGEN,
    INFINITE,
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
)


@dataclass
class RetentionPolicy:
    duration: int
    shard_duration: int
    replication: int
    default: bool

    def describe(self) -> dict[str, Any]:
        return {
            "duration": format_duration(self.duration),
            "shard_duration": format_duration(self.shard_duration),
            "replication": self.replication,
            "default": self.default,
        }


@dataclass
class ServerState:
    databases: set[str] = field(default_factory=set)
    retention_policies: dict[str, dict[str, RetentionPolicy]] = field(default_factory=dict)
    continuous_queries: dict[str, dict[str, str]] = field(default_factory=dict)
    users: dict[str, bool] = field(default_factory=dict)
    grants: dict[str, dict[str, str]] = field(default_factory=dict)


def read_state(
    client: InfluxDBClient, databases: Iterable[str] | None = None, users: Iterable[str] | None = None
) -> ServerState:
    """Read databases, users and CQs, then the RPs and grants of the databases and users asked for (two requests)."""
    overview = client.query("SHOW DATABASES; SHOW USERS; SHOW CONTINUOUS QUERIES")
    state = ServerState()
    state.databases = {row["name"] for row in series_rows(overview[0])}
    state.users = {row["user"]: bool(row["admin"]) for row in series_rows(overview[1])}
    for row in series_rows(overview[2]):
        state.continuous_queries.setdefault(row["_series"], {})[row["name"]] = row["query"]
    wanted_databases = sorted(state.databases if databases is None else state.databases & set(databases))
    wanted_users = sorted(state.users if users is None else set(state.users) & set(users))
    statements = [f"SHOW RETENTION POLICIES ON {quote_ident(name)}" for name in wanted_databases]
    statements += [f"SHOW GRANTS FOR {quote_ident(name)}" for name in wanted_users]
    details = client.query("; ".join(statements)) if statements else []
    for name, result in zip(wanted_databases, details, strict=False):
        state.retention_policies[name] = {
            row["name"]: RetentionPolicy(
                duration=parse_duration(row["duration"]),
                shard_duration=parse_duration(row["shardGroupDuration"]),
                replication=int(row["replicaN"]),
                default=bool(row["default"]),
            )
            for row in series_rows(result)
        }
    for name, result in zip(wanted_users, details[len(wanted_databases) :], strict=True):
        state.grants[name] = {
            row["database"]: row["privilege"] for row in series_rows(result) if row["privilege"] != "NO PRIVILEGES"
        }
    return state


# --- Declarations ---------------------------------------------------------------------------------------------


def _choice(value: Any, choices: tuple[str, ...], label: str) -> str:
    if value not in choices:
        raise InfluxQLError(f"{label}: {value!r} is not one of {', '.join(choices)}")
    return value


def _required(spec: dict[str, Any], key: str, label: str) -> Any:
    value = spec.get(key)
    if value in (None, ""):
        raise InfluxQLError(f"{label}: {key} is required")
    return value


@dataclass
class DatabaseSpec:
    name: str
    state: str = "present"

    @classmethod
    def parse(cls, spec: dict[str, Any], label: str = "database") -> DatabaseSpec:
        return cls(
            str(_required(spec, "name", label)),
            _choice(spec.get("state") or "present", ("present", "absent"), f"{label}: state"),
        )


def _database_object(spec: dict[str, Any], label: str) -> tuple[str, str, str, str]:
    """State, database and name of an object that lives in a database, and the label its errors carry."""
    state = _choice(spec.get("state") or "present", ("present", "absent"), f"{label}: state")
    database = str(_required(spec, "database", label))
    name = str(_required(spec, "name", label))
    return state, database, name, f"{label} ({database}.{name})"


@dataclass
class RetentionPolicySpec:
    database: str
    name: str
    duration: int | None
    replication: int
    shard_duration: int | None
    default: bool | None
    state: str
    label: str

    @classmethod
    def parse(cls, spec: dict[str, Any], label: str = "retention policy") -> RetentionPolicySpec:
        state, database, name, label = _database_object(spec, label)
        duration = None
        shard = None
        replication = int(spec.get("replication") or 1)
        if state == "present":
            duration = parse_duration(_required(spec, "duration", label), f"{label}: duration")
            if spec.get("shard_duration") not in (None, ""):
                shard = parse_duration(spec["shard_duration"], f"{label}: shard_duration")
            if replication < 1:
                raise InfluxQLError(f"{label}: replication must be at least 1")
        return cls(database, name, duration, replication, shard, spec.get("default"), state, label)


@dataclass
class ContinuousQuerySpec:
    database: str
    name: str
    query: str
    resample_every: str | None
    resample_for: str | None
    state: str
    label: str

    @classmethod
    def parse(cls, spec: dict[str, Any], label: str = "continuous query") -> ContinuousQuerySpec:
        state, database, name, label = _database_object(spec, label)
        query = ""
        if state == "present":
            query = str(_required(spec, "query", label))
            try:
                check_continuous_query_body(query)
                continuous_query_statement(name, database, query, spec.get("resample_every"), spec.get("resample_for"))
            except InfluxQLError as error:
                raise InfluxQLError(f"{label}: {error}") from None
        return cls(database, name, query, spec.get("resample_every"), spec.get("resample_for"), state, label)

    def statement(self) -> str:
        return continuous_query_statement(self.name, self.database, self.query, self.resample_every, self.resample_for)


@dataclass
class UserSpec:
    name: str
    password: str | None
    admin: bool | None
    grants: dict[str, str] | None
    update_password: str
    state: str
    label: str
    # The option that carries the password, as the module's user knows it (influxdb_user: user_password).
    password_option: str = "password"

    @classmethod
    def parse(cls, spec: dict[str, Any], label: str = "user", password_option: str = "password") -> UserSpec:
        state = _choice(spec.get("state") or "present", ("present", "absent"), f"{label}: state")
        name = str(_required(spec, "name", label))
        label = f"{label} ({name})"
        grants = None
        if spec.get("grants") is not None:
            grants = {}
            for index, grant in enumerate(spec["grants"]):
                grant_label = f"{label}: grants[{index}]"
                if not isinstance(grant, dict):
                    raise InfluxQLError(f"{grant_label}: expected a dict with database and privilege")
                database = str(_required(grant, "database", grant_label))
                grants[database] = normalise_privilege(
                    _required(grant, "privilege", grant_label), f"{grant_label}: privilege"
                )
        update = _choice(spec.get("update_password") or "always", ("always", "on_create"), f"{label}: update_password")
        admin = spec.get("admin")
        admin_flag = None if admin is None else bool(admin)
        return cls(name, spec.get("password"), admin_flag, grants, update, state, label, password_option)


# --- Planning -------------------------------------------------------------------------------------------------

PHASES = (
    "create_databases",
    "retention_policies",
    "drop_continuous_queries",
    "create_continuous_queries",
    "users",
    "drop_users",
    "drop_retention_policies",
    "drop_databases",
)

PasswordCheck = Callable[[str, str, bool], bool]


class Plan:
    """Statements to send, in dependency order, and the before/after of every declared object."""

    def __init__(self, state: ServerState, password_matches: PasswordCheck, check_mode: bool = False) -> None:
        self.state = state
        self.password_matches = password_matches
        # In check mode an object another task would create first (a database, a policy) is missing: a warning
        # there, an error in a real run.
        self.check_mode = check_mode
        self.warnings: list[str] = []
        self.phases: dict[str, list[str]] = {phase: [] for phase in PHASES}
        self.before: dict[str, dict[str, Any]] = {}
        self.after: dict[str, dict[str, Any]] = {}
        self.databases = set(state.databases)
        self.default_rp = {
            db: next((name for name, rp in rps.items() if rp.default), AUTOGEN)
            for db, rps in state.retention_policies.items()
        }
        self.policy_names = {db: set(rps) for db, rps in state.retention_policies.items()}

    @property
    def statements(self) -> list[str]:
        return [statement for phase in PHASES for statement in self.phases[phase]]

    @property
    def changed(self) -> bool:
        return any(self.phases.values())

    def _record(self, kind: str, key: str, before: Any, after: Any) -> None:
        if before is not None:
            self.before.setdefault(kind, {})[key] = before
        if after is not None:
            self.after.setdefault(kind, {})[key] = after

    def _missing(self, problem: str) -> None:
        if not self.check_mode:
            raise InfluxQLError(problem)
        self.warnings.append(created_earlier_warning(problem))

    def _require_database(self, database: str, label: str) -> None:
        if database not in self.databases:
            self._missing(f"{label}: database {database!r} does not exist (declare it first)")

    def database(self, spec: DatabaseSpec) -> None:
        exists = spec.name in self.state.databases
        self._record("databases", spec.name, {"exists": exists}, {"exists": spec.state == "present"})
        if spec.state == "present" and not exists:
            self.phases["create_databases"].append(f"CREATE DATABASE {quote_ident(spec.name)}")
            self.databases.add(spec.name)
            # The server gives every new database an infinite default policy.
            self.state.retention_policies[spec.name] = {AUTOGEN: RetentionPolicy(INFINITE, WEEK, 1, True)}
            self.default_rp[spec.name] = AUTOGEN
            self.policy_names[spec.name] = {AUTOGEN}
        elif spec.state == "absent" and exists:
            self.phases["drop_databases"].append(f"DROP DATABASE {quote_ident(spec.name)}")
            self.databases.discard(spec.name)

    def retention_policy(self, spec: RetentionPolicySpec) -> None:
        key = f"{spec.database}.{spec.name}"
        current = self.state.retention_policies.get(spec.database, {}).get(spec.name)
        before = current.describe() if current else None
        target = f"{quote_ident(spec.name)} ON {quote_ident(spec.database)}"
        if spec.state == "absent":
            self._record("retention_policies", key, before, None)
            if current:
                self.phases["drop_retention_policies"].append(f"DROP RETENTION POLICY {target}")
            return
        self._require_database(spec.database, spec.label)
        assert spec.duration is not None
        try:
            check_retention_policy(spec.duration, spec.shard_duration, current.shard_duration if current else None)
        except InfluxQLError as error:
            raise InfluxQLError(f"{spec.label}: {error}") from None
        if current is None:
            shard = spec.shard_duration if spec.shard_duration is not None else default_shard_duration(spec.duration)
            after = RetentionPolicy(spec.duration, shard, spec.replication, bool(spec.default))
            clauses = [f"DURATION {format_duration(spec.duration)}", f"REPLICATION {spec.replication}"]
            if spec.shard_duration is not None:
                clauses.append(f"SHARD DURATION {format_duration(spec.shard_duration)}")
            if spec.default:
                clauses.append("DEFAULT")
            self.phases["retention_policies"].append(f"CREATE RETENTION POLICY {target} {' '.join(clauses)}")
            self.policy_names.setdefault(spec.database, set()).add(spec.name)
        else:
            after = RetentionPolicy(current.duration, current.shard_duration, current.replication, current.default)
            clauses = []
            if spec.duration != current.duration:
                clauses.append(f"DURATION {format_duration(spec.duration)}")
                after.duration = spec.duration
            if spec.replication != current.replication:
                clauses.append(f"REPLICATION {spec.replication}")
                after.replication = spec.replication
            if spec.shard_duration is not None and spec.shard_duration != current.shard_duration:
                clauses.append(f"SHARD DURATION {format_duration(spec.shard_duration)}")
                after.shard_duration = spec.shard_duration
            # default: false never un-defaults a policy: the server only moves the default to another policy.
            if spec.default and not current.default:
                clauses.append("DEFAULT")
                after.default = True
            if clauses:
                self.phases["retention_policies"].append(f"ALTER RETENTION POLICY {target} {' '.join(clauses)}")
        if after.default:
            self.default_rp[spec.database] = spec.name
        self._record("retention_policies", key, before, after.describe())

    def continuous_query(self, spec: ContinuousQuerySpec) -> None:
        key = f"{spec.database}.{spec.name}"
        stored = self.state.continuous_queries.get(spec.database, {}).get(spec.name)
        target = f"{quote_ident(spec.name)} ON {quote_ident(spec.database)}"
        if spec.state == "absent":
            self._record("continuous_queries", key, stored, None)
            if stored is not None:
                self.phases["drop_continuous_queries"].append(f"DROP CONTINUOUS QUERY {target}")
            return
        self._require_database(spec.database, spec.label)
        wanted = spec.statement()
        default_rp = self.default_rp.get(spec.database, AUTOGEN)
        # The server refuses a query naming a missing policy only when it runs the CREATE, after the DROP of the
        # query it replaces: checked here, before anything is sent.
        for database, policy in continuous_query_targets(wanted, spec.database, default_rp, self.default_rp):
            if database not in self.databases:
                self._missing(f"{spec.label}: query: database {database!r} does not exist (declare it first)")
            elif policy not in self.policy_names.get(database, set()):
                self._missing(
                    f"{spec.label}: query: retention policy {database}.{policy} does not exist "
                    "(declare it in retention_policies first)"
                )
        if stored is not None and normalise_continuous_query(
            stored, spec.database, default_rp, self.default_rp
        ) == normalise_continuous_query(wanted, spec.database, default_rp, self.default_rp):
            self._record("continuous_queries", key, stored, stored)
            return
        if stored is not None:
            self.phases["drop_continuous_queries"].append(f"DROP CONTINUOUS QUERY {target}")
        self.phases["create_continuous_queries"].append(wanted)
        self._record("continuous_queries", key, stored, wanted)

    def user(self, spec: UserSpec) -> None:
        exists = spec.name in self.state.users
        ident = quote_ident(spec.name)
        current_grants = self.state.grants.get(spec.name, {})
        before = {"admin": self.state.users[spec.name], "grants": dict(current_grants)} if exists else None
        if spec.state == "absent":
            self._record("users", spec.name, before, None)
            if exists:
                self.phases["drop_users"].append(f"DROP USER {ident}")
            return
        statements: list[str] = []
        after: dict[str, Any]
        if not exists:
            if not spec.password:
                raise InfluxQLError(f"{spec.label}: {spec.password_option} is required to create the user")
            admin = bool(spec.admin)
            statements.append(
                f"CREATE USER {ident} WITH PASSWORD {quote_string(spec.password)}"
                + (" WITH ALL PRIVILEGES" if admin else "")
            )
            after = {"admin": admin, "grants": {}}
        else:
            admin = self.state.users[spec.name]
            after = {"admin": admin, "grants": dict(current_grants)}
            if (
                spec.password
                and spec.update_password == "always"
                and not self.password_matches(spec.name, spec.password, admin)
            ):
                statements.append(f"SET PASSWORD FOR {ident} = {quote_string(spec.password)}")
                after["password"] = "changed"
            if spec.admin is not None and spec.admin != admin:
                verb = "GRANT ALL PRIVILEGES TO" if spec.admin else "REVOKE ALL PRIVILEGES FROM"
                statements.append(f"{verb} {ident}")
                after["admin"] = spec.admin
        if spec.grants is not None:
            for database, privilege in sorted(spec.grants.items()):
                self._require_database(database, f"{spec.label}: grants")
                if current_grants.get(database) != privilege or not exists:
                    statements.append(f"GRANT {privilege} ON {quote_ident(database)} TO {ident}")
            for database in sorted(set(current_grants) - set(spec.grants)):
                statements.append(f"REVOKE ALL ON {quote_ident(database)} FROM {ident}")
            after["grants"] = dict(spec.grants)
        self.phases["users"].extend(statements)
        self._record("users", spec.name, before, after)


AUTH_OFF, AUTH_ON, AUTH_NO_ADMIN = "off", "on", "no admin yet"


def server_authentication(client: InfluxDBClient) -> str:
    """Whether the server checks credentials, from one query sent without any."""
    try:
        client.query("SHOW USERS", authenticate=False)
        return AUTH_OFF
    except InfluxDBError as error:
        return AUTH_NO_ADMIN if error.needs_admin_bootstrap else AUTH_ON


# Logins are checked in parallel: the server spends each one in bcrypt, outside any lock, one core per request.
# Threads are safe although Ansible's Request installs its opener globally: each request carries its own credentials
# in its Authorization header, and every opener is built from the same settings.
PARALLEL_LOGINS = 4


def check_passwords(
    client: InfluxDBClient, candidates: list[tuple[str, str, bool]], authentication: str
) -> dict[str, bool]:
    """Tell which declared passwords the server already has, changing nothing and logging no password.

    ``candidates`` holds (name, password, current admin flag); returns name -> whether the password matches.
    With authentication on, the server is asked to log each user in (credentials in a header, never in the URL);
    it remembers a successful login, so a rerun against a running server costs no bcrypt at all. With it off,
    a login proves nothing, so each user gets ``CREATE USER`` again: a no-op when password and admin flag match,
    an error otherwise. That probe holds the server's metadata lock for its bcrypt, so it runs one at a time.
    """
    if authentication == AUTH_ON:
        with ThreadPoolExecutor(max_workers=PARALLEL_LOGINS) as pool:
            results = list(pool.map(lambda candidate: client.can_log_in(candidate[0], candidate[1]), candidates))
        return {name: result for (name, _password, _admin), result in zip(candidates, results, strict=True)}

    def recreate_is_a_no_op(name: str, password: str, admin: bool) -> bool:
        probe = f"CREATE USER {quote_ident(name)} WITH PASSWORD {quote_string(password)}"
        try:
            client.query(probe + (" WITH ALL PRIVILEGES" if admin else ""), change=True)
        except InfluxDBError as error:
            if "user already exists" in str(error):
                return False
            raise
        return True

    return {name: recreate_is_a_no_op(name, password, admin) for name, password, admin in candidates}


def bootstrap_admin(client: InfluxDBClient, users: list[UserSpec], check_mode: bool) -> None:
    """Create the first admin user on a server with auth on and no users yet, the only thing it then allows.

    Only the declared admin whose name and password are the module's own credentials is created this way.
    """
    for spec in users:
        if spec.state == "present" and spec.admin and spec.name == client.username and spec.password == client.password:
            if not check_mode:
                client.change(
                    [
                        f"CREATE USER {quote_ident(spec.name)} WITH PASSWORD {quote_string(spec.password)} "
                        "WITH ALL PRIVILEGES"
                    ],
                    authenticate=False,
                )
            return
    option = users[0].password_option if users else "password"
    raise InfluxQLError(
        "the server has authentication on and no admin user yet: declare the admin user (admin: true) whose name "
        f"and {option} are those of the username and password options, to bootstrap it"
    )


@dataclass
class Declaration:
    databases: list[DatabaseSpec] = field(default_factory=list)
    retention_policies: list[RetentionPolicySpec] = field(default_factory=list)
    continuous_queries: list[ContinuousQuerySpec] = field(default_factory=list)
    users: list[UserSpec] = field(default_factory=list)

    def database_names(self) -> set[str]:
        names = {spec.name for spec in self.databases}
        names |= {spec.database for spec in self.retention_policies}
        names |= {spec.database for spec in self.continuous_queries}
        for user in self.users:
            names |= set(user.grants or {})
        for query in self.continuous_queries:
            if query.state == "present":
                names |= {database for database, _rp in continuous_query_targets(query.statement(), query.database, "")}
        return names

    def check(self) -> None:
        """Refuse what no order of statements can converge: two default policies of one database would take the
        default from each other on every run (and move where unqualified writes go)."""
        defaults: dict[str, list[str]] = {}
        for policy in self.retention_policies:
            if policy.state == "present" and policy.default:
                defaults.setdefault(policy.database, []).append(policy.name)
        for database, names in sorted(defaults.items()):
            if len(names) > 1:
                raise InfluxQLError(
                    f"retention_policies: {' and '.join(names)} of database {database} all have default: true; a "
                    "database has one default policy"
                )


def converge(client: InfluxDBClient, declaration: Declaration, check_mode: bool) -> dict[str, Any]:
    """Read the server once, plan every declared object, and send the plan unless in check mode.

    Returns ``changed``, the redacted ``statements`` and a ``diff`` with ``before``/``after``.
    """
    declaration.check()
    authentication = server_authentication(client)
    bootstrapped = authentication == AUTH_NO_ADMIN
    if bootstrapped:
        bootstrap_admin(client, declaration.users, check_mode)
        authentication = AUTH_ON
    if bootstrapped and check_mode:
        state = ServerState(users={})  # nothing can be read before the admin exists
    else:
        state = read_state(client, declaration.database_names(), [user.name for user in declaration.users])
    candidates = [
        (user.name, user.password, state.users[user.name])
        for user in declaration.users
        if user.state == "present" and user.password and user.update_password == "always" and user.name in state.users
    ]
    password_matches = check_passwords(client, candidates, authentication)
    plan = Plan(state, lambda name, _password, _admin: password_matches[name], check_mode)
    for database in declaration.databases:
        plan.database(database)
    for policy in declaration.retention_policies:
        plan.retention_policy(policy)
    for query in declaration.continuous_queries:
        plan.continuous_query(query)
    for user in declaration.users:
        plan.user(user)
    statements = plan.statements
    if statements and not check_mode:
        # One request: the server runs the statements in order and stops at the first error, which it names.
        # Sending users in parallel gains nothing, as user changes hold its metadata lock through their bcrypt.
        client.change(statements)
    return {
        "changed": bool(statements) or bootstrapped,
        "statements": [redact_secrets(statement) for statement in statements],
        "diff": {"before": plan.before, "after": plan.after},
        "warnings": plan.warnings,
    }


STATE_OPTION = {"type": "str", "choices": ["present", "absent"], "default": "present"}

# Argument specs of each kind of object, shared by its own module and by influxdb_schema's lists.
DATABASE_OPTIONS: dict[str, Any] = {"name": {"type": "str", "required": True}, "state": STATE_OPTION}
RETENTION_POLICY_OPTIONS: dict[str, Any] = {
    "database": {"type": "str", "required": True},
    "name": {"type": "str", "required": True},
    "duration": {"type": "str"},
    "replication": {"type": "int", "default": 1},
    "shard_duration": {"type": "str"},
    "default": {"type": "bool"},
    "state": STATE_OPTION,
}
CONTINUOUS_QUERY_OPTIONS: dict[str, Any] = {
    "database": {"type": "str", "required": True},
    "name": {"type": "str", "required": True},
    "query": {"type": "str"},
    "resample_every": {"type": "str"},
    "resample_for": {"type": "str"},
    "state": STATE_OPTION,
}
USER_OPTIONS: dict[str, Any] = {
    "name": {"type": "str", "required": True},
    "password": {"type": "str", "no_log": True},
    "admin": {"type": "bool"},
    "grants": {
        "type": "list",
        "elements": "dict",
        "options": {
            "database": {"type": "str", "required": True},
            "privilege": {"type": "str", "required": True},
        },
    },
    "update_password": {"type": "str", "choices": ["always", "on_create"], "default": "always", "no_log": False},
    "state": STATE_OPTION,
}


def run_module(module: Any, build: Callable[[dict[str, Any]], Declaration]) -> None:
    """The whole of an influxdb_* module's run: parse, converge (or plan in check mode), report."""
    try:
        declaration = build(module.params)
        result = converge(InfluxDBClient.from_module(module), declaration, module.check_mode)
    except (InfluxQLError, InfluxDBError) as error:
        module.fail_json(msg=str(error), statement=getattr(error, "statement", None))
    for warning in result.pop("warnings"):
        module.warn(warning)
    module.exit_json(**result)
