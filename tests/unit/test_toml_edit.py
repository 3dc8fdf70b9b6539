"""The TOML editor on its own (``module_utils/toml_edit.py``): in-place edits, refusals and property tests.

Every edited text is read back with ``tomllib`` and compared with what the original means plus the intended change.
The containerd settings built on it are tested in ``test_containerd_config.py``.
"""

from __future__ import annotations

import json
import tomllib
from typing import Any

import pytest
import tomli_w
from ansible_collections.sensorstack.iot.plugins.module_utils.toml_edit import EditError, format_key, parse, set_value
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.toml_data import with_values

# --- The editor on its own ----------------------------------------------------------------------------------------


def test_a_value_is_replaced_in_place_with_its_comment_kept() -> None:
    text = "# top\n[a]\n  x = 'old'   # why\n  y = 2\n"
    result, changed = set_value(text, ("a", "x"), "new")
    assert changed
    assert result == "# top\n[a]\n  x = 'new'   # why\n  y = 2\n"


def test_an_equal_value_is_no_change_and_true_is_not_one() -> None:
    assert set_value("a = true\n", ("a",), True) == ("a = true\n", False)
    assert set_value("a = 1\n", ("a",), True) == ("a = true\n", True)


def test_a_missing_key_joins_its_table_after_the_last_key() -> None:
    text = "[a]\n  x = 1\n\n[b]\n  y = 2\n"
    result, _ = set_value(text, ("a", "z"), "v")
    assert result == '[a]\n  x = 1\n  z = "v"\n\n[b]\n  y = 2\n'


def test_a_key_in_an_empty_table_is_indented_as_the_file_indents_keys() -> None:
    text = "[a]\n    x = 1\n[b]\n"
    result, _ = set_value(text, ("b", "y"), 2)
    assert result == "[a]\n    x = 1\n[b]\n    y = 2\n"


def test_a_root_key_goes_before_the_first_table() -> None:
    result, _ = set_value("version = 2\n\n[a]\nx = 1\n", ("root",), "/var/lib/containerd")
    assert tomllib.loads(result) == {"version": 2, "root": "/var/lib/containerd", "a": {"x": 1}}
    assert result.startswith('version = 2\nroot = "/var/lib/containerd"\n')


def test_a_table_defined_by_dotted_keys_gets_another_dotted_key() -> None:
    text = "[runtimes.runc]\n  runtime_type = 'io.containerd.runc.v2'\n  options.BinaryName = ''\n[other]\n"
    result, _ = set_value(text, ("runtimes", "runc", "options", "SystemdCgroup"), True)
    assert "  options.SystemdCgroup = true\n" in result
    assert tomllib.loads(result)["runtimes"]["runc"]["options"] == {"BinaryName": "", "SystemdCgroup": True}


def test_a_missing_table_is_created_before_its_first_sub_table() -> None:
    text = "[a]\nx = 1\n[a.b.c]\ny = 2\n"
    result, _ = set_value(text, ("a", "b", "z"), 3)
    assert tomllib.loads(result) == {"a": {"x": 1, "b": {"z": 3, "c": {"y": 2}}}}
    assert result.index("[a.b]") < result.index("[a.b.c]")


def test_a_table_with_no_relative_is_appended() -> None:
    result, _ = set_value("[a]\nx = 1", ("b", "c", "d"), "e")
    assert tomllib.loads(result) == {"a": {"x": 1}, "b": {"c": {"d": "e"}}}
    assert set_value("", ("b", "d"), 1)[0] == "[b]\nd = 1\n"


def test_windows_line_endings_are_kept() -> None:
    text = "[a]\r\n  x = 1\r\n"
    result, _ = set_value(text, ("a", "b", "c"), True)
    result, _ = set_value(result, ("a", "y"), 2)
    assert "\n" not in result.replace("\r\n", "")
    assert tomllib.loads(result) == {"a": {"x": 1, "y": 2, "b": {"c": True}}}


def test_text_that_only_looks_like_toml_inside_strings_and_arrays_is_not_read_as_statements() -> None:
    text = (
        'a = """\n[plugins.fake]\nSystemdCgroup = false\n"""\n'
        "b = '''it's [x] = 1'''\n"
        'c = [\n  "]", # ] comment\n  "[not.a.table]",\n]\n'
        'd = "quote \\" # not a comment"\n'
        "[\"quoted.key\" . 'x y']\n"
        "e = { f = 1, g = [1, 2] }\n"
    )
    document = parse(text)
    assert [header.path for header in document.headers] == [("quoted.key", "x y")]
    assert [entry.path for entry in document.entries] == [
        ("a",),
        ("b",),
        ("c",),
        ("d",),
        ("quoted.key", "x y", "e"),
    ]
    assert document.value(("a",)) == "[plugins.fake]\nSystemdCgroup = false\n"
    assert document.value(("d",)) == 'quote " # not a comment'
    result, _ = set_value(text, ("plugins", "fake", "SystemdCgroup"), True)
    assert tomllib.loads(result)["plugins"] == {"fake": {"SystemdCgroup": True}}
    assert tomllib.loads(result)["a"] == "[plugins.fake]\nSystemdCgroup = false\n"


def test_strings_that_need_escapes_are_written_so_toml_reads_them_back() -> None:
    value = 'a "quoted" \\ back\tslash\nnew line, \x01 and ünïcode'
    for text in ("x = 'old'\n", 'x = "old"\n', "[t]\n"):
        path = ("x",) if text.startswith("x") else ("t", "x")
        result, _ = set_value(text, path, value)
        data = tomllib.loads(result)
        assert (data["x"] if path == ("x",) else data["t"]["x"]) == value


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ("[runc]\noptions = { SystemdCgroup = false }\n", ("runc", "options", "SystemdCgroup"), "inline table"),
        ("[[runtimes]]\nname = 'runc'\n", ("runtimes", "options"), "array of tables"),
        ("[a]\nb = 1\n", ("a", "b", "c"), "a value, not a table"),
        ("[a.b]\nc = 1\n", ("a", "b"), "is a table"),
        ("[a]\nb.c = 1\n", ("a", "b"), "is a table"),
        ("[a]\nx = 1\nx = 2\n", ("a", "x"), "set twice"),
    ],
)
def test_changes_that_cannot_be_made_safely_are_refused(text: str, path: tuple[str, ...], message: str) -> None:
    with pytest.raises(EditError, match=message):
        set_value(text, path, True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('a = "open\n', "line 1: unterminated string"),
        ("\n\nkey value\n", "line 3: expected '=' after the key key"),
        ("[a\n", "line 1: expected ']' to close"),
        ("a = [1 2]\n", "line 1: expected ',' or ']'"),
        ("a = 1 b = 2\n", "line 1: unexpected 'b'"),
        ('a = """never closed\n', "line 1: unterminated multi-line string"),
        ('a = "\\q"\n', "invalid escape sequence"),
        ("a = @\n", "invalid value '@'"),
    ],
)
def test_a_file_that_is_not_toml_is_refused_with_its_line(text: str, message: str) -> None:
    with pytest.raises(EditError, match=message):
        parse(text)


def test_values_are_decoded_as_toml_decodes_them() -> None:
    text = (
        "i = -1_000\nh = 0xff\nb = false\nf = 3.5\nd = 1979-05-27 07:32:00Z\n"
        'm = \'\'\'\nline\'\'\'\ns = """a \\\n    b"""\nq = """x"""""\n'
    )
    document = parse(text)
    expected = tomllib.loads(text)
    for key in ("i", "h", "b", "m", "s", "q"):
        assert document.value((key,)) == expected[key], key
    assert document.value(("f",)).raw == "3.5"
    assert document.value(("d",)).raw == "1979-05-27 07:32:00Z"


def test_keys_are_quoted_only_when_they_must_be() -> None:
    assert format_key(("plugins", "io.containerd.grpc.v1.cri", "cni")) == 'plugins."io.containerd.grpc.v1.cri".cni'
    assert format_key(("a", "b c"), "'") == "a.'b c'"


# --- Any document: property tests ---------------------------------------------------------------------------------

_names = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=8)
_scalars = st.one_of(st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=12))
_tables = st.recursive(
    st.dictionaries(_names, _scalars | st.lists(st.integers(), max_size=3), max_size=4),
    lambda children: st.dictionaries(_names, children, min_size=1, max_size=3),
    max_leaves=12,
)


@st.composite
def documents_and_paths(draw: st.DrawFn) -> tuple[dict[str, Any], tuple[str, ...]]:
    """A document, and a path that follows its existing keys for a while and may then go on into new ones."""
    document = draw(_tables)
    path: list[str] = []
    node: Any = document
    while isinstance(node, dict) and node and draw(st.booleans()):
        path.append(draw(st.sampled_from(sorted(node))))
        node = node[path[-1]]
    path += draw(st.lists(_names, min_size=0 if path else 1, max_size=2))
    return document, tuple(path)


@settings(max_examples=300, deadline=None)
@given(case=documents_and_paths(), value=_scalars)
def test_setting_any_value_in_any_document_means_what_it_says(
    case: tuple[dict[str, Any], tuple[str, ...]], value: Any
) -> None:
    document, path = case
    text = tomli_w.dumps(document)
    if _crosses_a_table(document, path):
        with pytest.raises(EditError):
            set_value(text, path, value)
        return
    expected = with_values(document, (path, value))
    result, changed = set_value(text, path, value)
    assert tomllib.loads(result) == expected
    # TOML tells false from 0 and 1.0 from 1, Python's == does not: compare as JSON, which keeps the types.
    assert changed == (json.dumps(expected, sort_keys=True) != json.dumps(document, sort_keys=True))
    assert set_value(result, path, value) == (result, False)


def _crosses_a_table(document: dict[str, Any], path: tuple[str, ...]) -> bool:
    """Whether ``path`` names a table, or runs through a value or an array of tables."""
    node: Any = document
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return not isinstance(node, dict)
        node = node[part]
    return isinstance(node, dict)
