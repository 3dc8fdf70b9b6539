"""Pure helpers for the telegraf role: the configuration document from plugin lists, the environment file, versions.

The role renders once (``tasks/render.yml``) and each platform places the result, so these functions return data
and text only; the TOML itself is written by ``sensorstack.iot.to_toml``. Unit-tested in
``tests/unit/test_telegraf_config.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.sensorstack.iot.plugins.filter.stack import names_a_credential, present_entries

KINDS = ("inputs", "outputs", "processors", "aggregators")
# Telegraf plugin names: lower case words joined by underscores (mqtt_consumer, influxdb_v2, ...).
PLUGIN_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
VERSION = re.compile(r"\b[Tt]elegraf\s+v?(\d+)\.(\d+)\.(\d+)")
# The version in an image reference's tag: registry:5000/telegraf:1.37.2-alpine -> 1.37.2.
IMAGE_TAG_VERSION = re.compile(r":v?(\d+\.\d+\.\d+)[^:/]*$")


def telegraf_document(
    agent: Mapping[str, Any],
    plugins: Mapping[str, Sequence[Mapping[str, Any]]],
    global_tags: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the telegraf.conf data: ``[global_tags]``, ``[agent]``, then ``[[<kind>.<plugin>]]`` tables.

    ``plugins`` maps each kind (inputs, outputs, processors, aggregators) to a list of ``{plugin, options}``
    entries, the variable name of each list being ``telegraf_<kind>``. Entries of the same plugin keep their order
    inside that plugin's array of tables; an entry with ``enabled: false`` is left out.
    """
    if not isinstance(agent, Mapping):
        raise AnsibleFilterError(f"telegraf_agent must be a mapping of [agent] options, not {type(agent).__name__}")
    unknown = sorted(set(plugins) - set(KINDS))
    if unknown:
        raise AnsibleFilterError(f"telegraf_document: unknown plugin kinds {unknown}; use {list(KINDS)}")
    document: dict[str, Any] = {}
    if global_tags:
        if not isinstance(global_tags, Mapping):
            raise AnsibleFilterError("telegraf_global_tags must be a mapping of tag names to values")
        document["global_tags"] = {str(key): str(value) for key, value in global_tags.items()}
    document["agent"] = dict(agent)
    for kind in KINDS:
        tables: dict[str, list[dict[str, Any]]] = {}
        for index, entry in enumerate(plugins.get(kind) or []):
            where = f"telegraf_{kind}[{index}]"
            name, options = _plugin_entry(entry, where)
            if name is None:
                continue
            tables.setdefault(name, []).append(options)
        if tables:
            document[kind] = tables
    return document


def _plugin_entry(entry: Any, where: str) -> tuple[str | None, dict[str, Any]]:
    if not isinstance(entry, Mapping):
        raise AnsibleFilterError(f"{where} must be a mapping with 'plugin' and 'options', not {type(entry).__name__}")
    extra = sorted(set(entry) - {"plugin", "options", "enabled"})
    if extra:
        raise AnsibleFilterError(f"{where} has unknown keys {extra}: plugin settings go under 'options'")
    name = entry.get("plugin")
    if not isinstance(name, str) or not PLUGIN_NAME.match(name):
        raise AnsibleFilterError(f"{where}.plugin must be a Telegraf plugin name such as mqtt_consumer, not {name!r}")
    options = entry.get("options") or {}
    if not isinstance(options, Mapping):
        raise AnsibleFilterError(f"{where}.options ({name}) must be a mapping of the plugin's settings")
    if not entry.get("enabled", True):
        return None, {}
    return name, dict(options)


def telegraf_version(output: str) -> str:
    """The ``X.Y.Z`` version out of ``telegraf --version`` (``Telegraf 1.37.2 (git: ...)``)."""
    match = VERSION.search(output or "")
    if match is None:
        raise AnsibleFilterError(f"cannot read a Telegraf version from {output!r}")
    return ".".join(match.groups())


def image_version(image: str, pinned: str) -> str:
    """The ``X.Y.Z`` of an image reference's tag; ``pinned`` when it has none (a digest, ``latest``)."""
    match = IMAGE_TAG_VERSION.search(str(image).split("@", 1)[0])
    return match[1] if match else str(pinned)


def telegraf_environment_references(document: Any) -> list[str]:
    """Names of the ``${VAR}`` references in every string of the configuration data, sorted."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.update(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?][^}]*)?\}", value))
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    walk(document)
    return sorted(found)


# A value that is nothing but one ${NAME} reference: Telegraf reads it from its environment (a Secret on Kubernetes).
ENVIRONMENT_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")


# Plugin settings that name a file of the host Telegraf runs on (TLS certificates, keys and CAs).
HOST_FILE_SETTING = re.compile(r"^tls_(ca|cert|key)$")


def settings_where(document: Any, matches: Callable[[str, Any], bool], where: str = "telegraf.conf") -> list[str]:
    """The paths of the settings of the configuration data that ``matches`` (name, value), in document order."""
    found: list[str] = []
    if isinstance(document, Mapping):
        for key, value in document.items():
            path = f"{where}.{key}"
            found += [path] if matches(str(key), value) else settings_where(value, matches, path)
    elif isinstance(document, (list, tuple)):
        for index, item in enumerate(document):
            found += settings_where(item, matches, f"{where}[{index}]")
    return found


def clear_credential(name: str, value: Any) -> bool:
    """A setting whose name says it holds a credential (``names_a_credential``: password, token, ...), with a value
    other than one ``${NAME}`` reference."""
    if not names_a_credential(name) or not isinstance(value, str):
        return False
    return bool(value) and not ENVIRONMENT_REFERENCE.match(value)


def host_file(name: str, value: Any) -> bool:
    """A TLS file setting with a path."""
    return bool(HOST_FILE_SETTING.match(name)) and bool(value)


def plain_mqtt_listener(listeners: Any) -> dict[str, Any]:
    """The first listener in mosquitto_listeners that speaks plain MQTT (no TLS, not websockets)."""
    for listener in present_entries(listeners, "mosquitto_listeners"):
        if not listener.get("tls", False) and listener.get("protocol", "mqtt") == "mqtt":
            return dict(listener)
    raise AnsibleFilterError(
        "mosquitto_listeners has no plain MQTT listener: set telegraf_mqtt_servers (ssl://host:port with "
        "telegraf_mqtt_tls_ca for a TLS listener)"
    )


def plain_mqtt_port(listeners: Any) -> int:
    """The port of the first listener in mosquitto_listeners that speaks plain MQTT."""
    return int(plain_mqtt_listener(listeners)["port"])


def default_retention_policy(policies: Any, database: str) -> str:
    """The retention policy marked default for ``database`` in influxdb_retention_policies, or "" if none is."""
    for policy in present_entries(policies, "influxdb_retention_policies"):
        if policy.get("database") == database and policy.get("default", False):
            return str(policy["name"])
    return ""


def telegraf_problems(
    document: Mapping[str, Any],
    environment_names: Sequence[str] = (),
    secret_sources: Mapping[str, str] | None = None,
    platform: str = "systemd",
) -> list[str]:
    """What Telegraf would refuse at start, or accept and then misbehave with, as messages naming the variable.

    Checks that there is an input and an output, that every mqtt_consumer has servers and topics and, with a
    persistent session, QoS 1 or 2 and a client id (without them the broker discards the session), and that every
    ``${NAME}`` reference has a value in the environment file (Telegraf would keep the literal text otherwise).
    ``secret_sources`` maps the stack's environment names to the variables that supply them. On Kubernetes, where
    telegraf.conf is a ConfigMap, no credential may be written into it in clear text.
    """
    problems = []
    for kind in ("inputs", "outputs"):
        if not document.get(kind):
            problems.append(f"telegraf_{kind}: Telegraf needs at least one enabled {kind[:-1]} plugin")
    for index, options in enumerate(document.get("inputs", {}).get("mqtt_consumer", [])):
        where = f"telegraf_inputs (mqtt_consumer #{index + 1})"
        for key in ("servers", "topics"):
            if not options.get(key):
                problems.append(f"{where}: {key} is empty")
        if options.get("persistent_session"):
            if int(options.get("qos", 0)) < 1:
                problems.append(f"{where}: persistent_session needs qos 1 or 2 (telegraf_mqtt_qos)")
            if not options.get("client_id"):
                problems.append(f"{where}: persistent_session needs a client_id (telegraf_mqtt_client_id)")
    sources = secret_sources or {}
    for name in telegraf_environment_references(document):
        if name not in environment_names:
            source = sources.get(name, f"telegraf_environment.{name}")
            problems.append(f"telegraf.conf references ${{{name}}}, which has no value: set {source}")
    if platform == "kubernetes":
        problems += [
            f"{path} holds a credential in clear text, and on Kubernetes telegraf.conf is the ConfigMap "
            "telegraf-config, readable by whoever reads ConfigMaps: put the value in telegraf_environment (the Secret "
            "telegraf-environment) and write ${NAME} in its place (telegraf_inputs, telegraf_outputs, "
            "telegraf_mqtt_options, telegraf_influxdb_options)"
            for path in settings_where(document, clear_credential)
        ]
        problems += [
            f"{path} names a file, and on Kubernetes the Telegraf pod holds no file but telegraf.conf: Telegraf would "
            "not start. Inside the cluster it reaches the broker and InfluxDB through their Services, plain, which "
            "the namespace's policies keep to the stack's pods (telegraf_mqtt_tls_ca and TLS settings are for "
            "systemd)"
            for path in settings_where(document, host_file)
        ]
    return problems


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "telegraf_default_retention_policy": default_retention_policy,
            "telegraf_document": telegraf_document,
            "telegraf_plain_mqtt_port": plain_mqtt_port,
            "telegraf_plain_mqtt_listener": plain_mqtt_listener,
            "telegraf_environment_references": telegraf_environment_references,
            "telegraf_problems": telegraf_problems,
            "telegraf_version": telegraf_version,
            "image_version": image_version,
        }
