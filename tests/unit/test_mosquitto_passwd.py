"""Mosquitto password files: hashing, verification, parsing and converging, without a broker.

The fixed entries below were written by Debian's mosquitto_passwd 2.0.11 (``-U`` on a plain-text file, and
``-H sha512 -U`` for the older form), so the hashing here is checked against the real tool, not against itself.
"""

from __future__ import annotations

import string
from itertools import count

import pytest
from ansible_collections.sensorstack.iot.plugins.module_utils.mosquitto_passwd import (
    DEFAULT_ITERATIONS,
    Entry,
    PasswdFileError,
    PasswordHash,
    WantedUser,
    converge,
    hash_password,
    name_problem,
    names_view,
    parse_hash,
    parse_passwd,
    wanted_problems,
)
from hypothesis import given, settings
from hypothesis import strategies as st

# alice / "secret", PBKDF2-SHA512, 101 iterations, from `mosquitto_passwd -U`.
ALICE_PBKDF2 = (
    "alice:$7$101$8N1dOXzzSSJA5MUK$wgmQlM5YQn8tbsPsLPy8/haxMtAZQbNwC57z3Alpo5+uxitqh1XuBzuXAbMS4Sinh4XE/IXeB0YfIrBnb1"
    "g9lw=="
)
# x / "p1", salted SHA512, from `mosquitto_passwd -H sha512 -U`.
X_SHA512 = (
    "x:$6$c4JEPvggFxPbprft$XaCDhsEY79k2rgPprzwmEerwCFv+CgvJkjS37WG5chBaSSzg9HiBPFmHV5J2+3cX84Hbpg0JP/kJEkLc87vvgg=="
)


def fixed_salts():
    """A salt source that gives distinct, predictable salts, so tests can tell which entries were rewritten."""
    counter = count(1)
    return lambda size: next(counter).to_bytes(size, "big")


def file_of(*lines: str) -> list[Entry]:
    return parse_passwd("".join(f"{line}\n" for line in lines))


# --- Hashing and verification ---------------------------------------------------------------------------------


def test_an_entry_written_by_mosquitto_passwd_verifies_its_password() -> None:
    entry = parse_hash(ALICE_PBKDF2.split(":", 1)[1])
    assert entry.scheme == "7"
    assert entry.iterations == 101
    assert entry.verify("secret")
    assert not entry.verify("Secret")
    assert not entry.verify("")


def test_an_older_sha512_entry_verifies_its_password() -> None:
    entry = parse_hash(X_SHA512.split(":", 1)[1])
    assert entry.scheme == "6"
    assert entry.verify("p1")
    assert not entry.verify("p2")


def test_a_hash_reproduces_mosquitto_passwd_given_the_same_salt() -> None:
    reference = parse_hash(ALICE_PBKDF2.split(":", 1)[1])
    ours = hash_password("secret", 101, salt_source=lambda size: reference.salt)
    assert ours.encode() == ALICE_PBKDF2.split(":", 1)[1]


def test_hashes_use_the_broker_defaults_and_a_fresh_salt_each_time() -> None:
    first, second = hash_password("pw"), hash_password("pw")
    assert first.encode().startswith(f"$7${DEFAULT_ITERATIONS}$")
    assert len(first.salt) == 12
    assert len(first.digest) == 64
    assert first.salt != second.salt


def test_iterations_are_part_of_the_hash() -> None:
    entry = hash_password("pw", iterations=1000)
    assert entry.encode().startswith("$7$1000$")
    assert entry.verify("pw")
    assert entry.hashed_as(1000)
    assert not entry.hashed_as(101)
    with pytest.raises(ValueError, match="at least 1"):
        hash_password("pw", iterations=0)


@settings(max_examples=50, deadline=None)
@given(password=st.text(min_size=1).filter(lambda text: "\0" not in text), other=st.text(min_size=1))
def test_a_hash_verifies_its_password_and_no_other(password: str, other: str) -> None:
    entry = parse_hash(hash_password(password).encode())
    assert entry.verify(password)
    assert entry.verify(other) == (other == password)


# --- Parsing --------------------------------------------------------------------------------------------------


def test_comments_blank_lines_and_both_hash_forms_are_read() -> None:
    entries = file_of("# devices", ALICE_PBKDF2, "", X_SHA512)
    assert [entry.name for entry in entries] == [None, "alice", None, "x"]
    assert [entry.text for entry in entries] == ["# devices", ALICE_PBKDF2, "", X_SHA512]


def test_windows_line_endings_are_tolerated() -> None:
    entries = parse_passwd(f"{ALICE_PBKDF2}\r\n")
    assert entries[0].hash is not None
    assert entries[0].hash.verify("secret")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("mallory:hunter2", "not a $6$ or $7$ hash"),
        ("mallory", "neither a comment nor a 'user:hash' entry"),
        (" mallory:" + ALICE_PBKDF2.split(":", 1)[1], "neither a comment nor a 'user:hash' entry"),
        ("mallory:$7$101$" + "A" * 16, "form $7$<iterations>$<salt>$<hash>"),
        ("mallory:$7$many$" + ALICE_PBKDF2.split("$", 3)[3], "iteration count is not a positive integer"),
        ("mallory:$7$0$" + ALICE_PBKDF2.split("$", 3)[3], "iteration count is not a positive integer"),
        ("mallory:$7$101$!!!!$" + ALICE_PBKDF2.split("$")[-1], "salt is not base64"),
        ("mallory:$7$101$AAAA$" + ALICE_PBKDF2.split("$")[-1], "salt is 3 bytes instead of 12"),
        ("mallory:$7$101$8N1dOXzzSSJA5MUK$AAAA", "hash is 3 bytes instead of 64"),
        ("mallory:$6$c4JEPvggFxPbprft", "form $6$<salt>$<hash>"),
        ("mallory:$5$abc$def", "not a $6$ or $7$ hash"),
    ],
)
def test_a_malformed_line_is_reported_by_number_without_its_content(line: str, reason: str) -> None:
    with pytest.raises(PasswdFileError) as raised:
        file_of(ALICE_PBKDF2, line)
    message = str(raised.value)
    assert "line 2" in message
    assert reason in message
    assert "hunter2" not in message


def test_a_user_listed_twice_is_reported_with_both_lines() -> None:
    with pytest.raises(PasswdFileError, match=r"user 'alice' appears on lines 1 and 3"):
        file_of(ALICE_PBKDF2, X_SHA512, ALICE_PBKDF2)


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    with pytest.raises(PasswdFileError) as raised:
        file_of("a:plain", ALICE_PBKDF2, "b:plain")
    assert len(raised.value.problems) == 2


# --- Declarations ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "a:b", "a\nb", " alice", "alice ", "#alice", "a\0b"])
def test_names_the_password_file_cannot_hold_are_refused(name: str) -> None:
    assert name_problem(name) is not None


@pytest.mark.parametrize("name", ["alice", "sensor-001", "gerät/7", "a#b", "user.name@site"])
def test_ordinary_names_are_accepted(name: str) -> None:
    assert name_problem(name) is None


def test_a_declaration_is_checked_before_any_file_is_touched() -> None:
    problems = wanted_problems(
        [
            WantedUser("alice", "pw"),
            WantedUser("alice", "pw2"),
            WantedUser("bob", None),
            WantedUser("carol", ""),
            WantedUser("dave", None, "absent"),
            WantedUser("a:b", "pw"),
        ]
    )
    assert problems == [
        "user 'alice' is declared more than once",
        "user 'bob': a password is required with state=present and cannot be empty",
        "user 'carol': a password is required with state=present and cannot be empty",
        "user name 'a:b' contains ':', a line break or NUL, which the password file cannot hold",
    ]


# --- Converging -----------------------------------------------------------------------------------------------


def test_a_matching_entry_is_kept_byte_for_byte() -> None:
    entries = file_of("# header", ALICE_PBKDF2, X_SHA512)
    plan = converge(entries, [WantedUser("alice", "secret"), WantedUser("x", "p1")])
    assert not plan.changed
    assert plan.content == f"# header\n{ALICE_PBKDF2}\n{X_SHA512}\n"


def test_a_new_password_rewrites_only_that_entry_in_place() -> None:
    entries = file_of(ALICE_PBKDF2, X_SHA512)
    plan = converge(entries, [WantedUser("alice", "changed"), WantedUser("x", "p1")], salt_source=fixed_salts())
    assert plan.updated == ["alice"]
    assert plan.added == plan.removed == []
    alice, x = plan.entries
    assert alice.name == "alice"
    assert alice.hash is not None
    assert alice.hash.verify("changed")
    assert alice.text != ALICE_PBKDF2
    assert x.text == X_SHA512


def test_new_users_are_appended_in_declaration_order() -> None:
    plan = converge(file_of(ALICE_PBKDF2), [WantedUser("zed", "1"), WantedUser("bob", "2")])
    assert plan.added == ["zed", "bob"]
    assert [entry.name for entry in plan.entries] == ["alice", "zed", "bob"]


def test_absent_users_are_removed_and_unknown_ones_kept() -> None:
    plan = converge(file_of(ALICE_PBKDF2, X_SHA512), [WantedUser("x", state="absent"), WantedUser("y", None, "absent")])
    assert plan.removed == ["x"]
    assert plan.content == f"{ALICE_PBKDF2}\n"


def test_exclusive_removes_every_undeclared_user_but_keeps_comments() -> None:
    entries = file_of("# managed by Ansible", ALICE_PBKDF2, X_SHA512)
    plan = converge(entries, [WantedUser("bob", "pw")], exclusive=True)
    assert plan.removed == ["alice", "x"]
    assert plan.added == ["bob"]
    assert [entry.name for entry in plan.entries] == [None, "bob"]


def test_exclusive_with_nothing_declared_empties_the_file() -> None:
    plan = converge(file_of(ALICE_PBKDF2), [], exclusive=True)
    assert plan.changed
    assert plan.content == ""


def test_rehash_upgrades_matching_entries_hashed_otherwise() -> None:
    entries = file_of(ALICE_PBKDF2, X_SHA512)
    users = [WantedUser("alice", "secret"), WantedUser("x", "p1")]
    assert not converge(entries, users, iterations=500).changed
    plan = converge(entries, users, iterations=500, rehash=True)
    assert plan.updated == ["alice", "x"]
    assert all(entry.hash is not None and entry.hash.hashed_as(500) for entry in plan.entries)
    assert not converge(file_of(ALICE_PBKDF2), [WantedUser("alice", "secret")], rehash=True).changed


def test_the_diff_view_lists_names_only() -> None:
    entries = file_of("# header", ALICE_PBKDF2, X_SHA512)
    plan = converge(entries, [WantedUser("alice", "new"), WantedUser("x", state="absent")], salt_source=fixed_salts())
    assert names_view(entries) == "alice\nx\n"
    after = names_view(plan.entries, plan.updated)
    assert after == "alice (password changes)\n"
    assert "$" not in after


NAMES = st.text(alphabet=string.ascii_letters + string.digits + "-_./", min_size=1, max_size=12)
USERS = st.dictionaries(NAMES, st.text(alphabet=string.printable, min_size=1, max_size=12), max_size=8)


@settings(max_examples=60, deadline=None)
@given(before=USERS, after=USERS, exclusive=st.booleans())
def test_converging_reaches_the_declaration_and_then_stays_put(
    before: dict[str, str], after: dict[str, str], exclusive: bool
) -> None:
    start = converge([], [WantedUser(name, password) for name, password in before.items()]).entries
    reread = parse_passwd(converge(start, []).content)
    declared = [WantedUser(name, password) for name, password in after.items()]
    plan = converge(reread, declared, exclusive=exclusive)
    result = {entry.name: entry for entry in parse_passwd(plan.content) if entry.name is not None}

    for name, password in after.items():
        entry = result[name].hash
        assert isinstance(entry, PasswordHash)
        assert entry.verify(password)
    expected_names = set(after) if exclusive else set(before) | set(after)
    assert set(result) == expected_names
    # Users whose password did not change keep their exact line (and salt).
    unchanged = {name for name in before if after.get(name) == before[name]}
    original = {entry.name: entry.text for entry in reread}
    assert all(result[name].text == original[name] for name in unchanged)
    assert set(plan.updated) == {name for name in after if name in before and before[name] != after[name]}
    # A second run with the same declaration changes nothing.
    assert not converge(parse_passwd(plan.content), declared, exclusive=exclusive).changed
