"""sensorstack lab stand-in for grafana/grafana: serves the project's Grafana API double (tests/grafana_double).

This is NOT Grafana: no UI, no queries, no alerting; the HTTP API of folders, dashboards, datasources, users and
/api/health, with Grafana's rules as the double models them. What the API writes is kept in
<[paths] data>/sensorstack-double.json (JSON, not SQLite), read back at start, so a pod on its volume keeps its
folders, dashboards, datasources and users across restarts as Grafana does with grafana.db: the configured admin
password counts only when that file is created. ``grafana cli admin reset-admin-password`` (this file run with
``cli``, as the image's ``grafana`` command) changes the admin's password in it, running server or not.
It reads what the grafana/grafana image reads for that part:
- GF_PATHS_CONFIG (grafana.ini): [server] http_addr, http_port; [security] admin_user, admin_password; [paths] data;
  a value may be $__env{VAR} or $__file{path}, which Grafana expands (the file's text, trimmed);
- GF_<SECTION>_<KEY> environment variables over the file, e.g. GF_SECURITY_ADMIN_PASSWORD;
- GF_<NAME>__FILE: the variable's value from that file (Docker and Kubernetes secrets), as /run.sh does;
- GF_PATHS_PROVISIONING: datasources/*.yaml and dashboards/*.yaml (file providers), with $VAR, ${VAR},
  $__env{VAR} and $__file{path} expanded; what they provision is read-only through the API, as in Grafana, and
  POST /api/admin/provisioning/{datasources,dashboards}/reload provisions them again from the files (datasources
  inserted or updated by name, dashboards replaced by those of the files).

Runs with the image's python3 and the double's package beside this file; the functions above ``serve`` are pure.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = "/etc/grafana/grafana.ini"
DEFAULT_PROVISIONING = "/etc/grafana/provisioning"
DEFAULT_DATA = "/var/lib/grafana"
# The stand-in's database in the data folder, where Grafana keeps grafana.db.
STATE_FILE = "sensorstack-double.json"
# The double records every request for tests; a long-running server forgets them this often.
FORGET_REQUESTS_SECONDS = 60.0
FILE_SUFFIX = "__FILE"


@dataclass(frozen=True)
class Settings:
    admin_user: str = "admin"
    admin_password: str = "admin"
    http_addr: str = ""
    http_port: int = 3000
    provisioning: Path = Path(DEFAULT_PROVISIONING)
    data: Path = Path(DEFAULT_DATA)


@dataclass(frozen=True)
class ProvisionedDashboard:
    org_id: int
    folder_title: str
    folder_uid: str
    dashboard: dict[str, Any] = field(default_factory=dict)


def resolve_file_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """GF_X__FILE=/path becomes GF_X=<the file's content>; both set is an error, as in grafana/grafana's run.sh."""
    resolved = dict(environ)
    for name, path in environ.items():
        if not (name.startswith("GF_") and name.endswith(FILE_SUFFIX) and path):
            continue
        target = name.removesuffix(FILE_SUFFIX)
        if environ.get(target):
            raise SystemExit(f"ERROR: Both {target} and {name} are set (but are exclusive)")
        resolved[target] = Path(path).read_text()
        del resolved[name]
    return resolved


def _environment_key(section: str, key: str) -> str:
    return f"GF_{section}_{key}".upper().replace(".", "_").replace("-", "_")


_INI_EXPANSION = re.compile(r"\$__(?P<kind>env|file)\{(?P<name>[^}]*)\}")


def _file_text(path: str) -> str:
    """What $__file{path} expands to, in grafana.ini and in provisioning files: the file's text, trimmed."""
    return Path(path).read_text().strip()


def expand_ini_value(text: str, environ: Mapping[str, str]) -> str:
    """Grafana's expansion of a grafana.ini value: $__env{VAR} and $__file{path}."""

    def replace(match: re.Match[str]) -> str:
        if match.group("kind") == "env":
            return environ.get(match.group("name"), "")
        return _file_text(match.group("name"))

    return _INI_EXPANSION.sub(replace, text)


def read_settings(environ: Mapping[str, str], ini_text: str) -> Settings:
    """The settings from grafana.ini's text, each overridden by its GF_<SECTION>_<KEY> variable. Like Grafana, every
    value is expanded at start, and a file one names that cannot be read stops the server."""
    parser = configparser.ConfigParser(interpolation=None, comment_prefixes=(";", "#"), strict=False)
    parser.read_string("[__top__]\n" + ini_text)
    expanded: dict[tuple[str, str], str] = {}
    for section in parser.sections():
        for key, text in parser.items(section):
            try:
                expanded[section, key] = expand_ini_value(text.strip(), environ)
            except OSError as error:
                raise SystemExit(f"Failed to expand [{section}] {key}: {error}") from error

    def value(section: str, key: str, default: str) -> str:
        override = environ.get(_environment_key(section, key))
        if override is not None:
            return override
        return expanded.get((section, key)) or default

    return Settings(
        admin_user=value("security", "admin_user", "admin"),
        admin_password=value("security", "admin_password", "admin"),
        http_addr=value("server", "http_addr", ""),
        http_port=int(value("server", "http_port", "3000")),
        provisioning=Path(environ.get("GF_PATHS_PROVISIONING") or DEFAULT_PROVISIONING),
        data=Path(value("paths", "data", DEFAULT_DATA)),
    )


_VARIABLE = re.compile(
    r"\$\$|\$__env\{(?P<env>[^}]*)\}|\$__file\{(?P<file>[^}]*)\}|\$\{(?P<braced>[^}]*)\}"
    r"|\$(?P<plain>[A-Za-z_][A-Za-z0-9_]*)"
)


def expand(text: str, environ: Mapping[str, str]) -> str:
    """Grafana's expansion of provisioning files: $VAR, ${VAR}, $__env{VAR}, $__file{path} (the file's text,
    trimmed); $$ is a literal $."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group("file") is not None:
            return _file_text(match.group("file"))
        name = match.group("env") or match.group("braced") or match.group("plain")
        return environ.get(name, "")

    return _VARIABLE.sub(replace, text)


def _yaml_documents(folder: Path, environ: Mapping[str, str]) -> Iterator[tuple[Path, dict[str, Any]]]:
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) if folder.is_dir() else []
    if not files:
        return
    import yaml  # python3-yaml: only needed when there is something to provision

    for path in files:
        document = yaml.safe_load(expand(path.read_text(), environ)) or {}
        if not isinstance(document, dict):
            raise SystemExit(f"{path}: not a provisioning file (expected a mapping)")
        yield path, document


def provisioned_datasources(root: Path, environ: Mapping[str, str]) -> list[tuple[int, dict[str, Any]]]:
    """(orgId, datasource) for every datasource of root/datasources/*.yaml."""
    found = []
    for _, document in _yaml_documents(root / "datasources", environ):
        for item in document.get("datasources") or []:
            body = {key: value for key, value in item.items() if key not in ("orgId", "version", "editable")}
            found.append((int(item.get("orgId") or 1), body))
    return found


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_-]+", "-", text).strip("-")[:40] or "dashboard"


def provisioned_dashboards(root: Path, environ: Mapping[str, str]) -> list[ProvisionedDashboard]:
    """The dashboards the file providers of root/dashboards/*.yaml point at (a missing uid comes from the name)."""
    found = []
    for _, document in _yaml_documents(root / "dashboards", environ):
        for provider in document.get("providers") or []:
            if (provider.get("type") or "file") != "file":
                continue
            path = Path(str((provider.get("options") or {}).get("path") or ""))
            files = sorted(path.rglob("*.json")) if path.is_dir() else ([path] if path.is_file() else [])
            for file in files:
                dashboard = json.loads(file.read_text())
                dashboard.pop("id", None)
                dashboard.setdefault("uid", _slug(file.stem))
                found.append(
                    ProvisionedDashboard(
                        int(provider.get("orgId") or 1),
                        str(provider.get("folder") or ""),
                        str(provider.get("folderUid") or ""),
                        dashboard,
                    )
                )
    return found


# --- serving ----------------------------------------------------------------------------------------------------


def _double(settings: Settings) -> Any:
    """The double listening where Grafana would (it binds loopback by default: fine in tests, not in a pod)."""
    import inspect
    from http.server import ThreadingHTTPServer

    from grafana_double.server import GrafanaDouble

    credentials = {"user": settings.admin_user, "password": settings.admin_password, "token": None}
    if "host" in inspect.signature(GrafanaDouble).parameters:
        return GrafanaDouble(host=settings.http_addr or "0.0.0.0", port=settings.http_port, **credentials)
    double = GrafanaDouble(port=0, **credentials)
    double._server.server_close()
    server = ThreadingHTTPServer((settings.http_addr, settings.http_port), double._handler_class())
    server.daemon_threads = True
    double._server = server
    return double


PROVISIONED_KINDS = ("datasources", "dashboards")


def _forget_provisioned_dashboards(double: Any) -> None:
    """A file provider's dashboards are its files': one whose file is gone goes too (disableDeletion false)."""
    with double.lock:
        for org in double.state.orgs.values():
            for uid in [uid for uid, item in org.dashboards.items() if item.provisioned]:
                del org.dashboards[uid]


def reload_route(double: Any, settings: Settings, environ: Mapping[str, str]) -> tuple[str, Any, Any]:
    """POST /api/admin/provisioning/<kind>/reload: the files of that kind provisioned again, as Grafana does."""

    def reload(org: Any, who: Any, query: Any, body: Any, kind: str) -> dict[str, str]:
        if kind == "dashboards":
            _forget_provisioned_dashboards(double)
        _provision(double, settings, environ, kinds=(kind,))
        return {"message": f"{kind.capitalize()} config reloaded"}

    reload.takes_no_body = True  # type: ignore[attr-defined]
    pattern = re.compile(rf"^/api/admin/provisioning/(?P<kind>{'|'.join(PROVISIONED_KINDS)})/reload$")
    return ("POST", pattern, reload)


def _provision(
    double: Any, settings: Settings, environ: Mapping[str, str], kinds: tuple[str, ...] = PROVISIONED_KINDS
) -> None:
    if "datasources" in kinds:
        _provision_datasources(double, settings, environ)
    if "dashboards" in kinds:
        _provision_dashboards(double, settings, environ)


def _provision_datasources(double: Any, settings: Settings, environ: Mapping[str, str]) -> None:
    """Each datasource of the files inserted, or updated in place by name as Grafana does; one no longer in the files
    stays (Grafana deletes only those named in deleteDatasources, which the role does not write)."""
    for org_id, datasource in provisioned_datasources(settings.provisioning, environ):
        if org_id not in double.state.orgs:
            print(f"provisioning: skipped datasource {datasource.get('name')!r} of unknown org {org_id}", flush=True)
            continue
        with double.lock:
            org = double.state.orgs[org_id]
            for uid in [uid for uid, item in org.datasources.items() if item.fields["name"] == datasource.get("name")]:
                del org.datasources[uid]
        double.add_provisioned_datasource(datasource, org_id=org_id)


def _provision_dashboards(double: Any, settings: Settings, environ: Mapping[str, str]) -> None:
    for item in provisioned_dashboards(settings.provisioning, environ):
        if item.org_id not in double.state.orgs:
            print(f"provisioning: skipped dashboard {item.dashboard.get('title')!r} of org {item.org_id}", flush=True)
            continue
        folder_uid = item.folder_uid
        if item.folder_title or folder_uid:
            org = double.state.orgs[item.org_id]
            existing = [f for f in org.folders.values() if f.title == item.folder_title or f.uid == folder_uid]
            if existing:
                folder_uid = existing[0].uid
            else:
                body = {"uid": folder_uid, "title": item.folder_title or folder_uid}
                with double.lock:
                    folder_uid = double.state.create_folder(org, body)["uid"]
        double.add_provisioned_dashboard(item.dashboard, folder_uid=folder_uid, org_id=item.org_id)


class StateFile:
    """The stand-in's database on the pod's volume, as grafana.db is Grafana's.

    Written after each change through the API, as a new file renamed over the old one (a killed pod leaves one
    whole). Another process may change it too: ``grafana cli admin reset-admin-password`` does, while the server
    runs, and the server reads the users again before the next request, as Grafana reads them from its database at
    each login.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: int | None = None

    def load(self, double: Any) -> bool:
        """What the API wrote before this start, if anything; False when there is no database yet."""
        if not self.path.is_file():
            return False
        with double.lock:
            double.state.restore(self.read())
        return True

    def read(self) -> dict[str, Any]:
        snapshot: dict[str, Any] = json.loads(self.path.read_text())
        self._seen = self.path.stat().st_mtime_ns
        return snapshot

    def save(self, state: Any) -> None:
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(state.snapshot()))
        os.replace(temporary, self.path)
        self._seen = self.path.stat().st_mtime_ns

    def read_users_if_changed(self, state: Any) -> None:
        try:
            changed = self.path.stat().st_mtime_ns != self._seen
        except FileNotFoundError:
            return
        if changed:
            snapshot = self.read()
            if "users" in snapshot:
                state.restore({"users": snapshot["users"]})


def load_settings(environ: Mapping[str, str], config_file: str = "") -> Settings:
    """The settings of the configuration file given (``--config``), else GF_PATHS_CONFIG's, else the default one."""
    config = Path(config_file or environ.get("GF_PATHS_CONFIG") or DEFAULT_CONFIG)
    return read_settings(environ, config.read_text() if config.is_file() else "")


def serve(environ: Mapping[str, str]) -> None:
    settings = load_settings(environ)
    double = _double(settings)
    database = StateFile(settings.data / STATE_FILE)
    if not database.load(double):
        # Grafana creates its database, and its admin with admin_password, at its first start only.
        database.save(double.state)
    _provision(double, settings, environ)
    double.routes.append(reload_route(double, settings, environ))
    double.on_write = database.save
    double.on_request = database.read_users_if_changed
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    double.start()
    address = settings.http_addr or "0.0.0.0"
    print(f"Grafana API double (sensorstack lab stand-in, not Grafana) on {address}:{settings.http_port}", flush=True)
    while not stop.wait(FORGET_REQUESTS_SECONDS):
        with double.lock:
            del double.requests[:]
    double.stop()


def reset_admin_password(environ: Mapping[str, str], arguments: list[str], stdin: Any) -> str:
    """``grafana cli [--homepath H] [--config C] admin reset-admin-password (--password-from-stdin | PASSWORD)``.

    As Grafana's CLI: it changes the database of the configuration it is given, whether the server runs or not.
    """
    import argparse

    from grafana_double.server import GrafanaState

    parser = argparse.ArgumentParser(prog="grafana cli")
    parser.add_argument("--homepath", default="")
    parser.add_argument("--config", default="")
    parser.add_argument("command", choices=["admin"])
    parser.add_argument("subcommand", choices=["reset-admin-password"])
    parser.add_argument("--password-from-stdin", action="store_true")
    parser.add_argument("password", nargs="?", default="")
    options = parser.parse_args(arguments)
    password = stdin.read().rstrip("\n") if options.password_from_stdin else options.password
    database = StateFile(load_settings(environ, options.config).data / STATE_FILE)
    if not database.path.is_file():
        raise SystemExit(f"Could not read user from database: no database at {database.path}")
    state = GrafanaState()
    state.restore(database.read())
    try:
        state.reset_admin_password(password)
    except (LookupError, ValueError) as error:
        raise SystemExit(str(error)) from error
    database.save(state)
    return "Admin password changed successfully ✔"


def main(arguments: list[str]) -> None:
    """``grafana server ...`` (or no command: /run.sh) serves; ``grafana cli admin reset-admin-password`` resets."""
    environ = resolve_file_variables(os.environ)
    if arguments[:1] == ["cli"]:
        print(reset_admin_password(environ, arguments[1:], sys.stdin), flush=True)
    else:
        serve(environ)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main(sys.argv[1:])
