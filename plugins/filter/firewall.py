"""The firewall role's rules, checked and turned into nftables statements.

A rule is a mapping: ``name`` (what it lets in, for the comment), ``ports`` (numbers or ``"low-high"`` ranges; not
for ``protocol: ipip``), ``protocol`` (``tcp``, the default, ``udp`` or ``ipip``: IP protocol 4, which has no ports)
and ``sources`` (CIDRs or addresses, IPv4 or IPv6; empty or missing means from anywhere).

``sensorstack.iot.firewall_rule_problems(rules, variable)`` lists what is wrong with each rule, naming the variable,
so the role stops before it changes anything; ``firewall_settings_problems({variable: rules})`` does it for
several variables at once (preflight). ``sensorstack.iot.firewall_statements(rules)`` renders valid rules as
the statements of an nftables ``inet`` input chain, one per line (IPv4 and IPv6 sources in separate statements,
since an nftables set holds one address family).

``sensorstack.iot.firewall_ssh_connection(text)`` reads sshd's ``SSH_CONNECTION`` of the session Ansible uses, and
``sensorstack.iot.firewall_sources_admit(address, sources)`` says whether a rule with those sources lets an address
in: the one place the role decides it, so that it refuses SSH sources that would shut Ansible out. Pure functions,
run on the controller.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

PROTOCOLS = ("tcp", "udp", "ipip")
_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")
_NAME = re.compile(r"^[\w .:/()+,'-]{1,64}$")


def _port_problem(port: Any) -> str | None:
    if isinstance(port, bool):
        return f"{port!r} is not a port"
    if isinstance(port, int) or (isinstance(port, str) and port.strip().isdigit()):
        return None if 0 < int(port) < 65536 else f"{port!r} is not a port (1-65535)"
    match = _RANGE.match(port) if isinstance(port, str) else None
    if not match:
        return f"{port!r} is neither a port nor a low-high range"
    low, high = int(match.group(1)), int(match.group(2))
    return None if 0 < low < high < 65536 else f"{port!r} is not a range of ports with low < high"


def _network(source: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(str(source).strip(), strict=False)


def _rule_problems(index: int, rule: Any, variable: str) -> list[str]:
    where = f"{variable}[{index}]"
    if not isinstance(rule, Mapping):
        return [f"{where} must be a mapping with name, ports, protocol and sources, got {rule!r}"]
    problems = []
    unknown = sorted(set(rule) - {"name", "ports", "protocol", "sources"})
    if unknown:
        problems.append(f"{where} has unknown keys {unknown} (name, ports, protocol, sources)")
    name = rule.get("name", "")
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(f"{where}.name must be 1-64 letters, digits, spaces or .:/()+,'- ; got {name!r}")
    protocol = rule.get("protocol", "tcp")
    if protocol not in PROTOCOLS:
        problems.append(f"{where}.protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    ports = rule.get("ports", [])
    if not isinstance(ports, Sequence) or isinstance(ports, str):
        problems.append(f"{where}.ports must be a list of ports or low-high ranges, got {ports!r}")
    elif protocol == "ipip" and ports:
        problems.append(f"{where} is protocol ipip, which has no ports: leave ports out")
    elif protocol in ("tcp", "udp") and not ports:
        problems.append(f"{where}.ports is empty: name the {protocol} ports it opens")
    else:
        problems += [f"{where}.ports: {problem}" for problem in map(_port_problem, ports) if problem]
    sources = rule.get("sources") or []
    if not isinstance(sources, Sequence) or isinstance(sources, str):
        problems.append(f"{where}.sources must be a list of CIDRs or addresses, got {sources!r}")
    else:
        for source in sources:
            try:
                _network(source)
            except ValueError:
                problems.append(f"{where}.sources: {source!r} is not a CIDR or an address")
    return problems


def firewall_rule_problems(rules: Any, variable: str) -> list[str]:
    """Every problem of every rule, each naming variable[index] and the key."""
    if not isinstance(rules, Sequence) or isinstance(rules, str):
        return [f"{variable} must be a list of rules, got {rules!r}"]
    return [problem for index, rule in enumerate(rules) for problem in _rule_problems(index, rule, variable)]


def firewall_settings_problems(settings: Mapping[str, Any]) -> list[str]:
    """firewall_rule_problems of each variable -> rules pair, in the variables' order (preflight's check)."""
    return [
        problem for variable, rules in sorted(settings.items()) for problem in firewall_rule_problems(rules, variable)
    ]


def _match(rule: Mapping[str, Any]) -> str:
    protocol = rule.get("protocol", "tcp")
    if protocol == "ipip":
        return "meta l4proto 4"
    ports = ", ".join(str(port).replace(" ", "") for port in rule["ports"])
    return f"{protocol} dport {{ {ports} }}"


def firewall_statements(rules: Sequence[Mapping[str, Any]]) -> list[str]:
    """nftables input-chain statements accepting what each rule lets in, with the rule's name as a comment."""
    problems = firewall_rule_problems(rules, "rules")
    if problems:
        raise AnsibleFilterError("firewall_statements: " + "; ".join(problems))
    statements = []
    for rule in rules:
        comment = f'comment "{rule["name"]}"'
        match = _match(rule)
        networks = [_network(source) for source in rule.get("sources") or []]
        if not networks:
            statements.append(f"{match} accept {comment}")
            continue
        for family, keyword in ((4, "ip"), (6, "ip6")):
            chosen = sorted({str(network) for network in networks if network.version == family})
            if chosen:
                statements.append(f"{keyword} saddr {{ {', '.join(chosen)} }} {match} accept {comment}")
    return statements


def _address(address: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """address as nftables matches it: an IPv4 client seen as IPv4-mapped IPv6 (::ffff:a.b.c.d) is IPv4."""
    parsed = ipaddress.ip_address(str(address).strip())
    mapped = getattr(parsed, "ipv4_mapped", None)
    return mapped if mapped is not None else parsed


def firewall_ssh_connection(text: Any) -> dict[str, Any]:
    """sshd's SSH_CONNECTION ("client_ip client_port server_ip server_port") as {client, client_port, server,
    server_port}; {} when it is empty or not of that form (no SSH session to read, e.g. behind a jump host that
    hides it)."""
    fields = str(text or "").split()
    if len(fields) != 4 or not (fields[1].isdigit() and fields[3].isdigit()):
        return {}
    try:
        client, server = _address(fields[0]), _address(fields[2])
    except ValueError:
        return {}
    if not (0 < int(fields[1]) < 65536 and 0 < int(fields[3]) < 65536):
        return {}
    return {"client": str(client), "client_port": int(fields[1]), "server": str(server), "server_port": int(fields[3])}


def firewall_sources_admit(address: Any, sources: Any) -> bool:
    """Whether a rule with these sources lets address in: empty sources let in anywhere, else the address must lie
    in one of them (same address family). Sources that are not CIDRs or addresses admit nothing (the rule checks
    name them)."""
    try:
        parsed = _address(address)
    except ValueError as error:
        raise AnsibleFilterError(f"firewall_sources_admit: {address!r} is not an address") from error
    if not sources:
        return True
    for source in sources:
        try:
            if parsed in _network(source):
                return True
        except ValueError:
            continue
    return False


class FilterModule:
    """The firewall role's rule checks and nftables rendering, exposed as sensorstack.iot.* filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "firewall_rule_problems": firewall_rule_problems,
            "firewall_settings_problems": firewall_settings_problems,
            "firewall_sources_admit": firewall_sources_admit,
            "firewall_ssh_connection": firewall_ssh_connection,
            "firewall_statements": firewall_statements,
        }
