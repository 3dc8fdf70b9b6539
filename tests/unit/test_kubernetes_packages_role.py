"""The kubernetes_packages argument spec mirrors the role's defaults, and its defaults follow the one versions file.

A default that is a template (it follows the sensorstack role's pins) has no default in the spec, where it would
only be a second, possibly stale copy; its description names what it follows.
"""

from __future__ import annotations

from sensorstack.bundle.versions import load_versions, render

from .role_files import RoleFiles

ROLE = RoleFiles.load("kubernetes_packages")


def test_the_defaults_follow_the_pinned_versions_and_the_mirror() -> None:
    mirror = "http://10.213.0.1:8080"
    pins = load_versions(overrides={"sensorstack_mirror": mirror})
    rendered = render({**pins, **ROLE.defaults})
    assert rendered["kubernetes_packages_version"] == "1.35.4-1.1"
    assert rendered["kubernetes_packages_repo_url"] == f"{mirror}/apt/core:/stable:/v1.35/deb/"
    assert rendered["kubernetes_packages_repo_key_url"] == f"{mirror}/apt/core:/stable:/v1.35/deb/Release.key"
    assert rendered["kubernetes_packages_repo_key_checksum"] == pins["sensorstack_kubernetes_apt_key_checksum"]


def test_switching_the_minor_switches_the_repository_url() -> None:
    pins = load_versions(overrides={"sensorstack_kubernetes_version": "1.36.0"})
    rendered = render({**pins, **ROLE.defaults})
    assert rendered["kubernetes_packages_version"] == "1.36.0-1.1"
    assert rendered["kubernetes_packages_repo_url"] == "https://pkgs.k8s.io/core:/stable:/v1.36/deb/"
