"""The mosquitto role's semantic checks: what its argument spec cannot say about listeners, TLS and the ACL.

``sensorstack.iot.mosquitto_problems(settings)`` takes the role's variables as one mapping (``mosquitto_listeners``,
``mosquitto_tls_cert``, ``mosquitto_tls_key``, ``mosquitto_tls_ca``, ``mosquitto_acl_patterns``,
``mosquitto_acl_anonymous``, ``mosquitto_users``) and lists what is wrong, each message naming the variable.
The role calls it before rendering; the preflight play calls it, through the role's ``validate.yml``, on every
host that runs the broker before any host changes. Pure; unit-tested in ``tests/unit/test_stack_checks.py``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

ACL_ACCESS = ("read", "write", "readwrite", "deny")


def _entries(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        return []
    return [entry for entry in value if isinstance(entry, Mapping)]


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
        for own, shared in (("certfile", "mosquitto_tls_cert"), ("keyfile", "mosquitto_tls_key")):
            if not listener.get(own, settings.get(shared, "")):
                problems.append(f"{where} needs {own} (or {shared})")
        if listener.get("require_certificate") and not listener.get("cafile", settings.get("mosquitto_tls_ca", "")):
            problems.append(f"{where}: require_certificate needs cafile (or mosquitto_tls_ca)")
        if listener.get("use_identity_as_username") and not listener.get("require_certificate"):
            problems.append(f"{where}: use_identity_as_username needs require_certificate")
    return problems


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


def mosquitto_problems(settings: Mapping[str, Any]) -> list[str]:
    """Listeners sharing a port, TLS listeners without their files, ACL rules without a topic or a known access."""
    return _listener_problems(settings) + _acl_problems(settings)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"mosquitto_problems": mosquitto_problems}
