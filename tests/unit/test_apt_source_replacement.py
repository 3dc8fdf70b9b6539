"""The influxdata_repo and grafana roles replace the install guides' definitions of their apt repositories.

A host set up by InfluxData's or Grafana's install guide has a one-line source (influxdata.list, grafana.list) signed
by another keyring than the role's deb822 source; apt refuses two definitions of one repository with different
Signed-By values and then reads no source at all. Like containerd and kubernetes_packages, each role removes the
guide's file before it writes its own source and refreshes the package lists when that changed anything. The files
are removed, so an entry outside /etc/apt/sources.list.d, or the role's own source, is refused before any change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import yaml

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


def removal(case: Case) -> dict[str, Any]:
    [task] = [
        task
        for task in case.tasks
        if task.get("ansible.builtin.file", {}).get("state") == "absent"
        and task.get("loop") == "{{ " + case.variable + " }}"
    ]
    return task


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_install_guides_source_file_is_replaced_by_default(case: Case) -> None:
    assert case.files.defaults[case.variable] == [case.guide_file]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_role_writes_the_source_file_it_protects_from_removal(case: Case) -> None:
    source = case.task_using("ansible.builtin.deb822_repository")["ansible.builtin.deb822_repository"]
    assert case.files.vars[case.own_file_variable] == f"/etc/apt/sources.list.d/{source['name']}.sources"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_files_are_checked_then_removed_before_the_source_is_written_and_the_lists_refreshed(case: Case) -> None:
    tasks = case.tasks
    check = case.task_using("ansible.builtin.assert")
    source = case.task_using("ansible.builtin.deb822_repository")
    refresh = case.task_using("ansible.builtin.apt")
    # The check comes before any task that changes the host.
    assert tasks.index(check) == 0
    assert tasks.index(removal(case)) < tasks.index(source) < tasks.index(refresh)
    assert refresh["ansible.builtin.apt"] == {"update_cache": True}


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize(
    ("changed", "refreshed"),
    [
        ({}, False),
        ({"removal": True}, True),
        ({"source": True}, True),
        ({"key": True}, True),
    ],
    ids=["nothing changed", "a guide's file removed", "the source written", "the key written"],
)
def test_the_package_lists_are_refreshed_only_when_the_repository_changed(
    case: Case, changed: dict[str, bool], refreshed: bool
) -> None:
    refresh = case.task_using("ansible.builtin.apt")
    key = case.task_using("sensorstack.iot.apt_signing_key")["register"]
    results = {
        key: {"changed": changed.get("key", False)},
        removal(case)["register"]: {"changed": changed.get("removal", False), "results": []},
        case.task_using("ansible.builtin.deb822_repository")["register"]: {"changed": changed.get("source", False)},
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
