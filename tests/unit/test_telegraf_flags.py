"""Telegraf as it runs: its command-line flags are one setting for both platforms (the systemd unit's and the pod's
command carry the same ones, picked from the version that runs the configuration: the installed binary, or the
image's tag), and every pod on the cluster has the one hostname the metrics' host tag takes."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from .role_files import ROOT, RoleFiles

ROLE = RoleFiles.load("telegraf")
UNIT = (ROOT / "roles/telegraf/templates/telegraf.service.j2").read_text()
OBJECTS = (ROOT / "roles/telegraf/templates/kubernetes.yml.j2").read_text()
STRICT = ["--strict-env-handling"]


def render(expression: str, **overrides: Any) -> Any:
    return ROLE.render(expression, **{"ansible_managed": "managed", **overrides})


@pytest.mark.parametrize(
    ("image", "flags"),
    [
        ("docker.io/library/telegraf:1.37.2", STRICT),
        ("registry.lab:5000/telegraf:1.38.0-alpine", STRICT),
        ("docker.io/library/telegraf:1.36.4", []),
        # No version in the reference: the pinned one.
        ("docker.io/library/telegraf@sha256:" + "0" * 64, STRICT),
    ],
)
def test_the_pods_flags_follow_the_images_version(image: str, flags: list[str]) -> None:
    assert render("{{ telegraf_flags }}", telegraf_platform="kubernetes", telegraf_kubernetes_image=image) == flags


@pytest.mark.parametrize(("installed", "flags"), [("1.37.2", STRICT), ("1.36.4", [])])
def test_the_units_flags_follow_the_installed_version(installed: str, flags: list[str]) -> None:
    assert render("{{ telegraf_flags }}", telegraf_platform="systemd", telegraf_installed_version=installed) == flags


def test_the_pod_runs_telegraf_with_the_flags_the_unit_runs_it_with() -> None:
    unit = render(UNIT, telegraf_platform="systemd", telegraf_installed_version="1.37.2")
    [exec_start] = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    objects = yaml.safe_load(
        render(
            OBJECTS,
            telegraf_platform="kubernetes",
            telegraf_rendered_config="[agent]\n",
            telegraf_environment_values={"TELEGRAF_INFLUXDB_PASSWORD": 'a"quote'},
        )
    )
    [deployment] = [item for item in objects if item["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"][-1:] == exec_start.split()[-1:] == STRICT
    assert container["command"][1:3] == exec_start.split()[1:3] == ["--config", "/etc/telegraf/telegraf.conf"]


def test_every_telegraf_pod_has_the_one_hostname_the_host_tag_takes() -> None:
    objects = yaml.safe_load(
        render(
            OBJECTS,
            telegraf_platform="kubernetes",
            telegraf_rendered_config="[agent]\n",
            telegraf_environment_values={},
        )
    )
    [deployment] = [item for item in objects if item["kind"] == "Deployment"]
    assert deployment["spec"]["template"]["spec"]["hostname"] == "telegraf"
    # No readiness endpoint: the rollout waits until the pod has run long enough to have started every plugin.
    assert deployment["spec"]["minReadySeconds"] == 10
