"""Pure checks behind the preflight role: inventory layout and cluster networks.

Each function returns a list of messages, empty when all is well; every message names the variable (or the
inventory group) to fix, because preflight exists to say exactly that before a host is touched.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ansible_collections.sensorstack.iot.plugins.filter.cluster_checks import node_addresses

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_cidr(variable: str, value: Any) -> tuple[Network | None, str | None]:
    """Parse one CIDR. Returns (network, None) or (None, a message naming the variable)."""
    if not isinstance(value, str) or "/" not in value:
        return None, f"{variable}: {value!r} is not a CIDR (expected an address/prefix such as 10.244.0.0/16)"
    try:
        return ipaddress.ip_network(value, strict=True), None
    except ValueError as error:
        try:
            suggestion = ipaddress.ip_network(value, strict=False)
        except ValueError:
            return None, f"{variable}: {value!r} is not a valid CIDR ({error})"
        return None, f"{variable}: {value!r} has host bits set; did you mean {suggestion}?"


def network_problems(
    networks: Mapping[str, Any], addressing: Mapping[str, Mapping[str, str]] | None = None
) -> list[str]:
    """Check named CIDRs for syntax and overlaps, and that no host lies inside the cluster networks.

    ``networks`` maps a variable name to a CIDR or a list of CIDRs (``sensorstack_host_cidrs``).
    ``addressing`` is what ``host_addressing`` returns: each host's address, and the network it lives on as seen
    in its facts, which stands in for ``sensorstack_host_cidrs`` when that list is empty.
    """
    addressing = addressing or {}
    host_networks = (
        {}
        if networks.get("sensorstack_host_cidrs")
        else {host: entry["network"] for host, entry in addressing.items() if entry.get("network")}
    )
    host_addresses = {host: entry["address"] for host, entry in addressing.items() if entry.get("address")}
    problems: list[str] = []
    parsed: list[tuple[str, Network]] = []
    for variable, value in networks.items():
        values = value if isinstance(value, list) else [value]
        for index, item in enumerate(values):
            label = f"{variable}[{index}]" if isinstance(value, list) else variable
            network, problem = parse_cidr(label, item)
            if problem:
                problems.append(problem)
            elif network is not None:
                parsed.append((label, network))
    cluster = [(label, net) for label, net in parsed if not label.startswith("sensorstack_host_cidrs")]
    for position, (label, network) in enumerate(parsed):
        for other_label, other in parsed[position + 1 :]:
            if network.version == other.version and network.overlaps(other):
                problems.append(f"{label} ({network}) overlaps {other_label} ({other})")
    for host, value in sorted(host_networks.items()):
        network, problem = parse_cidr(f"host network of {host}", value)
        if network is None:
            continue
        for label, cluster_network in cluster:
            if network.version == cluster_network.version and network.overlaps(cluster_network):
                problems.append(
                    f"{label} ({cluster_network}) overlaps the network of host {host} ({network}, from "
                    "ansible_default_ipv4); choose another range or declare sensorstack_host_cidrs"
                )
    for host, address in sorted(host_addresses.items()):
        try:
            ip = ipaddress.ip_address(str(address))
        except ValueError:
            problems.append(f"sensorstack_node_ip of host {host}: {address!r} is not an IP address")
            continue
        for label, network in cluster:
            if ip.version == network.version and ip in network:
                problems.append(f"{label} ({network}) contains the address of host {host} ({ip})")
    return problems


def host_addressing(hostvars: Mapping[str, Any], hosts: Iterable[str]) -> dict[str, dict[str, str]]:
    """Collect each host's address (``node_addresses``: ``sensorstack_node_ip`` or its default IPv4) and, from its
    facts, the network of its default IPv4 address."""
    hosts = list(hosts)
    addressing: dict[str, dict[str, str]] = {}
    for host, address in zip(hosts, node_addresses(hosts, hostvars), strict=True):
        default_ipv4 = (hostvars[host].get("ansible_facts") or {}).get("default_ipv4") or {}
        entry: dict[str, str] = {}
        if address:
            entry["address"] = str(address)
        if default_ipv4.get("network") and default_ipv4.get("netmask"):
            interface = ipaddress.ip_interface(f"{default_ipv4['network']}/{default_ipv4['netmask']}")
            entry["network"] = str(interface.network)
        addressing[host] = entry
    return addressing


def _close_role_names(groups: Iterable[str], role_groups: list[str]) -> list[str]:
    close = []
    for group in groups:
        matches = difflib.get_close_matches(group, role_groups, n=1, cutoff=0.6)
        if matches:
            close.append(f"{group!r} (did you mean {matches[0]!r}?)")
    return close


def host_role_problems(
    groups: Mapping[str, list[str]],
    hosts_group: str,
    role_groups: Mapping[str, str],
    cluster_enabled: bool = True,
) -> list[str]:
    """Check that every managed host has exactly one known role and that a cluster has a control plane.

    ``groups`` is Ansible's ``groups`` variable; ``role_groups`` maps each role-group variable name
    (``sensorstack_control_plane_group``...) to the group it names.
    """
    problems: list[str] = []
    managed = list(groups.get(hosts_group) or [])
    if not managed:
        return [f"sensorstack_hosts_group: inventory group {hosts_group!r} is missing or has no hosts"]
    names = list(role_groups.values())
    for variable, group in role_groups.items():
        for host in groups.get(group) or []:
            if host not in managed:
                problems.append(
                    f"host {host} is in role group {group!r} ({variable}) but not in {hosts_group!r} "
                    "(sensorstack_hosts_group): make the role groups children of it"
                )
    for host in managed:
        roles = [group for group in names if host in (groups.get(group) or [])]
        if not roles:
            other = [g for g, members in groups.items() if host in members and g not in ("all", hosts_group)]
            hint = _close_role_names(other, names)
            problems.append(
                f"host {host} has no known host role: it must be in one of the groups {', '.join(names)} "
                f"(sensorstack_control_plane_group, sensorstack_worker_group, sensorstack_edge_group)"
                + (f"; unknown role group {', '.join(hint)}" if hint else "")
            )
        elif len(roles) > 1:
            problems.append(
                f"host {host} has duplicate host roles ({', '.join(roles)}): each host takes exactly one role group"
            )
    control_plane_variable = "sensorstack_control_plane_group"
    control_plane = role_groups.get(control_plane_variable, "")
    worker_group = role_groups.get("sensorstack_worker_group", "")
    if cluster_enabled and not groups.get(control_plane):
        problems.append(
            f"{control_plane_variable}: group {control_plane!r} is missing or empty; a cluster needs at least one "
            "control-plane node (set sensorstack_cluster_enabled: false for an edge-only lab)"
        )
    if not cluster_enabled and (groups.get(control_plane) or groups.get(worker_group)):
        problems.append(
            "sensorstack_cluster_enabled is false but the inventory has control-plane or worker hosts; "
            "move them to the edge group or enable the cluster"
        )
    return problems


# The group-name variables in the order preflight.yml's first play names their groups.
GROUP_VARIABLES = (
    "sensorstack_hosts_group",
    "sensorstack_control_plane_group",
    "sensorstack_worker_group",
    "sensorstack_edge_group",
)
# That play's name once Ansible has templated it: "... groups sensorstack, control_plane, workers, edge".
PLAY_GROUPS = re.compile(r"groups (\S+), (\S+), (\S+), (\S+)$")


def play_group_problems(play_name: str, hostvars: Mapping[str, Any], hosts: Iterable[str]) -> list[str]:
    """A play's ``hosts:`` line is templated before any host is known, from extra vars and the playbook alone, so a
    group name set in the inventory reaches the roles but not the plays: whole plays would match no host, silently.
    ``play_name`` is the templated name of preflight.yml's first play, which names the groups the plays use; each
    host's own value of the variable (``hostvars``) must be that name."""
    match = PLAY_GROUPS.search(" ".join(play_name.split()))
    if not match:
        return [f"cannot read the plays' group names from the play name {play_name!r}"]
    problems = []
    for variable, play_group in zip(GROUP_VARIABLES, match.groups(), strict=True):
        differing = sorted(
            {
                str(hostvars[host][variable])
                for host in hosts
                if str(hostvars[host].get(variable, play_group)) != play_group
            }
        )
        if differing:
            problems.append(
                f"{variable} is {', '.join(repr(value) for value in differing)} in the inventory, but the plays run on "
                f"group {play_group!r}: a play's hosts: line cannot read inventory variables. Set it on the command "
                f"line instead (-e {variable}={differing[0]}, or -e @file.yml for all four), and remove it from the "
                "inventory"
            )
    return problems


def os_problems(host: str, distribution: str, major_version: str, supported: Mapping[str, list[Any]]) -> list[str]:
    """Return a message when the host's OS is not in ``preflight_supported_distributions``."""
    versions = [str(version) for version in supported.get(distribution, [])]
    if str(major_version) in versions:
        return []
    listing = "; ".join(f"{name} {', '.join(str(v) for v in vers)}" for name, vers in supported.items())
    return [
        f"host {host} runs {distribution} {major_version} (ansible_distribution, ansible_distribution_major_version), "
        f"which is not supported; preflight_supported_distributions allows: {listing}"
    ]


class FilterModule:
    """Preflight checks, exposed as sensorstack.iot.* filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "network_problems": network_problems,
            "host_addressing": host_addressing,
            "host_role_problems": host_role_problems,
            "os_problems": os_problems,
            "play_group_problems": play_group_problems,
        }
