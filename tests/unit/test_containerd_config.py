"""The containerd config editor, on real containerd files (tests/unit/data/containerd-samples.md) and on edge cases.

Every edited file is read back with ``tomllib`` and compared with what the original means plus the intended
change, so an edit that breaks the syntax, lands in the wrong table or touches anything else fails here.
"""

from __future__ import annotations

import copy
import difflib
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from ansible_collections.sensorstack.iot.plugins.module_utils.containerd_config import (
    CRI_V2,
    CRI_V3_IMAGES,
    CRI_V3_RUNTIME,
    ConfigError,
    Settings,
    edit_config,
    format_key,
    parse,
    set_value,
)
from hypothesis import given, settings
from hypothesis import strategies as st

DATA = Path(__file__).parent / "data"
SAMPLES = {
    "1.6": DATA / "containerd-1.6-default.toml",
    "1.7": DATA / "containerd-1.7-default.toml",
    "2.1": DATA / "containerd-2.1-default.toml",
}
VERSION_OF = {"1.6": 2, "1.7": 2, "2.1": 3}
V2_RUNC = ("plugins", CRI_V2, "containerd", "runtimes", "runc", "options")
V3_RUNC = ("plugins", CRI_V3_RUNTIME, "containerd", "runtimes", "runc", "options")
KUBERNETES = Settings(
    sandbox_image="registry.lab.example/pause:3.10",
    registry_config_path="/etc/containerd/certs.d",
    cni_bin_dir="/opt/cni/bin",
)


def sample(name: str) -> str:
    return SAMPLES[name].read_text() if name in SAMPLES else (DATA / name).read_text()


def with_values(data: dict[str, Any], *changes: tuple[tuple[str, ...], Any]) -> dict[str, Any]:
    """``data`` with each (path, value) set, creating tables on the way, as the edit should."""
    result = copy.deepcopy(data)
    for path, value in changes:
        table = result
        for part in path[:-1]:
            table = table.setdefault(part, {})
        table[path[-1]] = value
    return result


def changed_lines(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


# --- containerd's own files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["1.6", "1.7"])
def test_a_version_2_default_gets_exactly_the_kubernetes_settings(name: str) -> None:
    original = sample(name)
    edit = edit_config(original, KUBERNETES)
    assert edit.version == 2
    assert tomllib.loads(edit.text) == with_values(
        tomllib.loads(original),
        ((*V2_RUNC, "SystemdCgroup"), True),
        (("plugins", CRI_V2, "sandbox_image"), "registry.lab.example/pause:3.10"),
        (("plugins", CRI_V2, "registry", "config_path"), "/etc/containerd/certs.d"),
        (("plugins", CRI_V2, "cni", "bin_dir"), "/opt/cni/bin"),
    )


def test_a_version_3_default_gets_the_settings_in_the_split_cri_tables() -> None:
    original = sample("2.1")
    edit = edit_config(original, KUBERNETES)
    assert edit.version == 3
    assert tomllib.loads(edit.text) == with_values(
        tomllib.loads(original),
        ((*V3_RUNC, "SystemdCgroup"), True),
        (("plugins", CRI_V3_IMAGES, "pinned_images", "sandbox"), "registry.lab.example/pause:3.10"),
        (("plugins", CRI_V3_IMAGES, "registry", "config_path"), "/etc/containerd/certs.d"),
        (("plugins", CRI_V3_RUNTIME, "cni", "bin_dirs"), ["/opt/cni/bin"]),
    )


@pytest.mark.parametrize("name", list(SAMPLES))
def test_only_the_lines_of_the_changed_values_change(name: str) -> None:
    original = sample(name)
    edit = edit_config(original, KUBERNETES)
    removed = [line for line in changed_lines(original, edit.text) if line.startswith("-")]
    added = [line for line in changed_lines(original, edit.text) if line.startswith("+")]
    assert len(removed) == len(added) == len(edit.changes)
    for line in removed:
        assert line.split("=")[0].strip(" -") in {
            "SystemdCgroup",
            "sandbox_image",
            "sandbox",
            "config_path",
            "bin_dir",
            "bin_dirs",
        }


@pytest.mark.parametrize("name", list(SAMPLES))
def test_a_second_edit_changes_nothing(name: str) -> None:
    once = edit_config(sample(name), KUBERNETES)
    twice = edit_config(once.text, KUBERNETES)
    assert once.changed
    assert twice.changes == ()
    assert twice.text == once.text


@pytest.mark.parametrize(("name", "table"), [("1.7", ("plugins", CRI_V2)), ("2.1", ("plugins", CRI_V3_RUNTIME))])
def test_restricting_oom_score_adj_sets_exactly_the_runtime_plugin_key(name: str, table: tuple[str, ...]) -> None:
    """Lab nodes that are containers lack CAP_SYS_RESOURCE: runc fails every pod unless this is true."""
    original = sample(name)
    edit = edit_config(original, Settings(systemd_cgroup=None, enable_cri=False, restrict_oom_score_adj=True))
    assert tomllib.loads(edit.text) == with_values(tomllib.loads(original), ((*table, "restrict_oom_score_adj"), True))
    assert (
        edit_config(edit.text, Settings(systemd_cgroup=None, enable_cri=False, restrict_oom_score_adj=True)).changes
        == ()
    )


def test_the_legacy_systemd_cgroup_switch_of_version_2_is_left_off() -> None:
    """``systemd_cgroup`` of the CRI plugin is for the v1 shim only; containerd refuses it with runc v2."""
    edited = tomllib.loads(edit_config(sample("1.6"), KUBERNETES).text)
    assert edited["plugins"][CRI_V2]["systemd_cgroup"] is False
    assert edited["plugins"][CRI_V2]["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True


def test_the_version_3_file_keeps_its_single_quotes() -> None:
    edit = edit_config(sample("2.1"), Settings(sandbox_image="registry.lab.example/pause:3.9"))
    assert "      sandbox = 'registry.lab.example/pause:3.9'" in edit.text.splitlines()
    assert "            SystemdCgroup = true" in edit.text.splitlines()


def test_each_change_is_reported_as_the_toml_it_wrote() -> None:
    edit = edit_config(sample("1.6"), Settings(sandbox_image="pause:1"))
    assert edit.changes == (
        'plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options.SystemdCgroup = true',
        'plugins."io.containerd.grpc.v1.cri".sandbox_image = "pause:1"',
    )


def test_settings_left_at_none_are_not_touched() -> None:
    original = sample("1.7")
    edit = edit_config(original, Settings(systemd_cgroup=None, enable_cri=False))
    assert edit.changes == ()
    assert edit.text == original


def test_the_runtime_name_selects_the_runtime_table() -> None:
    edit = edit_config(sample("1.6"), Settings(runtime="crun"))
    crun = tomllib.loads(edit.text)["plugins"][CRI_V2]["containerd"]["runtimes"]["crun"]
    assert crun == {"options": {"SystemdCgroup": True}}


# --- What the packages install ------------------------------------------------------------------------------------


def test_debians_partial_file_gets_the_missing_tables() -> None:
    original = sample("containerd-debian-packaged.toml")
    edit = edit_config(original, KUBERNETES)
    assert tomllib.loads(edit.text) == with_values(
        tomllib.loads(original),
        ((*V2_RUNC, "SystemdCgroup"), True),
        (("plugins", CRI_V2, "sandbox_image"), "registry.lab.example/pause:3.10"),
        (("plugins", CRI_V2, "registry", "config_path"), "/etc/containerd/certs.d"),
        (("plugins", CRI_V2, "cni", "bin_dir"), "/opt/cni/bin"),
    )
    lines = edit.text.splitlines()
    # New tables sit inside their parent's block, indented like their neighbours.
    runc = lines.index('          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]')
    assert lines[runc + 1] == "            SystemdCgroup = true"
    assert runc < lines.index('  [plugins."io.containerd.internal.v1.opt"]')


def test_the_containerd_io_file_without_a_version_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"no 'version'.*containerd config default"):
        edit_config(sample("containerd-io-packaged.toml"), KUBERNETES)


@pytest.mark.parametrize(
    ("disabled", "kept"),
    [
        ('["cri"]', []),
        ('["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.tracing"]', ["io.containerd.internal.v1.tracing"]),
        ("['io.containerd.cri.v1.images', 'io.containerd.cri.v1.runtime']", []),
        (
            '[\n  "cri",  # the CRI plugin\n  "io.containerd.snapshotter.v1.btrfs",\n]',
            ["io.containerd.snapshotter.v1.btrfs"],
        ),
    ],
)
def test_the_cri_plugins_leave_disabled_plugins_and_nothing_else_does(disabled: str, kept: list[str]) -> None:
    text = f"version = 2\ndisabled_plugins = {disabled}\n"
    edit = edit_config(text, Settings(systemd_cgroup=None))
    assert tomllib.loads(edit.text)["disabled_plugins"] == kept


def test_cri_stays_disabled_when_asked() -> None:
    text = 'version = 2\ndisabled_plugins = ["cri"]\n'
    assert edit_config(text, Settings(systemd_cgroup=None, enable_cri=False)).text == text


@pytest.mark.parametrize("version", ["1", "4", '"2"', "true"])
def test_unsupported_config_versions_are_refused(version: str) -> None:
    with pytest.raises(ConfigError, match="not supported"):
        edit_config(f"version = {version}\n", KUBERNETES)


def test_old_registry_mirrors_beside_config_path_are_refused() -> None:
    text = sample("1.6") + (
        f'\n[plugins."{CRI_V2}".registry.mirrors."docker.io"]\n  endpoint = ["https://mirror.lab.example"]\n'
    )
    with pytest.raises(ConfigError, match=r"registry\.mirrors has entries"):
        edit_config(text, KUBERNETES)
    assert edit_config(text, Settings(registry_config_path=None)).changed


def test_containerd_2_0_files_without_bin_dirs_get_bin_dir() -> None:
    text = sample("2.1").replace("      bin_dirs = ['/usr/lib/cni', '/opt/cni/bin']\n", "")
    text = text.replace("      bin_dir = ''\n", "      bin_dir = '/usr/lib/cni'\n")
    cni = tomllib.loads(edit_config(text, KUBERNETES).text)["plugins"][CRI_V3_RUNTIME]["cni"]
    assert cni["bin_dir"] == "/opt/cni/bin"
    assert "bin_dirs" not in cni


def test_a_set_legacy_bin_dir_follows_bin_dirs() -> None:
    text = sample("2.1").replace("      bin_dir = ''\n", "      bin_dir = '/usr/lib/cni'\n")
    cni = tomllib.loads(edit_config(text, KUBERNETES).text)["plugins"][CRI_V3_RUNTIME]["cni"]
    assert cni["bin_dirs"] == ["/opt/cni/bin"]
    assert cni["bin_dir"] == "/opt/cni/bin"


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
    with pytest.raises(ConfigError, match=message):
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
    with pytest.raises(ConfigError, match=message):
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
        with pytest.raises(ConfigError):
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


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(list(SAMPLES)),
    sandbox=st.text(min_size=1, max_size=30),
    directory=st.text(min_size=1, max_size=20),
    systemd=st.booleans(),
)
def test_any_setting_value_survives_the_trip_through_the_file(
    name: str, sandbox: str, directory: str, systemd: bool
) -> None:
    edit = edit_config(
        sample(name),
        Settings(systemd_cgroup=systemd, sandbox_image=sandbox, registry_config_path=directory, cni_bin_dir=directory),
    )
    data = tomllib.loads(edit.text)
    if VERSION_OF[name] == 2:
        cri = data["plugins"][CRI_V2]
        assert (cri["sandbox_image"], cri["registry"]["config_path"], cri["cni"]["bin_dir"]) == (
            sandbox,
            directory,
            directory,
        )
        assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is systemd
    else:
        images, runtime = data["plugins"][CRI_V3_IMAGES], data["plugins"][CRI_V3_RUNTIME]
        assert (images["pinned_images"]["sandbox"], images["registry"]["config_path"]) == (sandbox, directory)
        assert runtime["cni"]["bin_dirs"] == [directory]
        assert runtime["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is systemd
