"""The Grafana API double: in-memory state with Grafana's rules, served over HTTP on loopback.

Behaviour follows Grafana's documentation and server source (``pkg/api``, ``pkg/services/dashboards``,
``pkg/services/datasources``); ``../shared/reference/grafana-api.md`` lists the facts. Each rule below names the
Grafana behaviour it reproduces, and ``tests/unit/test_grafana_double.py`` pins them.

Modelled deliberately:
- Auth: basic auth and ``Authorization: Bearer <service-account token>``; anything else is 401. ``X-Grafana-Org-Id``
  selects the organization; an identity outside that organization gets 401.
- Dashboards by uid, version counting, ``version-mismatch`` (412) without ``overwrite``, ``name-exists`` (412, the
  rule of releases before 11 that a folder holds one dashboard per title), empty title (400), moves between folders
  (omitting ``folderUid`` on save moves a dashboard to the General folder), provisioned dashboards that cannot be saved
  or deleted (400).
- Datasources by uid and by name, 409 on a duplicate name or uid, read-only (provisioned) datasources (403),
  ``secureJsonData`` that is write-only (reads report ``secureJsonFields``; an update keeps the secrets it does not
  name), the ``version`` check of an update (409 when older than the stored one; the stored version becomes the sent
  version + 1, as Grafana's SQL update does), one default datasource per organization.
- Folders: 409 on a duplicate uid or title, 412 on a stale version, paging on ``GET /api/folders``; deleting a folder
  deletes its dashboards.
- Persistence: ``GrafanaState.snapshot``/``restore`` hold what Grafana's database keeps of the API's objects (the
  provisioned ones come back from their files) and of its users: their passwords as Grafana stores them (PBKDF2 of
  a per-user salt), so a restored admin keeps the password it had, whatever the configuration now says (Grafana
  applies ``admin_password`` only when it creates its database). ``GrafanaState.reset_admin_password`` is what
  ``grafana cli admin reset-admin-password`` does. ``GrafanaDouble.on_write`` is called after each change and
  ``GrafanaDouble.on_request`` before each request, which the lab's stand-in image uses to keep the state on its
  volume across restarts and to see a password the CLI changed.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

GRAFANA_VERSION = "11.6.1"
UID_PATTERN = re.compile(r"^[a-zA-Z0-9\-_]*$")
MAX_UID_LENGTH = 40
MAX_MESSAGE_LENGTH = 500
FOLDERS_DEFAULT_LIMIT = 1000
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Json = dict[str, Any]


class ApiError(Exception):
    """An HTTP error response: Grafana's status code and JSON body."""

    def __init__(self, code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.body: Json = {"message": message, **extra}


@dataclass(frozen=True)
class RecordedRequest:
    """One request the double received (the Authorization header is reduced to its scheme)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any

    @property
    def is_write(self) -> bool:
        return self.method in WRITE_METHODS


# Grafana's util.EncodePassword: PBKDF2 with SHA-256, 10,000 rounds, 50 bytes, hex; a 10-character salt per user.
PASSWORD_ROUNDS = 10_000
PASSWORD_BYTES = 50
# Grafana's CLI resets the password of the user it created with the database (pkg/cmd/grafana-cli: AdminUserId).
ADMIN_USER_ID = 1


def encode_password(password: str, salt: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), PASSWORD_ROUNDS, PASSWORD_BYTES).hex()


@dataclass
class User:
    id: int
    login: str
    salt: str
    password_hash: str
    orgs: list[int]

    @classmethod
    def with_password(cls, user_id: int, login: str, password: str, orgs: list[int]) -> User:
        user = cls(user_id, login, "", "", orgs)
        user.set_password(password)
        return user

    def set_password(self, password: str) -> None:
        self.salt = secrets.token_hex(5)
        self.password_hash = encode_password(password, self.salt)

    def has_password(self, password: str) -> bool:
        return secrets.compare_digest(encode_password(password, self.salt), self.password_hash)


@dataclass(frozen=True)
class Identity:
    login: str
    user_id: int
    org_id: int
    is_service_account: bool


@dataclass
class Folder:
    id: int
    uid: str
    title: str
    version: int
    created: str
    updated: str


@dataclass
class Dashboard:
    id: int
    uid: str
    data: Json
    folder_uid: str
    version: int
    created: str
    updated: str
    provisioned: bool = False

    @property
    def title(self) -> str:
        return str(self.data.get("title", ""))


@dataclass
class Datasource:
    fields: Json
    secure: dict[str, str]


@dataclass
class Org:
    id: int
    name: str
    folders: dict[str, Folder] = field(default_factory=dict)
    dashboards: dict[str, Dashboard] = field(default_factory=dict)
    datasources: dict[str, Datasource] = field(default_factory=dict)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def slugify(title: str) -> str:
    """Grafana's URL slug of a title: lower case, runs of other characters as one dash."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def new_uid() -> str:
    """A short uid like the ones Grafana generates (14 characters, starting with a letter)."""
    return "d" + secrets.token_hex(7)[:13]


def check_uid(uid: str) -> None:
    """Grafana's uid rules: at most 40 characters of letters, digits, '-' and '_' (400 otherwise)."""
    if len(uid) > MAX_UID_LENGTH:
        raise ApiError(400, "uid too long, max 40 characters")
    if not UID_PATTERN.match(uid):
        raise ApiError(400, "uid contains illegal characters")


class GrafanaState:
    """Every organization's folders, dashboards and datasources, and the rules for changing them."""

    def __init__(self, unique_titles: bool = True) -> None:
        self.orgs: dict[int, Org] = {1: Org(1, "Main Org.")}
        self.users: dict[str, User] = {}
        self.tokens: dict[str, Identity] = {}
        self.database_ok = True
        self.unique_titles = unique_titles
        self._next_id = 0

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # --- Persistence ----------------------------------------------------------------------------------------------

    def snapshot(self) -> Json:
        """What Grafana's database keeps of every organization: provisioned objects come back from their files."""
        return {
            "next_id": self._next_id,
            "orgs": [
                {
                    "id": org.id,
                    "name": org.name,
                    "folders": [asdict(folder) for folder in org.folders.values()],
                    "dashboards": [asdict(d) for d in org.dashboards.values() if not d.provisioned],
                    "datasources": [asdict(d) for d in org.datasources.values() if not d.fields["readOnly"]],
                }
                for org in self.orgs.values()
            ],
            "users": [asdict(user) for user in self.users.values()],
        }

    def restore(self, snapshot: Json) -> None:
        """Take back the objects of a ``snapshot``, as Grafana reads its database when it starts."""
        self._next_id = max(self._next_id, int(snapshot.get("next_id") or 0))
        for item in snapshot.get("orgs") or []:
            org_id = int(item["id"])
            org = self.orgs.setdefault(org_id, Org(org_id, str(item["name"])))
            org.folders.update((f["uid"], Folder(**f)) for f in item.get("folders") or [])
            org.dashboards.update((d["uid"], Dashboard(**d)) for d in item.get("dashboards") or [])
            org.datasources.update((d["fields"]["uid"], Datasource(**d)) for d in item.get("datasources") or [])
        if "users" in snapshot:
            self.users = {user["login"]: User(**user) for user in snapshot["users"]}

    def reset_admin_password(self, password: str) -> None:
        """``grafana cli admin reset-admin-password``: a new password for the user the database was created with."""
        admins = [user for user in self.users.values() if user.id == ADMIN_USER_ID]
        if not admins:
            raise LookupError("Could not read user from database: user not found")
        if not password:
            raise ValueError("New password is too short")
        admins[0].set_password(password)

    # --- Auth -----------------------------------------------------------------------------------------------------

    def authenticate(self, authorization: str | None, org_header: str | None) -> Identity:
        """Resolve the caller, as Grafana's authn service does: basic auth or a bearer token, else 401."""
        scheme, _, credentials = (authorization or "").partition(" ")
        if scheme.lower() == "basic":
            identity = self._basic_identity(credentials.strip())
        elif scheme.lower() == "bearer" and credentials.strip() in self.tokens:
            identity = self.tokens[credentials.strip()]
        elif scheme.lower() == "bearer":
            raise ApiError(401, "Invalid API key", messageId="api-key.invalid", statusCode=401)
        else:
            raise ApiError(401, "Unauthorized")
        return self._in_org(identity, org_header)

    def _basic_identity(self, credentials: str) -> Identity:
        try:
            login, _, password = base64.b64decode(credentials, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError) as error:
            raise ApiError(401, "Unauthorized") from error
        user = self.users.get(login)
        if user is None or not user.has_password(password):
            raise ApiError(401, "Invalid username or password", messageId="password-auth.failed", statusCode=401)
        return Identity(user.login, user.id, user.orgs[0], is_service_account=False)

    def _in_org(self, identity: Identity, org_header: str | None) -> Identity:
        if not org_header:
            return identity
        try:
            org_id = int(org_header)
        except ValueError as error:
            raise ApiError(400, "X-Grafana-Org-Id is not a number") from error
        if identity.is_service_account and org_id != identity.org_id:
            raise ApiError(401, "API key does not belong to the requested organization")
        user = self.users.get(identity.login)
        if not identity.is_service_account and (org_id not in self.orgs or user is None or org_id not in user.orgs):
            raise ApiError(401, "User is not a member of the organization")
        return Identity(identity.login, identity.user_id, org_id, identity.is_service_account)

    def current_user(self, identity: Identity) -> Json:
        return {
            "id": identity.user_id,
            "login": identity.login,
            "email": "" if identity.is_service_account else f"{identity.login}@localhost",
            "name": identity.login,
            "orgId": identity.org_id,
            "isGrafanaAdmin": not identity.is_service_account,
        }

    # --- Folders --------------------------------------------------------------------------------------------------

    def _uid_taken(self, org: Org, uid: str) -> bool:
        """Folders and dashboards share one table in Grafana, hence one uid namespace."""
        return uid in org.folders or uid in org.dashboards

    def folder_dto(self, folder: Folder, org: Org) -> Json:
        return {
            "id": folder.id,
            "uid": folder.uid,
            "orgId": org.id,
            "title": folder.title,
            "url": f"/dashboards/f/{folder.uid}/{slugify(folder.title)}",
            "hasAcl": False,
            "canSave": True,
            "canEdit": True,
            "canAdmin": True,
            "canDelete": True,
            "createdBy": "admin",
            "created": folder.created,
            "updatedBy": "admin",
            "updated": folder.updated,
            "version": folder.version,
        }

    def list_folders(self, org: Org, query: dict[str, list[str]]) -> list[Json]:
        """``GET /api/folders``: sorted by title, ``limit`` (default 1000) per ``page`` (from 1)."""
        limit = _int_query(query, "limit", FOLDERS_DEFAULT_LIMIT)
        page = max(_int_query(query, "page", 1), 1)
        ordered = sorted(org.folders.values(), key=lambda folder: (folder.title.lower(), folder.uid))
        start = (page - 1) * limit
        return [{"id": f.id, "uid": f.uid, "title": f.title} for f in ordered[start : start + limit]]

    def get_folder(self, org: Org, uid: str) -> Folder:
        folder = org.folders.get(uid)
        if folder is None:
            raise ApiError(404, "folder not found", status="not-found")
        return folder

    def _check_folder_title(self, org: Org, title: str, uid: str) -> None:
        if not title.strip():
            raise ApiError(400, "folder title cannot be empty")
        if any(other.title == title and other.uid != uid for other in org.folders.values()):
            raise ApiError(409, "a folder or dashboard in the general folder with the same name already exists")

    def create_folder(self, org: Org, body: Json) -> Json:
        uid = str(body.get("uid") or "") or new_uid()
        title = str(body.get("title") or "")
        check_uid(uid)
        self._check_folder_title(org, title, uid)
        if self._uid_taken(org, uid):
            raise ApiError(409, "a folder/dashboard with the same uid already exists")
        stamp = now()
        folder = Folder(self.next_id(), uid, title, 1, stamp, stamp)
        org.folders[uid] = folder
        return self.folder_dto(folder, org)

    def update_folder(self, org: Org, uid: str, body: Json) -> Json:
        """``PUT /api/folders/:uid``: a stale ``version`` without ``overwrite`` is 412 version-mismatch."""
        folder = self.get_folder(org, uid)
        title = str(body.get("title") or "")
        self._check_folder_title(org, title, uid)
        if not body.get("overwrite") and _int(body.get("version")) != folder.version:
            raise ApiError(412, "the folder has been changed by someone else", status="version-mismatch")
        folder.title = title
        folder.version += 1
        folder.updated = now()
        return self.folder_dto(folder, org)

    def delete_folder(self, org: Org, uid: str) -> Json:
        folder = self.get_folder(org, uid)
        for dashboard_uid in [d.uid for d in org.dashboards.values() if d.folder_uid == uid]:
            del org.dashboards[dashboard_uid]
        del org.folders[uid]
        return {"message": "Folder deleted", "id": folder.id, "title": folder.title}

    # --- Dashboards -----------------------------------------------------------------------------------------------

    def get_dashboard(self, org: Org, uid: str) -> Json:
        dashboard = org.dashboards.get(uid)
        if dashboard is None:
            raise ApiError(404, "Dashboard not found", status="not-found")
        folder = org.folders.get(dashboard.folder_uid)
        return {
            "dashboard": copy.deepcopy(dashboard.data),
            "meta": {
                "type": "db",
                "canSave": True,
                "canEdit": True,
                "canAdmin": True,
                "canStar": True,
                "canDelete": True,
                "slug": slugify(dashboard.title),
                "url": f"/d/{dashboard.uid}/{slugify(dashboard.title)}",
                "expires": "0001-01-01T00:00:00Z",
                "created": dashboard.created,
                "updated": dashboard.updated,
                "updatedBy": "admin",
                "createdBy": "admin",
                "version": dashboard.version,
                "hasAcl": False,
                "isFolder": False,
                "folderId": folder.id if folder else 0,
                "folderUid": dashboard.folder_uid,
                "folderTitle": folder.title if folder else "General",
                "folderUrl": f"/dashboards/f/{folder.uid}/{slugify(folder.title)}" if folder else "",
                "provisioned": dashboard.provisioned,
                "provisionedExternalId": f"{dashboard.uid}.json" if dashboard.provisioned else "",
            },
        }

    def save_dashboard(self, org: Org, body: Json) -> Json:
        """``POST /api/dashboards/db``, following Grafana's dashboard service and store rules in their order."""
        data = body.get("dashboard")
        if not isinstance(data, dict):
            raise ApiError(400, "bad request data")
        data = copy.deepcopy(data)
        if not str(data.get("title") or "").strip():
            raise ApiError(400, "Dashboard title cannot be empty", status="empty-name")
        if len(str(body.get("message") or "")) > MAX_MESSAGE_LENGTH:
            raise ApiError(400, "message too long, max 500 characters")
        uid = str(data.get("uid") or "")
        check_uid(uid)
        folder_uid = str(body.get("folderUid") or "")
        if folder_uid and folder_uid not in org.folders:
            raise ApiError(400, "folder not found")
        overwrite = bool(body.get("overwrite"))
        existing = self._existing_dashboard(org, data, uid)
        if existing is None and uid in org.folders:
            raise ApiError(400, "Dashboard cannot be changed to a folder")
        if existing is not None:
            self._check_update(existing, data, overwrite)
        existing = self._check_title_in_folder(org, data, uid, folder_uid, overwrite) or existing
        return self._store_dashboard(org, data, existing, uid, folder_uid)

    def _existing_dashboard(self, org: Org, data: Json, uid: str) -> Dashboard | None:
        by_id = None
        dashboard_id = _int(data.get("id"))
        if dashboard_id > 0:
            by_id = next((d for d in org.dashboards.values() if d.id == dashboard_id), None)
            if by_id is None:
                raise ApiError(404, "Dashboard not found", status="not-found")
        by_uid = org.dashboards.get(uid) if uid else None
        if by_id is not None and by_uid is not None and by_id.id != by_uid.id:
            raise ApiError(400, "A dashboard with the same uid already exists")
        return by_id or by_uid

    def _check_update(self, existing: Dashboard, data: Json, overwrite: bool) -> None:
        if _int(data.get("version")) != existing.version and not overwrite:
            raise ApiError(412, "The dashboard has been changed by someone else", status="version-mismatch")
        if existing.provisioned:
            raise ApiError(400, "Cannot save provisioned dashboard")

    def _check_title_in_folder(
        self, org: Org, data: Json, uid: str, folder_uid: str, overwrite: bool
    ) -> Dashboard | None:
        """Releases before Grafana 11: one dashboard per title in a folder (412 name-exists unless overwrite)."""
        if not self.unique_titles:
            return None
        title = str(data["title"]).strip().lower()
        same_name = next(
            (
                d
                for d in org.dashboards.values()
                if d.folder_uid == folder_uid and d.title.strip().lower() == title and d.uid != uid
            ),
            None,
        )
        if same_name is None:
            return None
        if not overwrite:
            raise ApiError(412, "A dashboard with the same name in the folder already exists", status="name-exists")
        return same_name

    def _store_dashboard(self, org: Org, data: Json, existing: Dashboard | None, uid: str, folder_uid: str) -> Json:
        stamp = now()
        if existing is None:
            dashboard = Dashboard(self.next_id(), uid or new_uid(), data, folder_uid, 1, stamp, stamp)
        else:
            org.dashboards.pop(existing.uid, None)
            dashboard = existing
            dashboard.version += 1
            dashboard.data = data
            dashboard.folder_uid = folder_uid
            dashboard.updated = stamp
        dashboard.data.update(id=dashboard.id, uid=dashboard.uid, version=dashboard.version)
        org.dashboards[dashboard.uid] = dashboard
        slug = slugify(dashboard.title)
        return {
            "id": dashboard.id,
            "uid": dashboard.uid,
            "url": f"/d/{dashboard.uid}/{slug}",
            "status": "success",
            "version": dashboard.version,
            "slug": slug,
            "folderUid": folder_uid,
        }

    def delete_dashboard(self, org: Org, uid: str) -> Json:
        dashboard = org.dashboards.get(uid)
        if dashboard is None:
            raise ApiError(404, "Dashboard not found", status="not-found")
        if dashboard.provisioned:
            raise ApiError(400, "provisioned dashboard cannot be deleted")
        del org.dashboards[uid]
        return {"title": dashboard.title, "message": f"Dashboard {dashboard.title} deleted", "id": dashboard.id}

    # --- Datasources ----------------------------------------------------------------------------------------------

    def datasource_dto(self, datasource: Datasource) -> Json:
        dto = copy.deepcopy(datasource.fields)
        dto["secureJsonFields"] = {key: True for key, value in datasource.secure.items() if value}
        return dto

    def list_datasources(self, org: Org) -> list[Json]:
        keys = ("id", "uid", "orgId", "name", "type", "access", "url", "user", "database", "basicAuth", "isDefault")
        items = []
        for datasource in sorted(org.datasources.values(), key=lambda d: d.fields["name"]):
            item = {key: datasource.fields[key] for key in keys}
            item.update(typeName=datasource.fields["type"], jsonData=copy.deepcopy(datasource.fields["jsonData"]))
            item["readOnly"] = datasource.fields["readOnly"]
            items.append(item)
        return items

    def find_datasource(self, org: Org, uid: str | None = None, name: str | None = None) -> Datasource:
        for datasource in org.datasources.values():
            if (uid is not None and datasource.fields["uid"] == uid) or (
                name is not None and datasource.fields["name"] == name
            ):
                return datasource
        raise ApiError(404, "Data source not found")

    def create_datasource(self, org: Org, body: Json, read_only: bool = False) -> Json:
        name = str(body.get("name") or "")
        if not name or not body.get("type"):
            raise ApiError(400, "bad request data")
        if any(d.fields["name"] == name for d in org.datasources.values()):
            raise ApiError(409, "data source with the same name already exists")
        uid = str(body.get("uid") or "") or new_uid()
        check_uid(uid)
        if uid in org.datasources:
            raise ApiError(409, "data source with the same uid already exists")
        fields = self._datasource_fields(body, self.next_id(), uid, org.id, version=1, read_only=read_only)
        datasource = Datasource(fields, _secure(body.get("secureJsonData")))
        org.datasources[uid] = datasource
        self._one_default(org, datasource)
        dto = self.datasource_dto(datasource)
        return {"datasource": dto, "id": fields["id"], "message": "Datasource added", "name": name}

    def update_datasource(self, org: Org, uid: str, body: Json) -> Json:
        """``PUT /api/datasources/uid/:uid``: a full replace; secrets not named in the body are kept."""
        datasource = self.find_datasource(org, uid=uid)
        if datasource.fields["readOnly"]:
            raise ApiError(403, "Cannot update read-only data source")
        name = str(body.get("name") or "")
        if name != datasource.fields["name"] and any(d.fields["name"] == name for d in org.datasources.values()):
            raise ApiError(409, "Failed to update datasource: data source with the same name already exists")
        sent_version = _int(body.get("version"))
        if sent_version and sent_version < datasource.fields["version"]:
            raise ApiError(409, "Datasource has already been updated by someone else. Please reload and try again")
        new_uid_value = str(body.get("uid") or "") or uid
        check_uid(new_uid_value)
        fields = self._datasource_fields(
            body, datasource.fields["id"], new_uid_value, org.id, version=sent_version + 1, read_only=False
        )
        secure = dict(datasource.secure) | _secure(body.get("secureJsonData"))
        del org.datasources[uid]
        updated = Datasource(fields, secure)
        org.datasources[new_uid_value] = updated
        self._one_default(org, updated)
        dto = self.datasource_dto(updated)
        return {"datasource": dto, "id": fields["id"], "message": "Datasource updated", "name": name}

    def delete_datasource(self, org: Org, uid: str | None = None, name: str | None = None) -> Json:
        datasource = self.find_datasource(org, uid=uid, name=name)
        if datasource.fields["readOnly"]:
            raise ApiError(403, "Cannot delete read-only data source")
        del org.datasources[datasource.fields["uid"]]
        return {"message": "Data source deleted", "id": datasource.fields["id"]}

    @staticmethod
    def _datasource_fields(body: Json, ds_id: int, uid: str, org_id: int, version: int, read_only: bool) -> Json:
        json_data = body.get("jsonData")
        return {
            "id": ds_id,
            "uid": uid,
            "orgId": org_id,
            "name": str(body.get("name") or ""),
            "type": str(body.get("type") or ""),
            "typeLogoUrl": f"public/app/plugins/datasource/{body.get('type')}/img/logo.svg",
            "access": str(body.get("access") or ""),
            "url": str(body.get("url") or ""),
            "user": str(body.get("user") or ""),
            "database": str(body.get("database") or ""),
            "basicAuth": bool(body.get("basicAuth")),
            "basicAuthUser": str(body.get("basicAuthUser") or ""),
            "withCredentials": bool(body.get("withCredentials")),
            "isDefault": bool(body.get("isDefault")),
            "jsonData": copy.deepcopy(json_data) if isinstance(json_data, dict) else {},
            "version": version,
            "readOnly": read_only,
            "apiVersion": "",
        }

    @staticmethod
    def _one_default(org: Org, datasource: Datasource) -> None:
        """Grafana keeps one default datasource per organization: a new default clears the old one."""
        if datasource.fields["isDefault"]:
            for other in org.datasources.values():
                if other is not datasource:
                    other.fields["isDefault"] = False


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _int_query(query: dict[str, list[str]], key: str, default: int) -> int:
    values = query.get(key)
    if not values:
        return default
    try:
        return int(values[0])
    except ValueError as error:
        raise ApiError(400, f"invalid {key}") from error


def _secure(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(key): str(item) for key, item in value.items()}


Route = tuple[str, re.Pattern[str], Callable[..., Any]]


class GrafanaDouble:
    """Serve a ``GrafanaState`` on ``http://127.0.0.1:<port>`` in a thread, recording every request.

    Use it as a context manager or call ``start()``/``stop()``. ``requests`` lists what it received; ``writes()``
    only the requests that change state.
    """

    def __init__(
        self,
        port: int = 0,
        user: str = "admin",
        password: str = "double-admin-password",
        token: str | None = "glsa_double_token",
        unique_titles: bool = True,
    ) -> None:
        self.state = GrafanaState(unique_titles=unique_titles)
        self.state.users[user] = User.with_password(ADMIN_USER_ID, user, password, orgs=[1])
        if token:
            self.state.tokens[token] = Identity("sa-sensorstack", 2, 1, is_service_account=True)
        self.user, self.password, self.token = user, password, token
        self.requests: list[RecordedRequest] = []
        self.lock = threading.RLock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self.routes: list[Route] = self._routes()
        # Called with the state, under the lock, after every request that changed it.
        self.on_write: Callable[[GrafanaState], None] | None = None
        # Called with the state, under the lock, before every request is answered.
        self.on_request: Callable[[GrafanaState], None] | None = None

    # --- Lifecycle ------------------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GrafanaDouble:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="grafana-double", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> GrafanaDouble:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- What tests use -------------------------------------------------------------------------------------------

    def writes(self) -> list[RecordedRequest]:
        with self.lock:
            return [request for request in self.requests if request.is_write]

    @contextmanager
    def recording(self) -> Iterator[list[RecordedRequest]]:
        """Collect the requests received inside the ``with`` block into the yielded list."""
        with self.lock:
            start = len(self.requests)
        received: list[RecordedRequest] = []
        try:
            yield received
        finally:
            with self.lock:
                received.extend(self.requests[start:])

    def add_org(self, org_id: int, name: str, members: tuple[str, ...] = ()) -> None:
        with self.lock:
            self.state.orgs[org_id] = Org(org_id, name)
            for login in members:
                self.state.users[login].orgs.append(org_id)

    def add_provisioned_datasource(self, body: Json, org_id: int = 1) -> Json:
        """A datasource as Grafana's provisioning creates it: read-only through the API."""
        with self.lock:
            return self.state.create_datasource(self.state.orgs[org_id], body, read_only=True)["datasource"]

    def add_provisioned_dashboard(self, dashboard: Json, folder_uid: str = "", org_id: int = 1) -> None:
        with self.lock:
            org = self.state.orgs[org_id]
            self.state.save_dashboard(org, {"dashboard": dashboard, "folderUid": folder_uid})
            org.dashboards[str(dashboard["uid"])].provisioned = True

    def secrets_of(self, datasource_uid: str, org_id: int = 1) -> dict[str, str]:
        """What Grafana would have encrypted for a datasource: lets tests prove a secret was (not) written."""
        with self.lock:
            return dict(self.state.find_datasource(self.state.orgs[org_id], uid=datasource_uid).secure)

    def set_database_ok(self, healthy: bool) -> None:
        with self.lock:
            self.state.database_ok = healthy

    # --- HTTP -----------------------------------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        s = self.state
        uid = r"(?P<uid>[^/]+)"
        table: list[tuple[str, str, Callable[..., Any]]] = [
            ("GET", r"/api/user", lambda org, who, q, b: s.current_user(who)),
            ("GET", r"/api/folders", lambda org, who, q, b: s.list_folders(org, q)),
            ("POST", r"/api/folders", lambda org, who, q, b: s.create_folder(org, b)),
            ("GET", rf"/api/folders/{uid}", lambda org, who, q, b, uid: s.folder_dto(s.get_folder(org, uid), org)),
            ("PUT", rf"/api/folders/{uid}", lambda org, who, q, b, uid: s.update_folder(org, uid, b)),
            ("DELETE", rf"/api/folders/{uid}", lambda org, who, q, b, uid: s.delete_folder(org, uid)),
            ("POST", r"/api/dashboards/db", lambda org, who, q, b: s.save_dashboard(org, b)),
            ("GET", rf"/api/dashboards/uid/{uid}", lambda org, who, q, b, uid: s.get_dashboard(org, uid)),
            ("DELETE", rf"/api/dashboards/uid/{uid}", lambda org, who, q, b, uid: s.delete_dashboard(org, uid)),
            ("GET", r"/api/datasources", lambda org, who, q, b: s.list_datasources(org)),
            ("POST", r"/api/datasources", lambda org, who, q, b: s.create_datasource(org, b)),
            (
                "GET",
                rf"/api/datasources/uid/{uid}",
                lambda org, who, q, b, uid: s.datasource_dto(s.find_datasource(org, uid=uid)),
            ),
            ("PUT", rf"/api/datasources/uid/{uid}", lambda org, who, q, b, uid: s.update_datasource(org, uid, b)),
            ("DELETE", rf"/api/datasources/uid/{uid}", lambda org, who, q, b, uid: s.delete_datasource(org, uid=uid)),
            (
                "GET",
                r"/api/datasources/name/(?P<name>[^/]+)",
                lambda org, who, q, b, name: s.datasource_dto(s.find_datasource(org, name=name)),
            ),
            (
                "DELETE",
                r"/api/datasources/name/(?P<name>[^/]+)",
                lambda org, who, q, b, name: s.delete_datasource(org, name=name),
            ),
        ]
        return [(method, re.compile(f"^{pattern}$"), handler) for method, pattern, handler in table]

    def handle(self, method: str, target: str, headers: dict[str, str], raw_body: bytes) -> tuple[int, Any]:
        """Answer one request: (status, JSON body or None). Also what the HTTP handler calls."""
        parts = urlsplit(target)
        path = parts.path.rstrip("/") or "/"
        query = parse_qs(parts.query)
        body, body_error = _parse_body(raw_body)
        with self.lock:
            self.requests.append(RecordedRequest(method, path, query, _recorded_headers(headers), body))
            try:
                if self.on_request is not None:
                    self.on_request(self.state)
                if path == "/api/health" and method in ("GET", "HEAD"):
                    return self._health()
                answer = self._dispatch(method, path, query, headers, body, body_error)
                if method in WRITE_METHODS and self.on_write is not None:
                    self.on_write(self.state)
                return answer
            except ApiError as error:
                return error.code, error.body
            except Exception as error:  # a bug in the double: answer like Grafana's recovery middleware
                return 500, {"message": f"Internal Server Error: {error!r}"}

    def _health(self) -> tuple[int, Json]:
        database = "ok" if self.state.database_ok else "failing"
        body = {"commit": "double", "database": database, "version": GRAFANA_VERSION}
        return (200 if self.state.database_ok else 503), body

    def _dispatch(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: Any, body_error: bool
    ) -> tuple[int, Any]:
        matches = [(m, pattern.match(path), handler) for m, pattern, handler in self.routes if pattern.match(path)]
        if not matches:
            raise ApiError(404, "Not found")
        identity = self.state.authenticate(headers.get("authorization"), headers.get("x-grafana-org-id"))
        for route_method, match, handler in matches:
            if route_method == method and match is not None:
                # Grafana's write endpoints bind a JSON body; the few actions that take none say so on their handler.
                takes_body = not getattr(handler, "takes_no_body", False)
                if body_error or (takes_body and method in ("POST", "PUT") and not isinstance(body, dict)):
                    raise ApiError(400, "bad request data")
                org = self.state.orgs[identity.org_id]
                captured = {key: unquote(value) for key, value in match.groupdict().items()}
                return 200, handler(org, identity, query, body or {}, **captured)
        raise ApiError(405, "Method Not Allowed")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "GrafanaDouble/" + GRAFANA_VERSION

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                headers = {key.lower(): value for key, value in self.headers.items()}
                status, body = double.handle(self.command, self.path, headers, raw)
                payload = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _serve

            def log_message(self, format: str, *args: Any) -> None:
                """Stay quiet: the request record is the log."""

        return Handler


def _parse_body(raw: bytes) -> tuple[Any, bool]:
    if not raw:
        return None, False
    try:
        return json.loads(raw), False
    except (json.JSONDecodeError, UnicodeDecodeError):
        return raw.decode(errors="replace"), True


def _recorded_headers(headers: dict[str, str]) -> dict[str, str]:
    recorded = dict(headers)
    if "authorization" in recorded:
        recorded["authorization"] = recorded["authorization"].partition(" ")[0]
    return recorded
