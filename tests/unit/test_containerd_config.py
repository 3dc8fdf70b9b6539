"""The containerd config editor, on real containerd files (tests/unit/data/containerd-samples.md) and on edge cases.

Every edited file is read back with ``tomllib`` and compared with what the original means plus the intended
change, so an edit that breaks the syntax, lands in the wrong table or touches anything else fails here.
"""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path

import pytest
from ansible_collections.sensorstack.iot.plugins.module_utils.containerd_config import (
    CRI_V2,
    CRI_V3_IMAGES,
    CRI_V3_RUNTIME,
    ConfigError,
    Settings,
    edit_config,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.toml_data import with_values

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


# --- Any settings: property test ------------------------------------------------------------------------------


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
