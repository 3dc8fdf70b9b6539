"""Mosquitto 2.x password files: hash, verify, parse and converge them without a broker or ``mosquitto_passwd``.

Pure functions on text (standard library only), shared by the ``sensorstack.iot.mosquitto_user`` module and its
unit tests. The formats are the broker's own:

* ``name:$7$<iterations>$<base64 salt>$<base64 hash>``: PBKDF2-HMAC-SHA512 over the UTF-8 password, a 12-byte salt,
  a 64-byte hash; what ``mosquitto_passwd`` writes since Mosquitto 2.0 (101 iterations).
* ``name:$6$<base64 salt>$<base64 hash>``: SHA512(password + salt); what Mosquitto 1.x wrote, and
  ``mosquitto_passwd -H sha512`` still writes. The broker accepts both.

Lines starting with ``#`` and blank lines are kept where they are. Error messages name lines by number and users by
name, never by content: a malformed line may hold a plain-text password.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

PBKDF2_SHA512 = "7"
SHA512 = "6"
SALT_BYTES = 12
HASH_BYTES = 64
DEFAULT_ITERATIONS = 101
# The broker reads user names into a 16-bit length field (MQTT strings are at most 65535 bytes).
MAX_NAME_BYTES = 65535


class PasswdFileError(ValueError):
    """The file is not a Mosquitto password file this code can safely rewrite."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class PasswordHash:
    """One decoded hash: ``scheme`` is ``"7"`` (PBKDF2-SHA512, with ``iterations``) or ``"6"`` (salted SHA512)."""

    scheme: str
    salt: bytes
    digest: bytes
    iterations: int = 0

    def encode(self) -> str:
        salt = base64.b64encode(self.salt).decode("ascii")
        digest = base64.b64encode(self.digest).decode("ascii")
        if self.scheme == PBKDF2_SHA512:
            return f"${PBKDF2_SHA512}${self.iterations}${salt}${digest}"
        return f"${SHA512}${salt}${digest}"

    def verify(self, password: str) -> bool:
        """Whether ``password`` hashes to this entry (constant-time comparison)."""
        candidate = _digest(self.scheme, password, self.salt, self.iterations)
        return hmac.compare_digest(candidate, self.digest)

    def hashed_as(self, iterations: int) -> bool:
        """Whether this entry is what hashing with ``iterations`` today would produce (bar the salt)."""
        return self.scheme == PBKDF2_SHA512 and self.iterations == iterations


def _digest(scheme: str, password: str, salt: bytes, iterations: int) -> bytes:
    secret = password.encode("utf-8")
    if scheme == PBKDF2_SHA512:
        return hashlib.pbkdf2_hmac("sha512", secret, salt, iterations, HASH_BYTES)
    return hashlib.sha512(secret + salt).digest()


def hash_password(
    password: str, iterations: int = DEFAULT_ITERATIONS, salt_source: Callable[[int], bytes] = os.urandom
) -> PasswordHash:
    """Hash ``password`` the way ``mosquitto_passwd`` does by default, with a fresh random salt."""
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, not {iterations}")
    salt = salt_source(SALT_BYTES)
    return PasswordHash(PBKDF2_SHA512, salt, _digest(PBKDF2_SHA512, password, salt, iterations), iterations)


def _b64(text: str, expected_bytes: int, what: str) -> bytes:
    try:
        value = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as error:
        raise ValueError(f"its {what} is not base64") from error
    if len(value) != expected_bytes:
        raise ValueError(f"its {what} is {len(value)} bytes instead of {expected_bytes}")
    return value


def parse_hash(text: str) -> PasswordHash:
    """Decode the part after ``name:``; raises ValueError saying what is wrong, without quoting the text."""
    fields = text.split("$")
    if len(fields) < 2 or fields[0] != "" or fields[1] not in (PBKDF2_SHA512, SHA512):
        raise ValueError("it is not a $6$ or $7$ hash (a plain-text password? `mosquitto_passwd -U` hashes those)")
    if fields[1] == PBKDF2_SHA512:
        if len(fields) != 5:
            raise ValueError("a $7$ hash has the form $7$<iterations>$<salt>$<hash>")
        if not fields[2].isdigit() or int(fields[2]) < 1:
            raise ValueError("its iteration count is not a positive integer")
        salt = _b64(fields[3], SALT_BYTES, "salt")
        return PasswordHash(PBKDF2_SHA512, salt, _b64(fields[4], HASH_BYTES, "hash"), int(fields[2]))
    if len(fields) != 4:
        raise ValueError("a $6$ hash has the form $6$<salt>$<hash>")
    return PasswordHash(SHA512, _b64(fields[2], SALT_BYTES, "salt"), _b64(fields[3], HASH_BYTES, "hash"))


def name_problem(name: str) -> str | None:
    """Why the broker could not read ``name`` back from a password file, or None when it can."""
    if not name:
        return "a user name cannot be empty"
    if any(char in name for char in ":\n\r\0"):
        return f"user name {name!r} contains ':', a line break or NUL, which the password file cannot hold"
    if name != name.strip():
        return f"user name {name!r} starts or ends with white space, which the broker strips"
    if name.startswith("#"):
        return f"user name {name!r} starts with '#', which makes the line a comment"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return f"user name {name[:20]!r}... is longer than {MAX_NAME_BYTES} bytes"
    return None


def password_problem(name: str, password: str | None) -> str | None:
    """Why ``password`` cannot be used for ``name`` (never quoting it), or None."""
    if not password:
        return f"user {name!r}: a password is required with state=present and cannot be empty"
    if "\0" in password:
        return f"user {name!r}: the password contains NUL, where the broker would cut it short"
    return None


@dataclass(frozen=True)
class Entry:
    """One line of a password file: ``name`` and ``hash`` are None for comments and blank lines."""

    text: str
    name: str | None = None
    hash: PasswordHash | None = None


def parse_passwd(content: str) -> list[Entry]:
    """Parse a password file; raises PasswdFileError listing every bad line (by number) and duplicate user."""
    entries: list[Entry] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for number, text in enumerate(content.splitlines(), start=1):
        stripped = text.strip()
        if not stripped or text.startswith("#"):
            entries.append(Entry(text))
            continue
        name, colon, rest = text.partition(":")
        if not colon or name_problem(name):
            problems.append(f"line {number} is neither a comment nor a 'user:hash' entry")
            continue
        try:
            password_hash = parse_hash(rest.rstrip())
        except ValueError as error:
            problems.append(f"line {number} (user {name!r}): {error}")
            continue
        if name in seen:
            problems.append(f"user {name!r} appears on lines {seen[name]} and {number}")
            continue
        seen[name] = number
        entries.append(Entry(text, name, password_hash))
    if problems:
        raise PasswdFileError(problems)
    return entries


def render_passwd(entries: Iterable[Entry]) -> str:
    lines = [entry.text for entry in entries]
    return "".join(f"{line}\n" for line in lines)


@dataclass(frozen=True)
class WantedUser:
    name: str
    password: str | None = None
    state: str = "present"


def wanted_problems(users: Sequence[WantedUser]) -> list[str]:
    """Everything wrong with a declaration, before the file is read: bad names, missing passwords, duplicates."""
    problems: list[str] = []
    seen: set[str] = set()
    for user in users:
        problem = name_problem(user.name)
        if problem:
            problems.append(problem)
            continue
        if user.name in seen:
            problems.append(f"user {user.name!r} is declared more than once")
        seen.add(user.name)
        if user.state == "present":
            problem = password_problem(user.name, user.password)
            if problem:
                problems.append(problem)
    return problems


@dataclass
class Plan:
    """The converged file and what changed, by user name."""

    entries: list[Entry]
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    @property
    def content(self) -> str:
        return render_passwd(self.entries)


def _entry_for(user: WantedUser, iterations: int, salt_source: Callable[[int], bytes]) -> Entry:
    password_hash = hash_password(user.password or "", iterations, salt_source)
    return Entry(f"{user.name}:{password_hash.encode()}", user.name, password_hash)


def _keeps(entry: Entry, user: WantedUser, iterations: int, rehash: bool) -> bool:
    if entry.hash is None or not entry.hash.verify(user.password or ""):
        return False
    return not rehash or entry.hash.hashed_as(iterations)


def converge(
    entries: Sequence[Entry],
    users: Sequence[WantedUser],
    *,
    exclusive: bool = False,
    iterations: int = DEFAULT_ITERATIONS,
    rehash: bool = False,
    salt_source: Callable[[int], bytes] = os.urandom,
) -> Plan:
    """Apply ``users`` to parsed ``entries``.

    An entry whose hash already verifies against the wanted password is kept byte for byte (salt included), unless
    ``rehash`` asks for every entry to be hashed as ``iterations`` says. Changed users stay on their line, new ones
    are appended in declaration order, comments stay. ``exclusive`` also removes users that are not declared
    present. Call ``wanted_problems`` first: this function trusts its input.
    """
    wanted = {user.name: user for user in users}
    plan = Plan(entries=[])
    for entry in entries:
        if entry.name is None:
            plan.entries.append(entry)
            continue
        user = wanted.get(entry.name)
        if user is None:
            if exclusive:
                plan.removed.append(entry.name)
            else:
                plan.entries.append(entry)
        elif user.state == "absent":
            plan.removed.append(entry.name)
        elif _keeps(entry, user, iterations, rehash):
            plan.entries.append(entry)
        else:
            plan.entries.append(_entry_for(user, iterations, salt_source))
            plan.updated.append(entry.name)
    existing = {entry.name for entry in entries if entry.name is not None}
    for user in users:
        if user.state == "present" and user.name not in existing:
            plan.entries.append(_entry_for(user, iterations, salt_source))
            plan.added.append(user.name)
    return plan


def names_view(entries: Iterable[Entry], updated: Iterable[str] = ()) -> str:
    """A diff-friendly listing of a file's users, one per line, hashes left out; ``updated`` users are marked."""
    marked = set(updated)
    lines = []
    for entry in entries:
        if entry.name is not None:
            lines.append(f"{entry.name} (password changes)" if entry.name in marked else entry.name)
    return "".join(f"{line}\n" for line in lines)
