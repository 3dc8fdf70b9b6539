"""Pure checks of the cluster's settings: control-plane count, versions, the API endpoint, Calico's encapsulation.

The preflight play runs them for every cluster node before any host changes; the kubeadm and Calico roles run the
same functions for direct use. Each returns a list of messages naming the variable to fix, empty when all is well.
``node_addresses(hosts, hostvars)`` is each node's address as the cluster roles advertise it (apiserver_lb's back
ends, the firewall's cluster sources), ``node_source_addresses(hosts, hostvars)`` every address their traffic can
leave with (the stack's network policies leave them out), and ``host_port(address, port)`` the host:port form of an
address (an IPv6 address in brackets) that the endpoint check accepts.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")
# Encapsulations Calico's IP pools know, and the ones that route between nodes without BGP.
CALICO_ENCAPSULATIONS = ("VXLAN", "VXLANCrossSubnet", "IPIP", "None")
CALICO_WITHOUT_BGP = ("VXLAN", "VXLANCrossSubnet")
# The first Kubernetes minor whose kubelet needs containerd 2 (Debian ships containerd 1.7).
CONTAINERD_2_FROM = (1, 36)


def parse_version(value: Any) -> tuple[int, int, int] | None:
    """``1.35.4`` or ``v1.35.4`` (a Debian revision such as ``-1.1`` is dropped) -> (1, 35, 4); None otherwise."""
    match = VERSION.match(str(value).split("-")[0].strip())
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def control_plane_count_problems(group: str, hosts: Sequence[str]) -> list[str]:
    """etcd keeps quorum with a majority: an even member count tolerates no more failures than one fewer."""
    if len(hosts) % 2 == 1:
        return []
    return [
        f"sensorstack_control_plane_group: group {group!r} has {len(hosts)} hosts; etcd runs on every control-plane "
        "node and needs an odd number (1, 3, 5): with 2 or 4, losing one node can stop the cluster as surely as "
        "with 1 or 3. Add or remove one control-plane node"
    ]


def kubernetes_version_problems(variable: str, version: Any, kubeadm_version: Any) -> list[str]:
    """The control plane's version must be one the pinned kubeadm deploys: its own minor or the one before."""
    wanted, kubeadm = parse_version(version), parse_version(kubeadm_version)
    if wanted is None:
        return [f"{variable} must be a Kubernetes release like 1.35.4, got {version!r}"]
    if kubeadm is None:
        return [f"sensorstack_kubernetes_version must be a Kubernetes release like 1.35.4, got {kubeadm_version!r}"]
    if wanted > kubeadm or wanted[:2] < (kubeadm[0], kubeadm[1] - 1):
        return [
            f"{variable} {'.'.join(map(str, wanted))} is not one kubeadm {'.'.join(map(str, kubeadm))} "
            f"(sensorstack_kubernetes_version) deploys: it supports {kubeadm[0]}.{kubeadm[1] - 1}.x and "
            f"{kubeadm[0]}.{kubeadm[1]}.x up to its own patch release"
        ]
    return []


def upgrade_problems(host: str, installed: Any, target: Any, upgrading: bool = True) -> list[str]:
    """kubeadm upgrades one minor at a time and never downgrades; outside playbooks/upgrade.yml (``upgrading``
    false) the version does not move at all. ``installed`` is the node's kubeadm package version, empty when none
    is installed."""
    current, wanted = parse_version(installed), parse_version(target)
    if not installed or current is None or wanted is None:
        return []
    shown_current, shown_wanted = ".".join(map(str, current)), ".".join(map(str, wanted))
    if not upgrading and current != wanted:
        return [
            f"sensorstack_kubernetes_version {shown_wanted} differs from kubeadm {shown_current} on {host}: a "
            "cluster moves to another version only with playbooks/upgrade.yml (drained node by node, control "
            "planes first); site.yml keeps it where it is"
        ]
    if wanted < current:
        return [
            f"sensorstack_kubernetes_version {shown_wanted} is older than kubeadm {shown_current} on {host}: "
            "Kubernetes does not downgrade; pin the installed version or newer"
        ]
    if wanted[0] != current[0] or wanted[1] > current[1] + 1:
        step = f"{current[0]}.{current[1] + 1}"
        return [
            f"sensorstack_kubernetes_version {shown_wanted} skips a minor release: {host} runs kubeadm "
            f"{shown_current}, and kubeadm upgrades one minor at a time. Upgrade to {step} first "
            f"(playbooks/upgrade.yml with sensorstack_kubernetes_version {step}.x), then to {shown_wanted}"
        ]
    return []


def endpoint_problems(variable: str, endpoint: Any) -> list[str]:
    """host:port, an IPv6 address in brackets, a port in 1..65535."""
    text = str(endpoint)
    host, separator, port = text.rpartition(":")
    problem = [f"{variable} must be host:port (an IPv6 address in brackets, e.g. [fd00::10]:6443), got {text!r}"]
    if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return problem
    if host.startswith("["):
        if not host.endswith("]"):
            return problem
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return problem
        return []
    if ":" in host or not re.match(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$", host):
        return problem
    return []


def encapsulation_problems(encapsulation: Any) -> list[str]:
    """Calico's pool encapsulation: a known mode, and one that needs no BGP (this install runs none)."""
    if encapsulation not in CALICO_ENCAPSULATIONS:
        return [f"calico_encapsulation must be one of {', '.join(CALICO_ENCAPSULATIONS)}, got {encapsulation!r}"]
    if encapsulation not in CALICO_WITHOUT_BGP:
        return [
            f"calico_encapsulation {encapsulation} needs BGP to spread routes between nodes, and this install has "
            "none: Calico's vxlan manifest runs no BGP daemon, and the bundle's calico/node is built without BIRD "
            "(a C program the Go module proxy does not serve). Use VXLAN or VXLANCrossSubnet"
        ]
    return []


def runtime_problems(kubernetes_version: Any, containerd_source: Any, containerd_version: Any = None) -> list[str]:
    """Kubernetes 1.36 and later need containerd 2: Debian's containerd package (source distro) is 1.7, and the repo
    source installs containerd.io at containerd_version, which must then be 2.x."""
    version = parse_version(kubernetes_version)
    if version is None or version[:2] < CONTAINERD_2_FROM:
        return []
    needs = f"sensorstack_kubernetes_version {'.'.join(map(str, version))} needs containerd 2"
    remedy = "use containerd_install_source repo with a containerd_version 2.x, or pin Kubernetes 1.35"
    if containerd_source == "distro":
        return [f"{needs}, and containerd_install_source distro installs Debian's containerd 1.7: {remedy}"]
    if containerd_source in (None, "repo") and str(containerd_version or "").startswith("1."):
        return [f"{needs}, and containerd_version is {containerd_version}: {remedy}"]
    return []


# What `sensorstack bundle build` holds: amd64 packages and images (src/sensorstack/bundle/aptrepo.py ARCHITECTURE),
# and no Docker repository (Docker Engine and containerd come from the distribution's packages with it).
BUNDLE_MACHINE = "x86_64"


def mirror_problems(settings: Mapping[str, Any]) -> list[str]:
    """With ``sensorstack_mirror`` set, what the served bundle cannot give a node: a runtime from Docker's repository
    that no variable points at a mirror of (the bundle has none), or a machine other than the bundle's."""
    mirror = settings.get("sensorstack_mirror") or ""
    if not mirror:
        return []
    problems = []
    # site.yml installs containerd through the docker role, which hands it docker_install_source and docker_repo_url.
    if settings.get("docker_install_source", "repo") == "repo" and not settings.get("docker_repo_url"):
        problems.append(
            f"sensorstack_mirror is set ({mirror}), but docker_install_source is repo, which installs Docker Engine "
            "and containerd from Docker's repository on the internet, and the bundle holds none: set "
            "docker_install_source to distro (the distribution's packages), or docker_repo_url to a mirror of "
            "Docker's repository"
        )
    machine = settings.get("architecture") or ""
    if machine and machine != BUNDLE_MACHINE:
        problems.append(
            f"sensorstack_mirror is set ({mirror}), and the bundle holds {BUNDLE_MACHINE} packages and images only, "
            f"but {settings.get('inventory_hostname', 'this node')} is {machine}"
        )
    return problems


def cluster_problems(
    settings: Mapping[str, Any], control_planes: Sequence[str], installed_kubeadm: Any = "", upgrading: bool = False
) -> list[str]:
    """Every cluster check for one node. ``settings`` holds the node's variables (the ones the inventory sets, over
    the project's pins); ``control_planes`` the hosts of the control-plane group; ``installed_kubeadm`` the node's
    kubeadm package version, empty when none is installed; ``upgrading`` whether playbooks/upgrade.yml runs."""
    pinned = settings.get("sensorstack_kubernetes_version", "")
    problems = control_plane_count_problems(settings.get("sensorstack_control_plane_group", ""), control_planes)
    problems += kubernetes_version_problems("sensorstack_kubernetes_version", pinned, pinned)
    if "kubeadm_control_plane_kubernetes_version" in settings:
        problems += kubernetes_version_problems(
            "kubeadm_control_plane_kubernetes_version", settings["kubeadm_control_plane_kubernetes_version"], pinned
        )
    if "kubeadm_control_plane_endpoint" in settings:
        problems += endpoint_problems("kubeadm_control_plane_endpoint", settings["kubeadm_control_plane_endpoint"])
    problems += encapsulation_problems(settings.get("calico_encapsulation", "VXLAN"))
    # The docker role hands its source to the containerd role it runs, so either variable names containerd's.
    source = settings.get("containerd_install_source", settings.get("docker_install_source"))
    problems += runtime_problems(pinned, source, settings.get("containerd_version"))
    problems += mirror_problems(settings)
    problems += upgrade_problems(
        str(settings.get("inventory_hostname", "this node")), installed_kubeadm, pinned, upgrading
    )
    return problems


def first_control_plane_problems(
    group: str, control_planes: Sequence[str], initialised: Mapping[str, Any]
) -> list[str]:
    """site.yml initialises the cluster on the group's first host and joins the others to it. ``initialised`` maps a
    control-plane host to whether it runs a cluster (has /etc/kubernetes/admin.conf), leaving out the hosts that did
    not answer: a first host without one while others have one (it was reset, or the group was reordered) would start
    a second cluster beside theirs. A first host whose answer is unknown is not judged."""
    running = [host for host in control_planes if initialised.get(host)]
    if not control_planes or not running or initialised.get(control_planes[0], True):
        return []
    first = control_planes[0]
    return [
        f"sensorstack_control_plane_group: {first}, the first host of group {group!r}, is where site.yml initialises "
        f"the cluster, but it runs none while {', '.join(running)} run one (they have /etc/kubernetes/admin.conf): "
        f"kubeadm init on {first} would start a second cluster beside theirs. List {running[0]} first in the group, "
        f"and {first} joins their cluster as another control plane"
    ]


def etcd_cluster_problems(group: str, control_planes: Sequence[str], members: Mapping[str, Any]) -> list[str]:
    """``members`` maps a control-plane host to what its local etcd member says of its cluster (module
    control_plane_state's ``etcd``: an empty one, or a host left out, is unknown and not judged). Every member must
    belong to the cluster of the first host's member. One of another cluster is a control plane that was lost while
    etcd was restored from a snapshot on the others and came back with its old data: it still runs the cluster as it
    was, and two such members are a quorum of it, with API servers serving the old state beside the restored one."""
    clusters = {host: (members.get(host) or {}).get("cluster_id") for host in control_planes}
    first = control_planes[0] if control_planes else ""
    reference = clusters.get(first)
    others = [host for host in control_planes if clusters[host] and reference and clusters[host] != reference]
    if not others:
        return []
    return [
        f"sensorstack_control_plane_group: the etcd members of {', '.join(others)} belong to another cluster "
        f"({', '.join(sorted({clusters[host] for host in others}))}) than the member of {first}, the first host of "
        f"group {group!r} ({reference}). A control plane lost while etcd was restored on the others comes back with "
        f"its old data and starts its member of the cluster as it was (two such members are a quorum of it, whose API "
        f"servers serve the old state). Reset each of them (playbooks/reset.yml --limit {','.join(others)}), then run "
        f"site.yml, which joins them to the restored cluster. If the cluster to keep is theirs, list one of them first "
        f"in the group instead"
    ]


def node_addresses(hosts: Sequence[str], hostvars: Mapping[str, Any]) -> list[str]:
    """Each host's address as the cluster roles advertise it: sensorstack_node_ip, else its default IPv4 address
    from gathered facts, else "" (which the callers' checks then name)."""
    addresses = []
    for host in hosts:
        variables = hostvars.get(host, {})
        facts = variables.get("ansible_facts") or {}
        address = variables.get("sensorstack_node_ip") or (facts.get("default_ipv4") or {}).get("address") or ""
        addresses.append(str(address))
    return addresses


def _primary_ipv4_addresses(interface: Mapping[str, Any]) -> list[str]:
    """The IPv4 addresses of an interface (its facts) that masquerading can pick as a source: the kernel's primary
    addresses, the first of each subnet. Ansible lists every address after the first in ipv4_secondaries, the
    kernel's secondaries (more of a subnet already there) and the first of other subnets alike. A later /32, a
    virtual IP such as keepalived moves between nodes, serves no subnet: left out, so the list stays the same when
    it moves."""
    addresses: list[str] = []
    subnets: set[ipaddress.IPv4Network | ipaddress.IPv6Network] = set()
    for position, entry in enumerate([interface.get("ipv4"), *(interface.get("ipv4_secondaries") or [])]):
        if not isinstance(entry, Mapping) or not entry.get("address"):
            continue
        try:
            subnet = ipaddress.ip_interface(f"{entry['address']}/{entry.get('prefix') or 32}").network
        except ValueError:
            continue
        if position == 0 or (subnet not in subnets and subnet.prefixlen < subnet.max_prefixlen):
            addresses.append(str(entry["address"]))
        subnets.add(subnet)
    return addresses


def node_source_addresses(hosts: Sequence[str], hostvars: Mapping[str, Any], unknown: str = "error") -> list[str]:
    """Every address the hosts' traffic to another node can leave with, sorted: the address the cluster knows each
    by (``node_addresses``) and, from gathered facts, each interface's primary IPv4 addresses and global IPv6
    addresses. Loopback and link-local addresses never leave a host. A host of which no address is known at all is
    an error that names it, or with ``unknown="skip"`` left out (preflight's check of the networks, which runs before
    the stack play gathers the facts a limited run lacks, and which that play repeats)."""
    known = node_addresses(hosts, hostvars)
    missing = [host for host, address in zip(hosts, known, strict=True) if not address]
    if missing and unknown != "skip":
        raise AnsibleFilterError(
            f"no address is known of cluster node {', '.join(missing)}, which the stack's network policies must leave "
            "out: set sensorstack_node_ip for it in the inventory, or run stack.yml or site.yml, which gather its "
            "facts (a render reads them from the fact cache)"
        )
    found = {address for address in known if address}
    for host in hosts:
        facts = hostvars.get(host, {}).get("ansible_facts") or {}
        # An interface's facts are named after it, '-' written '_' (a labelled address, eth0:1, is its own eth0_1).
        for name in map(str, facts.get("interfaces") or []):
            fact = facts.get(name.replace("-", "_"), facts.get(name))
            if not isinstance(fact, Mapping):
                continue
            found.update(_primary_ipv4_addresses(fact))
            found.update(
                str(entry["address"])
                for entry in fact.get("ipv6") or []
                if isinstance(entry, Mapping) and entry.get("scope") == "global" and entry.get("address")
            )
    addresses = {ipaddress.ip_address(address) for address in found}
    leaving = [address for address in addresses if not (address.is_loopback or address.is_link_local)]
    return [str(address) for address in sorted(leaving, key=lambda address: (address.version, address))]


def host_port(address: Any, port: Any) -> str:
    """``10.0.0.1``, 6443 -> ``10.0.0.1:6443``; an IPv6 address goes in brackets: ``[fd00::1]:6443``."""
    host = str(address)
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


class FilterModule:
    """Cluster checks, exposed as sensorstack.iot.* filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "cluster_problems": cluster_problems,
            "endpoint_problems": endpoint_problems,
            # The same check with the value first, for map(): backends | map('...endpoint_problems_of', 'variable').
            "endpoint_problems_of": lambda endpoint, variable: endpoint_problems(variable, endpoint),
            "encapsulation_problems": encapsulation_problems,
            "etcd_cluster_problems": etcd_cluster_problems,
            "first_control_plane_problems": first_control_plane_problems,
            "host_port": host_port,
            "kubernetes_version_problems": kubernetes_version_problems,
            "node_addresses": node_addresses,
            "node_source_addresses": node_source_addresses,
        }
