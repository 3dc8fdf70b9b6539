"""The influxdata_repo and grafana roles replace the install guides' definitions of their apt repositories.

A host set up by InfluxData's or Grafana's install guide has a one-line source (influxdata.list, grafana.list) signed
by another keyring than the role's deb822 source; apt refuses two definitions of one repository with different
Signed-By values and then reads no source at all. Like containerd and kubernetes_packages, each role removes the
guide's file before it writes its own source, in the same call, and refreshes the package lists when that changed
anything. The files are removed, so an entry outside /etc/apt/sources.list.d, or the role's own source, is refused
before any change. The source is written as text (sensorstack.iot.stack_apt_source_files), not with
ansible.builtin.deb822_repository, which needs python3-debian on the host: a minimal Debian has none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.sensorstack.iot.plugins.filter.stack import apt_source_files

from .role_files import ROLES, RoleFiles, opened_tasks


@dataclass(frozen=True)
class Case:
    role: str
    tasks_file: str
    variable: str
    guide_file: str
    own_file_variable: str

    @property
    def files(self) -> RoleFiles:
        return RoleFiles.load(self.role)

    @property
    def tasks(self) -> list[dict[str, Any]]:
        return opened_tasks(yaml.safe_load((ROLES / self.role / "tasks" / self.tasks_file).read_text()))

    def task_using(self, module: str) -> dict[str, Any]:
        [task] = [task for task in self.tasks if module in task]
        return task


CASES = [
    Case(
        "influxdata_repo",
        "main.yml",
        "influxdata_repo_replaced_apt_source_files",
        "/etc/apt/sources.list.d/influxdata.list",
        "influxdata_repo_source_file",
    ),
    Case(
        "grafana",
        "platform_systemd.yml",
        "grafana_replaced_apt_source_files",
        "/etc/apt/sources.list.d/grafana.list",
        "grafana_apt_source_file",
    ),
]
IDS = [case.role for case in CASES]


def source_task(case: Case) -> dict[str, Any]:
    return case.task_using("sensorstack.iot.files")


def source_entries(case: Case, **variables: Any) -> list[dict[str, Any]]:
    return case.files.render(source_task(case)["sensorstack.iot.files"]["files"], **variables)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_install_guides_source_file_is_replaced_by_default(case: Case) -> None:
    assert case.files.defaults[case.variable] == [case.guide_file]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_guides_file_goes_and_the_roles_deb822_source_comes_in_one_call(case: Case) -> None:
    *removed, own = source_entries(case)
    assert removed == [{"path": case.guide_file, "state": "absent"}]
    assert own["path"] == case.files.vars[case.own_file_variable]
    assert (own["owner"], own["group"], own["mode"]) == ("root", "root", "0644")
    fields = dict(line.split(": ", 1) for line in own["content"].splitlines() if not line.startswith("#"))
    assert list(fields) == ["Types", "URIs", "Suites", "Components", "Signed-By"]
    assert fields["Types"] == "deb" and fields["Components"] == "main"
    assert fields["URIs"].startswith("https://") and fields["Signed-By"].startswith("/etc/apt/keyrings/")
    assert not [task for task in case.tasks if "ansible.builtin.deb822_repository" in task]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_files_are_checked_then_replaced_by_the_source_and_the_lists_refreshed(case: Case) -> None:
    tasks = case.tasks
    check = case.task_using("ansible.builtin.assert")
    refresh = case.task_using("ansible.builtin.apt")
    # The check comes before any task that changes the host.
    assert tasks.index(check) == 0
    assert tasks.index(source_task(case)) < tasks.index(refresh)
    assert refresh["ansible.builtin.apt"] == {"update_cache": True}
    assert source_entries(case, **{case.variable: []})[0]["path"] == case.files.vars[case.own_file_variable]


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize(
    ("changed", "refreshed"),
    [
        ({}, False),
        ({"source": True}, True),
        ({"key": True}, True),
    ],
    ids=["nothing changed", "a guide's file removed or the source written", "the key written"],
)
def test_the_package_lists_are_refreshed_only_when_the_repository_changed(
    case: Case, changed: dict[str, bool], refreshed: bool
) -> None:
    refresh = case.task_using("ansible.builtin.apt")
    key = case.task_using("sensorstack.iot.apt_signing_key")["register"]
    results = {
        key: {"changed": changed.get("key", False)},
        source_task(case)["register"]: {"changed": changed.get("source", False)},
    }
    [condition] = [refresh["when"]] if isinstance(refresh["when"], str) else refresh["when"]
    variables = {**refresh.get("vars", {}), **results}
    assert case.files.render("{{ " + condition + " }}", **variables) is refreshed


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize(
    ("files", "refused"),
    [
        ([], []),
        (["/etc/apt/sources.list.d/influxdb.list", "/etc/apt/sources.list.d/grafana-old.sources"], []),
        # The distribution's own sources, a file elsewhere, a relative path, something else than a source file.
        (["/etc/apt/sources.list"], ["/etc/apt/sources.list"]),
        (["/etc/apt/sources.list.d/../sources.list"], ["/etc/apt/sources.list.d/../sources.list"]),
        (["influxdata.list"], ["influxdata.list"]),
        (["/etc/apt/sources.list.d/grafana.list.save"], ["/etc/apt/sources.list.d/grafana.list.save"]),
    ],
    ids=["none", "other source files", "sources.list", "outside the folder", "relative", "not a source file"],
)
def test_only_other_source_files_of_sources_list_d_may_be_removed(
    case: Case, files: list[str], refused: list[str]
) -> None:
    check = case.task_using("ansible.builtin.assert")
    [(name, expression)] = check["vars"].items()
    assert check["ansible.builtin.assert"]["that"] == f"{name} | length == 0"
    assert case.files.render(expression, **{case.variable: files}) == refused
    # The default passes, and the message names the variable.
    assert case.files.render(expression, **{case.variable: [case.guide_file]}) == []
    assert check["ansible.builtin.assert"]["fail_msg"].startswith(case.variable + " may name only files")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_roles_own_source_is_never_removed(case: Case) -> None:
    check = case.task_using("ansible.builtin.assert")
    [expression] = check["vars"].values()
    own = case.files.vars[case.own_file_variable]
    assert case.files.render(expression, **{case.variable: [case.guide_file, own]}) == [own]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"Types": "deb", "URIs": "https://x"}, "missing fields ['Suites']"),
        ({"Types": "deb", "URIs": "https://x", "Suites": "/", "Trusted": "yes"}, "unknown fields ['Trusted']"),
        ({"Types": "deb", "URIs": "https://x\nTrusted: yes", "Suites": "/"}, "URIs has an empty value or one with"),
        ({"Types": "deb", "URIs": "https://x", "Suites": [""], "Components": "main"}, "Suites has an empty value"),
        ({"Types": "deb", "URIs": "https://x", "Suites": "stable"}, "any other suite at least one"),
        ({"Types": "deb", "URIs": "https://x", "Suites": "/", "Components": "main"}, "takes no components"),
    ],
    ids=[
        "a required field missing",
        "a field apt would trust blindly",
        "a value that adds a line",
        "an empty suite",
        "a suite without components",
        "a flat repository with components",
    ],
)
def test_a_source_apt_would_misread_is_refused(source: dict[str, str], message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        apt_source_files(source, "/etc/apt/sources.list.d/x.sources", [])


def test_a_flat_repository_needs_no_components() -> None:
    [own] = apt_source_files({"Types": ["deb"], "URIs": ["https://x/"], "Suites": ["/"]}, "/etc/apt/x.sources", [])
    assert own["content"] == "Types: deb\nURIs: https://x/\nSuites: /\n"
