"""What the stack's roles read from each other's variables, defined once.

Telegraf, Grafana and the verify role each take a user's password from ``mosquitto_users`` or ``influxdb_users``
and the database the readings go to from ``influxdb_databases``; these filters are the one way they do it, so the
roles cannot disagree about which entry counts (the first present one; ``state: absent`` entries never do).
``admin_password_problems`` is the one rule for the
services' admin passwords. Pure functions, run on the controller; unit-tested in ``tests/unit/test_stack_filters.py``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError


def present_entries(entries: Any, variable: str) -> list[Mapping[str, Any]]:
    """The entries of a list variable that are not ``state: absent``; a non-list names ``variable``."""
    if not isinstance(entries, Sequence) or isinstance(entries, str):
        raise AnsibleFilterError(f"{variable} must be a list")
    return [entry for entry in entries if isinstance(entry, Mapping) and entry.get("state", "present") != "absent"]


def admin_password_problems(password: Any, variable: str, service: str) -> list[str]:
    """An admin password must be set, at least 8 characters and none of the well-known defaults (never shown)."""
    text = "" if password is None else str(password)
    known = {"admin", "password", "changeme", service}
    if len(text) < 8 or text.lower() in known:
        return [
            f"{variable} must be set, at least 8 characters long and none of {', '.join(sorted(known))}; "
            "keep it in Ansible Vault"
        ]
    return []


def stack_user_password(users: Any, name: str) -> str:
    """The password of the present user ``name`` in a mosquitto_users / influxdb_users list, or "" if none."""
    for user in present_entries(users, "the users list"):
        if user.get("name") == name:
            return str(user.get("password") or "")
    return ""


def stack_first_database(databases: Any, variable: str) -> str:
    """The first present database of influxdb_databases: where the stack's points go unless ``variable`` says else."""
    for database in present_entries(databases, "influxdb_databases"):
        return str(database["name"])
    raise AnsibleFilterError(f"influxdb_databases declares no database: set {variable}")


DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$")
STATEFUL = ("mosquitto", "influxdb", "grafana")


def dns_label_problems(value: Any, variable: str) -> list[str]:
    """A Kubernetes name that must be a DNS label (RFC 1123: a namespace, a pod's hostname)."""
    if DNS_LABEL.match(str(value)):
        return []
    return [f"{variable} must be a DNS label (a-z, 0-9 and '-', at most 63 characters), got {str(value)!r}"]


def _networks(value: Any, variable: str, problems: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        problems.append(f"{variable} must be a list of networks (CIDR), got {value!r}")
        return []
    networks = []
    for entry in value:
        try:
            networks.append(ipaddress.ip_network(str(entry)))
        except ValueError:
            problems.append(f"{variable}: {entry!r} is not a network in CIDR form (e.g. 192.0.2.0/24, host bits 0)")
    return networks


def pod_network_problems(variable: str, networks: Sequence[Any], pod_cidr: Any) -> list[str]:
    """Device or operator networks (of the list ``variable``) inside the pod network: the stack's policies would
    admit pods of any namespace by their addresses (a network around the pod network is fine: the policies leave the
    pod network out of it)."""
    try:
        pods = ipaddress.ip_network(str(pod_cidr))
    except ValueError:
        return []  # the cluster checks name a bad sensorstack_pod_cidr
    return [
        f"{variable}: {network} lies in the pod network (sensorstack_pod_cidr {pods}), so the stack's network "
        "policies would let in pods of every namespace by their addresses: list the networks devices and operators "
        "connect from (the stack's own pods are let in by their labels)"
        for network in map(ipaddress.ip_network, map(str, networks))
        if network.version == pods.version and network.subnet_of(pods)  # type: ignore[arg-type]
    ]


def left_out_node_problems(variable: str, networks: Sequence[Any], left_out: Sequence[str]) -> list[str]:
    """Device or operator networks that are nothing but the address of a node the stack's policies leave out
    (``left_out``: every node but the first control plane, sensorstack_stack_left_out_addresses): no policy can admit
    such a network, and the operator meant to admit that node."""
    addresses = {ipaddress.ip_address(address) for address in left_out}
    return [
        f"{variable}: {network} is the address of a cluster node other than the first control-plane node, which the "
        "stack's network policies leave out: Calico's natOutgoing gives every pod on a node that address towards "
        "another node's node port, so admitting the node would admit pods of every namespace. Remove it"
        for network in map(ipaddress.ip_network, map(str, networks))
        if network.num_addresses == 1 and network.network_address in addresses
    ]


def stack_cluster_problems(settings: Mapping[str, Any], first_control_plane: str, address: str | None) -> list[str]:
    """What would stop the stack on the cluster half-way, found before any host changes: the namespace, the networks
    of devices and operators (the first control-plane node, ``address``, configures InfluxDB and Grafana and runs
    the verify play through the node ports, so it must be in them; another node must not be one of them), and where
    the volumes live."""
    problems: list[str] = []
    components = list(settings.get("sensorstack_stack_components") or [])
    problems += dns_label_problems(settings.get("sensorstack_stack_namespace") or "", "sensorstack_stack_namespace")
    devices = _networks(settings.get("sensorstack_stack_device_cidrs", []), "sensorstack_stack_device_cidrs", problems)
    admins = _networks(settings.get("sensorstack_stack_admin_cidrs", []), "sensorstack_stack_admin_cidrs", problems)
    problems += pod_network_problems("sensorstack_stack_device_cidrs", devices, settings.get("sensorstack_pod_cidr"))
    problems += pod_network_problems("sensorstack_stack_admin_cidrs", admins, settings.get("sensorstack_pod_cidr"))
    left_out = settings.get("sensorstack_stack_left_out_addresses") or []
    problems += left_out_node_problems("sensorstack_stack_device_cidrs", devices, left_out)
    problems += left_out_node_problems("sensorstack_stack_admin_cidrs", admins, left_out)
    node = ipaddress.ip_address(address) if address else None
    verified = {"mosquitto", "telegraf", "influxdb"} <= set(components)
    # Configured through a URL of one's own, or else through the node port; the verify play reads InfluxDB back
    # through its node port either way.
    through_node_ports = [
        component
        for component in ("influxdb", "grafana")
        if component in components
        and (not settings.get(f"{component}_kubernetes_api_url") or (component == "influxdb" and verified))
    ]
    if through_node_ports and (node is None or not any(node in network for network in admins)):
        problems.append(
            f"{first_control_plane} ({address or 'no address'}) configures {' and '.join(through_node_ports)} through "
            "the node ports (and reads the verify play's reading back from InfluxDB's), which only "
            f"sensorstack_stack_admin_cidrs reach: add its network to sensorstack_stack_admin_cidrs (now "
            f"{[str(network) for network in admins]})"
        )
    if verified and (node is None or not any(node in network for network in devices)):
        problems.append(
            f"{first_control_plane} ({address or 'no address'}) publishes the verify play's reading as a device, "
            "through the broker's node port, which only sensorstack_stack_device_cidrs reach: add its network to "
            f"sensorstack_stack_device_cidrs (now {[str(network) for network in devices]})"
        )
    sizes = settings.get("sensorstack_stack_volume_sizes") or {}
    for component in STATEFUL:
        if component in components and not QUANTITY.match(str(sizes.get(component, ""))):
            problems.append(
                f"sensorstack_stack_volume_sizes.{component} must be a size such as 10Gi, got {sizes.get(component)!r}"
            )
    local_class = settings.get("sensorstack_stack_local_storage_class")
    if local_class and settings.get("sensorstack_stack_storage_class") == local_class:
        problems.append(
            f"sensorstack_stack_storage_class: {local_class!r} is the class of the local volumes the stack makes when "
            "the setting is empty, and only then: leave it empty for them, or name a StorageClass of your own"
        )
    if not settings.get("sensorstack_stack_storage_class"):
        node_name = settings.get("sensorstack_stack_storage_node")
        if node_name not in (settings.get("cluster_nodes") or []):
            problems.append(
                f"sensorstack_stack_storage_node must name a cluster node of the inventory that runs workloads (a "
                "worker, or a control plane with kubeadm_control_plane_schedule_workloads) for the local volumes, "
                f"got {node_name!r}; or set sensorstack_stack_storage_class to a StorageClass of your own"
            )
        if not str(settings.get("sensorstack_stack_storage_path", "")).startswith("/"):
            problems.append("sensorstack_stack_storage_path must be an absolute path")
    return problems


def _bind_host(address: str) -> str:
    """The host part of a bind address: ``[::1]:8086`` and ``127.0.0.1:8086`` as well as a bare address."""
    if address.startswith("["):
        return address[1:].partition("]")[0]
    return address.rpartition(":")[0] if address.count(":") == 1 else address


# Bind addresses that mean every interface.
EVERY_INTERFACE = ("", "0.0.0.0", "::", "*")


def local_host(address: Any) -> str:
    """Where a server on this host answers, given the address it binds (a bare address, or with its port): loopback
    when it listens on every interface (empty, ``0.0.0.0``, ``::``), else that address. One answer for every role
    that talks to a co-located server (the role's own API checks, Telegraf, Grafana, the broker's wait)."""
    host = _bind_host(str(address or "").strip())
    if host not in EVERY_INTERFACE:
        return host
    return "::1" if host == "::" else "127.0.0.1"


# An apt source file of sources.list.d: a name without a slash, ending .list or .sources.
APT_SOURCE_FILE = re.compile(r"^/etc/apt/sources[.]list[.]d/[^/]+[.](list|sources)$")


def refused_apt_source_files(files: Any, own_file: str) -> list[str]:
    """The entries of a role's list of source files to remove (another definition of its repository, such as a
    vendor's install guide writes) that must not be removed: anything but a source file of /etc/apt/sources.list.d,
    and the role's own source."""
    return [str(path) for path in files or [] if not APT_SOURCE_FILE.match(str(path)) or str(path) == own_file]


# The fields of a deb822 apt source, in the order sources.list(5) lists them.
DEB822_FIELDS = ("Types", "URIs", "Suites", "Components", "Architectures", "Signed-By")
DEB822_REQUIRED = ("Types", "URIs", "Suites")


def apt_source_files(source: Mapping[str, Any], path: str, replaced: Any, header: str = "") -> list[dict[str, Any]]:
    """sensorstack.iot.files entries for a role's apt repository: every replaced source file absent first (apt refuses
    two definitions of one repository with different Signed-By values, and then reads no source at all), then the
    role's deb822 source at ``path``, root's, 0644. ``source``: {field: value or list of values} of DEB822_FIELDS.
    Rendered as text on the controller: ansible.builtin.deb822_repository needs python3-debian on the host, which a
    minimal Debian does not have."""
    unknown = sorted(set(source) - set(DEB822_FIELDS))
    missing = [name for name in DEB822_REQUIRED if not source.get(name)]
    if unknown or missing:
        raise AnsibleFilterError(
            f"apt source {path}: unknown fields {unknown or 'none'}, missing fields {missing or 'none'}"
        )
    values = {
        name: [str(item) for item in (source[name] if isinstance(source[name], list | tuple) else [source[name]])]
        for name in DEB822_FIELDS
        if source.get(name) not in (None, "", [])
    }
    for name, items in values.items():
        if any(not item or item != item.strip() or any(mark.isspace() for mark in item) for item in items):
            raise AnsibleFilterError(f"apt source {path}: {name} has an empty value or one with spaces: {items}")
    # sources.list(5): a suite that ends in '/' is a flat repository's path, and then no component may follow; any
    # other suite needs at least one. apt refuses the file otherwise, and then reads no source at all.
    flat = [suite.endswith("/") for suite in values["Suites"]]
    if any(flat) != all(flat) or all(flat) == bool(values.get("Components")):
        raise AnsibleFilterError(
            f"apt source {path}: a suite ending in '/' (a flat repository) takes no components, any other suite at "
            f"least one; got Suites {values['Suites']} and Components {values.get('Components', [])}"
        )
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    lines += [f"{name}: {' '.join(items)}" for name, items in values.items()]
    own = {"path": path, "owner": "root", "group": "root", "mode": "0644", "content": "\n".join(lines) + "\n"}
    return [{"path": str(file), "state": "absent"} for file in replaced or []] + [own]


def pod_bind_problems(value: Any, variable: str) -> list[str]:
    """A fixed bind address, which one config model would carry from an edge host into a pod: on loopback the probes
    and the Service cannot reach the pod, and any other fixed address is not the pod's (it gets its own when it
    starts), so the server could not bind it. ``value``: an address, or a list of entries with an ``address`` key
    (Mosquitto's listeners). Empty, ``0.0.0.0`` and ``::`` (every interface) pass."""
    if isinstance(value, str):
        entries = [(variable, value)]
    else:
        entries = [
            (f"{variable}[{index}].address", str(entry.get("address") or ""))
            for index, entry in enumerate(value or [])
            if isinstance(entry, Mapping)
        ]
    remedy = "leave it empty for the cluster (group_vars of the control plane)"
    problems = []
    for name, address in entries:
        host = _bind_host(address.strip())
        if host in EVERY_INTERFACE:
            continue
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if loopback:
            problems.append(
                f"{name} ({address}) is a loopback address: on Kubernetes the probes and the Service reach the pod on "
                f"its own address; {remedy}"
            )
        else:
            problems.append(
                f"{name} ({address}) is a fixed address: on Kubernetes a pod gets its own address when it starts, so "
                f"the server could not bind this one; {remedy}"
            )
    return problems


# Settings named like these hold credentials: [smtp] password, [security] secret_key, an OAuth client_secret,
# [rendering] renderer_token, an access or account key (grafana.ini); [http] shared-secret (influxdb.conf).
CREDENTIAL_SETTING = re.compile(
    r"(password|secret|secret_key|token|api_key|access_key|account_key|private_key)$", re.IGNORECASE
)


def names_a_credential(setting: Any) -> bool:
    """Whether a configuration setting's name says it holds a credential (its value is for a Secret)."""
    return bool(CREDENTIAL_SETTING.search(str(setting)))


# An environment variable's name, and what systemd's EnvironmentFile= unescapes inside double quotes.
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ENVIRONMENT_ESCAPES = {"\\": "\\\\", '"': '\\"', "`": "\\`", "$": "\\$"}


def environment_strings(variables: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment (Telegraf's, InfluxDB's) as the text each variable holds, on either platform: the
    Secret's values on Kubernetes, the environment file's on systemd. Booleans as ``true``/``false``; a name that is
    not a variable name, a value that is not a single line of text, is refused."""
    if not isinstance(variables, Mapping):
        raise AnsibleFilterError("an environment must be a mapping of variable names to values")
    strings = {}
    for name in sorted(variables):
        value = variables[name]
        if not isinstance(name, str) or not VARIABLE_NAME.match(name):
            raise AnsibleFilterError(f"environment variable name {name!r} is not a valid name (letters, digits, _)")
        if value is None or isinstance(value, (Mapping, list, tuple)):
            raise AnsibleFilterError(f"environment variable {name} needs a single text value")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if any(character in text for character in "\n\r\0"):
            raise AnsibleFilterError(f"environment variable {name}: the value holds a line break or NUL")
        strings[name] = text
    return strings


def systemd_environment(variables: Mapping[str, Any]) -> str:
    """Render ``NAME="value"`` lines that systemd's ``EnvironmentFile=`` reads back to exactly ``value``.

    Values are double-quoted with backslash escapes for the characters systemd unescapes there, so passwords
    holding quotes, backslashes or dollar signs survive; newlines and NUL are refused (a single line each).
    """
    lines = []
    for name, text in environment_strings(variables).items():
        escaped = "".join(ENVIRONMENT_ESCAPES.get(character, character) for character in text)
        lines.append(f'{name}="{escaped}"')
    return "".join(f"{line}\n" for line in lines)


# kube-apiserver's --service-node-port-range, which kubeadm leaves at its default.
NODE_PORTS = range(30000, 32768)


def node_ports_held(services: Any) -> list[dict[str, Any]]:
    """The node ports the cluster's Services hold, [{service: namespace/name, node_port}], from a list of Services
    (the kubernetes.core.k8s lookup's)."""
    held = []
    for service in services or []:
        metadata = service.get("metadata") or {}
        name = f"{metadata.get('namespace')}/{metadata.get('name')}"
        for port in (service.get("spec") or {}).get("ports") or []:
            if port.get("nodePort"):
                held.append({"service": name, "node_port": int(port["nodePort"])})
    return held


def claimed_variable(key: Any, variable: str | None) -> str:
    """The variable a claimed node port comes from: ``key`` itself, or that key of the dict ``variable``."""
    return f"{variable}[{key}]" if variable else str(key)


def node_port_number(port: Any) -> int | None:
    return int(port) if str(port).isdigit() else None


def node_ports_claim(
    claims: Any, claimed: Mapping[Any, Any], namespace: str, name: str, variable: str | None = None
) -> list[dict[str, Any]]:
    """The node ports the stack's services claim in this run, [{service, node_port, variable}], with the claims of
    ``namespace``/``name`` replaced by ``claimed`` (as in node_port_problems): the services checked after it find a
    port it claims before the cluster holds it (a first deploy)."""
    own = f"{namespace}/{name}"
    kept = [entry for entry in claims or [] if entry.get("service") != own]
    for key, port in claimed.items():
        number = node_port_number(port)
        if number is not None:
            kept.append({"service": own, "node_port": number, "variable": claimed_variable(key, variable)})
    return kept


def node_port_problems(
    claimed: Mapping[Any, Any], held: Any, namespace: str, name: str, variable: str | None = None
) -> list[str]:
    """A service's node ports, {variable: port} (or {key: port} of the dict ``variable``): each in the range the API
    server allocates from, none twice, and none held by a Service other than its own (``namespace``/``name``): one
    of the cluster (a second stack, another namespace) or one the run claims for another of the stack's services
    (node_ports_claim). The API would refuse either ("provided port is already allocated") after the role's other
    objects."""
    problems = []
    own = f"{namespace}/{name}"
    holders = {entry["node_port"]: entry for entry in held or [] if entry.get("service") != own}
    seen: dict[int, str] = {}
    for key, port in claimed.items():
        variable_named = claimed_variable(key, variable)
        number = node_port_number(port)
        if number not in NODE_PORTS:
            problems.append(
                f"{variable_named} ({port}) must be a node port from {NODE_PORTS.start} to {NODE_PORTS.stop - 1},"
                " the range the cluster's API server allocates from"
            )
        elif number in seen:
            problems.append(
                f"{variable_named} ({port}) is {seen[number]} too: one Service cannot use a node port twice"
            )
        elif number in holders and holders[number].get("variable"):
            problems.append(
                f"{variable_named} ({port}) is {holders[number]['variable']} of the Service"
                f" {holders[number]['service']} too: two Services cannot share a node port"
            )
        elif number in holders:
            problems.append(
                f"{variable_named} ({port}) is held by the Service {holders[number]['service']} of the cluster:"
                " choose another node port, or remove that Service"
            )
        if number is not None:
            seen.setdefault(number, variable_named)
    return problems


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "stack_environment_strings": environment_strings,
            "stack_systemd_environment": systemd_environment,
            "stack_node_ports_held": node_ports_held,
            "stack_node_port_problems": node_port_problems,
            "stack_node_ports_claim": node_ports_claim,
            "dns_label_problems": dns_label_problems,
            "stack_user_password": stack_user_password,
            "stack_first_database": stack_first_database,
            "stack_cluster_problems": stack_cluster_problems,
            "stack_pod_bind_problems": pod_bind_problems,
            "stack_local_host": local_host,
            "stack_refused_apt_source_files": refused_apt_source_files,
            "stack_apt_source_files": apt_source_files,
        }
