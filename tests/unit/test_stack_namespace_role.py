"""The stack namespace's DNS policy: under the default deny it lets every pod ask the cluster's DNS; without it (for
troubleshooting) it selects only the stack's own pods, so that a debugging pod is open as the role's docs say."""

from __future__ import annotations

from .role_files import RoleFiles

ROLE = RoleFiles.load("stack_namespace")


def dns_selector(default_deny: bool) -> object:
    policy = ROLE.render("{{ stack_namespace_dns_policy }}", stack_namespace_default_deny=default_deny)
    return policy["spec"]["podSelector"]


def test_under_the_default_deny_every_pod_may_ask_the_dns() -> None:
    assert dns_selector(True) == {}


def test_without_it_the_dns_policy_selects_only_the_stacks_pods() -> None:
    assert dns_selector(False) == {"matchLabels": {"app.kubernetes.io/part-of": "sensorstack"}}
