"""The mosquitto role's semantic checks and its bridges' helpers.

``sensorstack.iot.mosquitto_problems(settings)`` takes the role's variables as one mapping (``mosquitto_listeners``,
``mosquitto_tls_cert``, ``mosquitto_tls_key``, ``mosquitto_tls_ca``, ``mosquitto_acl_patterns``,
``mosquitto_acl_anonymous``, ``mosquitto_users``, ``mosquitto_bridges``, ``mosquitto_bridge_dir``,
``mosquitto_config_dir``, ``mosquitto_platform``, ``mosquitto_config_extra``, ``mosquitto_kubernetes_extra_egress``)
and lists what is wrong, each message naming the variable and never a password. The role calls it before rendering;
the preflight play calls it, through the role's ``validate.yml``, on every host that runs the broker before any host
changes. ``mosquitto_bridge_tls_path``, ``mosquitto_bridge_tls_files`` and ``mosquitto_bridge_egress`` give the
bridges' TLS files and, on Kubernetes, the egress their IP addresses need; ``mosquitto_node_ports`` the node port of
each listener. Pure; unit-tested in ``tests/unit/test_stack_checks.py``, ``tests/unit/test_mosquitto_bridges.py``
and ``tests/unit/test_node_ports.py``.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

ACL_ACCESS = ("read", "write", "readwrite", "deny")
BRIDGE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
BRIDGE_DIRECTIONS = ("out", "in", "both")
BRIDGE_PROTOCOLS = ("mqttv31", "mqttv311", "mqttv50")
BRIDGE_DEFAULT_PORT = 1883

# A bridge's TLS files in mosquitto_bridge_dir: {key of the bridge: file name after the bridge's name}.
BRIDGE_TLS_FILES = {"tls_ca": "ca.crt", "tls_cert": "crt", "tls_key": "key"}
# What each holds: a PEM block (a key in PKCS#8, or OpenSSL's EC or RSA form; never encrypted: the broker starts
# unattended and cannot ask for a passphrase).
BRIDGE_TLS_PEM = {
    "tls_ca": (re.compile(r"-----BEGIN CERTIFICATE-----"), "-----BEGIN CERTIFICATE-----"),
    "tls_cert": (re.compile(r"-----BEGIN CERTIFICATE-----"), "-----BEGIN CERTIFICATE-----"),
    "tls_key": (re.compile(r"-----BEGIN (?:EC |RSA )?PRIVATE KEY-----"), "-----BEGIN PRIVATE KEY-----"),
}
# The broker's own folders and files, which the bridges' folder may not be or hold.
BROKER_PATHS = (
    "mosquitto_config_dir",
    "mosquitto_persistence_location",
    "mosquitto_tls_dir",
    "mosquitto_password_file",
    "mosquitto_acl_file",
)
# mosquitto.conf settings whose value is a credential: on Kubernetes mosquitto.conf is a ConfigMap.
CREDENTIAL_SETTINGS = ("remote_password", "local_password", "bridge_psk")


def _entries(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        return []
    return [entry for entry in value if isinstance(entry, Mapping)]


# A listener's own TLS file settings and the role variables whose PEM text the role places as that file.
LISTENER_TLS_FILES = {"certfile": "mosquitto_tls_cert", "keyfile": "mosquitto_tls_key", "cafile": "mosquitto_tls_ca"}


def _listener_problems(settings: Mapping[str, Any]) -> list[str]:
    listeners = _entries(settings.get("mosquitto_listeners"))
    problems = []
    repeated = sorted(
        str(port) for port, count in Counter(entry.get("port") for entry in listeners).items() if count > 1
    )
    if repeated:
        problems.append(f"mosquitto_listeners: port {', '.join(repeated)} is used by more than one listener")
    for listener in listeners:
        if not listener.get("tls"):
            continue
        where = f"mosquitto_listeners: the TLS listener on port {listener.get('port')}"
        for own in ("certfile", "keyfile"):
            shared = LISTENER_TLS_FILES[own]
            if not listener.get(own, settings.get(shared, "")):
                problems.append(f"{where} needs {own} (or {shared})")
        if listener.get("require_certificate") and not listener.get("cafile", settings.get("mosquitto_tls_ca", "")):
            problems.append(f"{where}: require_certificate needs cafile (or mosquitto_tls_ca)")
        if listener.get("use_identity_as_username") and not listener.get("require_certificate"):
            problems.append(f"{where}: use_identity_as_username needs require_certificate")
        problems += _kubernetes_listener_file_problems(settings, listener, where)
    return problems


def _kubernetes_listener_file_problems(
    settings: Mapping[str, Any], listener: Mapping[str, Any], where: str
) -> list[str]:
    """On Kubernetes the broker's pod holds only the files the role places (the Secret mosquitto): a TLS file a
    listener names by path must be one of them, or the broker cannot start."""
    if settings.get("mosquitto_platform") != "kubernetes":
        return []
    placed = set(settings.get("mosquitto_tls_placed_files") or [])
    return [
        f"{where} names {key} {listener[key]}, which the broker's pod does not have on Kubernetes (its files come from"
        f" the Secret mosquitto alone): give the PEM text in {shared} and leave {key} out"
        for key, shared in LISTENER_TLS_FILES.items()
        if listener.get(key) and listener[key] not in placed
    ]


def _acl_problems(settings: Mapping[str, Any]) -> list[str]:
    rules: list[tuple[str, Mapping[str, Any]]] = [
        (variable, rule)
        for variable in ("mosquitto_acl_patterns", "mosquitto_acl_anonymous")
        for rule in _entries(settings.get(variable))
    ]
    for user in _entries(settings.get("mosquitto_users")):
        rules += [(f"mosquitto_users[{user.get('name')}].topics", rule) for rule in _entries(user.get("topics"))]
    problems = []
    for variable, rule in rules:
        topic = str(rule.get("topic") or "")
        access = rule.get("access", "readwrite")
        if not topic:
            problems.append(f"{variable}: a rule has no topic")
        if access not in ACL_ACCESS:
            problems.append(
                f"{variable}: the rule {topic or '(no topic)'} has access {access!r}; use {', '.join(ACL_ACCESS)}"
            )
    return problems


def bridge_address(address: str) -> tuple[str, int | None]:
    """``host[:port]`` as (host, port), the port 1883 when omitted and None when it is not a port number."""
    host, separator, port = address.rpartition(":")
    if not separator:
        return address, BRIDGE_DEFAULT_PORT
    return host, int(port) if port.isdigit() and 0 < int(port) < 65536 else None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _one_word(value: Any) -> bool:
    return bool(value) and isinstance(value, str) and not re.search(r"\s", value)


def _bridge_topic_problems(where: str, topics: Any) -> list[str]:
    entries = _entries(topics)
    if not entries:
        return [f"{where}: topics must list at least one {{pattern}}"]
    problems = []
    for topic in entries:
        pattern = topic.get("pattern")
        if not _one_word(pattern):
            problems.append(f"{where}: a topic pattern must be one word without spaces (got {pattern!r})")
        if topic.get("direction", "out") not in BRIDGE_DIRECTIONS:
            problems.append(
                f"{where}: the topic {pattern} has direction {topic.get('direction')!r}; use out, in or both"
            )
        if str(topic.get("qos", 1)) not in ("0", "1", "2"):
            problems.append(f"{where}: the topic {pattern} has qos {topic.get('qos')!r}; use 0, 1 or 2")
        for key in ("local_prefix", "remote_prefix"):
            prefix = topic.get(key) or ""
            if prefix and (not _one_word(prefix) or "+" in prefix or "#" in prefix):
                problems.append(f"{where}: the topic {pattern} has {key} {prefix!r}: one word, no + or #")
    return problems


def _bridge_dir_problems(settings: Mapping[str, Any]) -> list[str]:
    """The bridges' folder is the role's whole (emptied of anything else, removed with the last bridge): it may not be
    or hold a folder or file of the broker's own (configuration, persistence, TLS, password and ACL files)."""
    folder = str(settings.get("mosquitto_bridge_dir") or "")
    if not posixpath.isabs(folder):
        return [f"mosquitto_bridge_dir must be an absolute path (got {folder!r})"]
    folder = posixpath.normpath(folder)
    inside = folder.rstrip("/") + "/"
    own = [
        (variable, posixpath.normpath(str(settings[variable])))
        for variable in BROKER_PATHS
        if settings.get(variable) and posixpath.isabs(str(settings[variable]))
    ]
    return [
        f"mosquitto_bridge_dir ({folder}) must be a folder of its own: the role removes what else it holds, and it"
        f" holds {variable} ({path})"
        for variable, path in own
        if path == folder or path.startswith(inside)
    ]


def _bridge_tls_problems(where: str, bridge: Mapping[str, Any]) -> list[str]:
    """A client certificate comes with its key, over TLS (a bridge speaks TLS only with a CA), both as PEM text: a
    path in their place would be written into the file as it stands. The messages never show the values."""
    has = {key: bool(bridge.get(key)) for key in BRIDGE_TLS_FILES}
    problems = []
    if has["tls_cert"] != has["tls_key"]:
        problems.append(f"{where}: tls_cert and tls_key (the bridge's client certificate) go together")
    if (has["tls_cert"] or has["tls_key"]) and not has["tls_ca"]:
        problems.append(f"{where}: a client certificate needs tls_ca, the CA of the remote broker's certificate")
    for key, (pattern, example) in BRIDGE_TLS_PEM.items():
        text = str(bridge.get(key) or "")
        if has[key] and "ENCRYPTED" in text:
            problems.append(f"{where}: {key} is encrypted, and the broker cannot ask for its passphrase")
        elif has[key] and not pattern.search(text):
            problems.append(f"{where}: {key} must be PEM text ({example}), not a path")
    return problems


def _bridge_problems(settings: Mapping[str, Any]) -> list[str]:
    bridges = _entries(settings.get("mosquitto_bridges"))
    on_kubernetes = settings.get("mosquitto_platform") == "kubernetes"
    problems = []
    names = [str(bridge.get("name") or "") for bridge in bridges]
    repeated = sorted(name for name, count in Counter(names).items() if count > 1 and name)
    if repeated:
        problems.append(f"mosquitto_bridges: the name {', '.join(repeated)} is used by more than one bridge")
    if "mosquitto_bridge_dir" in settings:
        problems += _bridge_dir_problems(settings)
    for index, bridge in enumerate(bridges):
        name = names[index]
        where = f"mosquitto_bridges[{name or index}]"
        if not BRIDGE_NAME.match(name):
            problems.append(f"{where}: name must be letters, digits, - and _ (got {name!r})")
        addresses = bridge.get("addresses")
        if not isinstance(addresses, Sequence) or isinstance(addresses, str) or not addresses:
            problems.append(f"{where}: addresses must list the remote broker as host[:port]")
            addresses = []
        for address in addresses:
            host, port = bridge_address(str(address))
            if str(address).count(":") > 1:
                problems.append(
                    f"{where}: the address {address!r} is an IPv6 address, which Mosquitto's bridges cannot take"
                    " (they split host and port at the first colon): use a host name"
                )
            elif not _one_word(address) or not host or port is None:
                problems.append(f"{where}: the address {address!r} is not host[:port] with a port from 1 to 65535")
            elif on_kubernetes and not _is_ip(host) and not settings.get("mosquitto_kubernetes_extra_egress"):
                problems.append(
                    f"{where}: on Kubernetes the namespace denies the broker's egress, and only an IP address is"
                    f" allowed by itself: add a rule for {host} to mosquitto_kubernetes_extra_egress"
                )
        problems += _bridge_topic_problems(where, bridge.get("topics"))
        for key in ("remote_username", "remote_clientid"):
            if bridge.get(key) not in (None, "") and not _one_word(str(bridge.get(key))):
                problems.append(f"{where}: {key} must be one word without spaces")
        password = "" if bridge.get("remote_password") is None else str(bridge.get("remote_password"))
        if password and not bridge.get("remote_username"):
            problems.append(f"{where}: remote_password needs remote_username")
        if password and (password != password.strip() or "\n" in password):
            problems.append(f"{where}: remote_password may not start or end with a space or hold a line break")
        problems += _bridge_tls_problems(where, bridge)
        if bridge.get("protocol_version", "mqttv311") not in BRIDGE_PROTOCOLS:
            problems.append(f"{where}: protocol_version must be one of {', '.join(BRIDGE_PROTOCOLS)}")
        problems += _lines_problems(f"{where}.extra", bridge.get("extra"))
    return problems


def _lines_problems(variable: str, lines: Any) -> list[str]:
    """mosquitto.conf lines must come as a list of single lines (a string would be written a character a line)."""
    if lines is None:
        return []
    if isinstance(lines, str) or not isinstance(lines, Sequence):
        return [f"{variable} must be a list of mosquitto.conf lines"]
    if any("\n" in str(line) for line in lines):
        return [f"{variable}: each entry must be one line"]
    return []


def _credential_settings(lines: Any) -> list[str]:
    """The credential settings among mosquitto.conf lines (their names: never a value)."""
    names = [str(line).strip().split(" ", 1)[0] for line in lines or []]
    return [name for name in names if name in CREDENTIAL_SETTINGS]


def _clear_credential_problems(settings: Mapping[str, Any]) -> list[str]:
    """The lines of mosquitto_config_extra and the listeners' extra; on Kubernetes, where mosquitto.conf is a
    ConfigMap, no credential among them (it would be readable there)."""
    sources = [("mosquitto_config_extra", settings.get("mosquitto_config_extra"))] + [
        (f"mosquitto_listeners: the listener on port {listener.get('port')}, extra", listener.get("extra"))
        for listener in _entries(settings.get("mosquitto_listeners"))
    ]
    malformed = [problem for variable, lines in sources for problem in _lines_problems(variable, lines)]
    if malformed or settings.get("mosquitto_platform") != "kubernetes":
        return malformed
    return [
        f"{variable}: on Kubernetes mosquitto.conf is the ConfigMap mosquitto-config, readable by whoever reads"
        f" ConfigMaps; declare the bridge with its {setting} in mosquitto_bridges, whose file is a key of the Secret"
        " mosquitto"
        for variable, lines in sources
        for setting in _credential_settings(lines)
    ]


def mosquitto_problems(settings: Mapping[str, Any]) -> list[str]:
    """Listeners sharing a port, TLS listeners without their files, ACL rules without a topic or a known access,
    bridges the broker would refuse or could not reach, and credentials bound for a ConfigMap."""
    return (
        _listener_problems(settings)
        + _acl_problems(settings)
        + _bridge_problems(settings)
        + _clear_credential_problems(settings)
    )


def mosquitto_node_ports(listeners: Sequence[Mapping[str, Any]], node_ports: Mapping[Any, Any]) -> dict[str, Any]:
    """{listener port: node port} of the listeners mosquitto_kubernetes_node_ports names (as a string or a number);
    a listener it does not name gets a node port the API server picks."""
    named = {str(key): value for key, value in (node_ports or {}).items()}
    ports = [str(listener.get("port")) for listener in listeners or []]
    return {port: named[port] for port in ports if port in named}


def mosquitto_bridge_tls_path(name: str, directory: str, key: str) -> str:
    """Where the file of the bridge ``name``'s ``key`` (tls_ca, tls_cert or tls_key) lives."""
    return f"{directory.rstrip('/')}/{name}.{BRIDGE_TLS_FILES[key]}"


def mosquitto_bridge_tls_files(bridges: Sequence[Mapping[str, Any]], directory: str) -> dict[str, str]:
    """{path: PEM text} of every bridge's CA, client certificate and key."""
    return {
        mosquitto_bridge_tls_path(str(bridge["name"]), directory, key): str(bridge[key]).strip() + "\n"
        for bridge in bridges
        for key in BRIDGE_TLS_FILES
        if bridge.get(key)
    }


def mosquitto_bridge_egress(bridges: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """NetworkPolicy egress rules for every bridge address given as an IP address, each on its own port."""
    rules: list[dict[str, Any]] = []
    for bridge in bridges:
        for address in bridge.get("addresses") or []:
            host, port = bridge_address(str(address))
            if not _is_ip(host) or port is None:
                continue
            cidr = str(ipaddress.ip_network(host))
            rule = {"to": [{"ipBlock": {"cidr": cidr}}], "ports": [{"protocol": "TCP", "port": port}]}
            if rule not in rules:
                rules.append(rule)
    return rules


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "mosquitto_problems": mosquitto_problems,
            "mosquitto_node_ports": mosquitto_node_ports,
            "mosquitto_bridge_tls_path": mosquitto_bridge_tls_path,
            "mosquitto_bridge_tls_files": mosquitto_bridge_tls_files,
            "mosquitto_bridge_egress": mosquitto_bridge_egress,
        }
