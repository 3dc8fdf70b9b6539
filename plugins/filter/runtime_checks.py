"""Pure checks of the container runtime settings (roles docker and containerd) that an argument spec cannot express.

Each function takes the role's variables as a mapping and returns a list of messages, empty when all is well;
every message names the variable to fix. A variable missing from the mapping is not checked, so the preflight
play can pass the inventory's variables alone and leave the roles' defaults out.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

# daemon.json keys that a dedicated variable of the docker role sets, or that the systemd unit already passes as
# a flag (dockerd refuses to start when a setting comes both as a flag and from daemon.json).
DOCKER_OWNED_KEYS = {
    "exec-opts": "set the cgroup driver with docker_cgroup_driver",
    "log-driver": "use docker_log_driver",
    "log-opts": "use docker_log_options",
    "registry-mirrors": "use docker_registry_mirrors",
    "data-root": "use docker_data_root",
    "hosts": "docker.service already passes -H fd://; add listeners with a systemd drop-in",
    "containerd": "docker.service already passes --containerd",
}
CONTAINERD_CAPABILITIES = frozenset({"pull", "resolve", "push"})
# A registry as image names spell it: a DNS name or [IPv6] address with an optional port, or containerd's
# catch-all directory name.
_REGISTRY = re.compile(
    r"_default|(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)


def url_problem(variable: str, value: Any) -> str | None:
    """Why ``value`` is not an http(s) URL that Docker and containerd accept for a registry, or None."""
    example = "(expected e.g. https://mirror.lab.example:5000)"
    if not isinstance(value, str) or not value or any(char.isspace() for char in value):
        return f"{variable}: {value!r} is not a URL {example}"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        return f"{variable}: {value!r} is not an http or https URL {example}"
    if not parts.hostname:
        return f"{variable}: {value!r} has no host {example}"
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        return f"{variable}: {value!r} has an invalid port {example}"
    if parts.username is not None or parts.password is not None:
        return f"{variable}: {value!r} carries credentials, which do not belong in a mirror URL"
    if parts.query or parts.fragment:
        return f"{variable}: {value!r} has a query or fragment, which a registry URL cannot have"
    return None


def absolute_path_problem(variable: str, value: Any, allow_empty: bool = False) -> str | None:
    if allow_empty and value == "":
        return None
    if not isinstance(value, str) or not posixpath.isabs(value):
        return f"{variable}: {value!r} is not an absolute path"
    return None


def kind(value: Any) -> str:
    """The YAML name of a value's type, with its article (Ansible passes tagged subclasses of str, int...)."""
    for name, types in (("a boolean", bool), ("an integer", int), ("a float", float), ("a string", str)):
        if isinstance(value, types):
            return name
    if isinstance(value, Mapping):
        return "a dict"
    return "a list" if isinstance(value, (list, tuple)) else "null" if value is None else type(value).__name__


def _mapping_problem(variable: str, value: Any, what: str) -> str | None:
    if isinstance(value, Mapping):
        return None
    return f"{variable}: {value!r} is {kind(value)}, not a dict of {what}"


def _daemon_option_problems(options: Any) -> list[str]:
    problem = _mapping_problem("docker_daemon_options", options, "daemon.json settings")
    if problem:
        return [problem]
    return [f"docker_daemon_options[{key!r}]: {reason}" for key, reason in DOCKER_OWNED_KEYS.items() if key in options]


def _log_option_problems(options: Any) -> list[str]:
    problem = _mapping_problem("docker_log_options", options, "log options")
    if problem:
        return [problem]
    return [
        f"docker_log_options[{key!r}]: {value!r} is {kind(value)}, but dockerd takes only strings here "
        f"(quote it: {json.dumps(str(value).lower() if isinstance(value, bool) else str(value))})"
        for key, value in options.items()
        if not isinstance(value, str)
    ]


def _url_list_problems(variable: str, urls: Any) -> list[str]:
    if not isinstance(urls, list):
        return [f"{variable}: {urls!r} is not a list of URLs"]
    return [problem for index, url in enumerate(urls) if (problem := url_problem(f"{variable}[{index}]", url))]


def docker_problems(settings: Mapping[str, Any]) -> list[str]:
    """Problems in the docker role's variables present in ``settings``."""
    problems: list[str] = []
    if "docker_daemon_options" in settings:
        problems += _daemon_option_problems(settings["docker_daemon_options"])
    if "docker_log_options" in settings:
        problems += _log_option_problems(settings["docker_log_options"])
    if "docker_registry_mirrors" in settings:
        problems += _url_list_problems("docker_registry_mirrors", settings["docker_registry_mirrors"])
    if "docker_data_root" in settings:
        problems += _present(absolute_path_problem("docker_data_root", settings["docker_data_root"], allow_empty=True))
    if "docker_repo_url" in settings:
        problems += _present(url_problem("docker_repo_url", settings["docker_repo_url"]))
    return problems


def _mirror_problems(label: str, mirrors: Any) -> list[str]:
    if not isinstance(mirrors, list) or not mirrors:
        return [f"{label}.mirrors: {mirrors!r} is not a non-empty list of mirrors"]
    problems: list[str] = []
    for index, mirror in enumerate(mirrors):
        where = f"{label}.mirrors[{index}]"
        if not isinstance(mirror, Mapping):
            problems.append(f"{where}: {mirror!r} is not a dict with a url")
            continue
        problems += _present(url_problem(f"{where}.url", mirror.get("url")))
        capabilities = mirror.get("capabilities", ["pull", "resolve"])
        if not isinstance(capabilities, list) or not set(capabilities) <= CONTAINERD_CAPABILITIES:
            problems.append(f"{where}.capabilities: {capabilities!r} must be a list of pull, resolve and push")
        if mirror.get("ca") is not None:
            problems += _present(absolute_path_problem(f"{where}.ca", mirror["ca"]))
    return problems


def _registry_problems(index: int, entry: Any) -> list[str]:
    label = f"containerd_registry_mirrors[{index}]"
    if not isinstance(entry, Mapping):
        return [f"{label}: {entry!r} is not a dict with a registry and its mirrors"]
    registry = entry.get("registry")
    problems: list[str] = []
    if not isinstance(registry, str) or not _REGISTRY.fullmatch(registry):
        problems.append(
            f"{label}.registry: {registry!r} is not a registry host as image names spell it "
            "(e.g. docker.io, registry.lab.example:5000, or _default for every registry)"
        )
    if entry.get("server") is not None:
        problems += _present(url_problem(f"{label}.server", entry["server"]))
    return problems + _mirror_problems(label, entry.get("mirrors"))


def containerd_problems(settings: Mapping[str, Any]) -> list[str]:
    """Problems in the containerd role's variables present in ``settings``."""
    problems: list[str] = []
    registries = settings.get("containerd_registry_mirrors", [])
    if not isinstance(registries, list):
        problems.append(f"containerd_registry_mirrors: {registries!r} is not a list")
        registries = []
    for index, entry in enumerate(registries):
        problems += _registry_problems(index, entry)
    names = [entry.get("registry") for entry in registries if isinstance(entry, Mapping)]
    problems += [f"containerd_registry_mirrors: registry {name!r} is listed twice" for name in _duplicates(names)]
    for variable in ("containerd_registry_config_path", "containerd_cni_bin_dir"):
        if variable in settings:
            problems += _present(absolute_path_problem(variable, settings[variable], allow_empty=True))
    if "containerd_registry_config_path" in settings and registries and not settings["containerd_registry_config_path"]:
        problems.append("containerd_registry_config_path: empty, but containerd_registry_mirrors needs the directory")
    image = settings.get("containerd_sandbox_image", "")
    if not isinstance(image, str) or "://" in image or any(char.isspace() for char in image):
        problems.append(
            f"containerd_sandbox_image: {image!r} is not an image reference (e.g. registry.k8s.io/pause:3.10)"
        )
    if "containerd_repo_url" in settings:
        problems += _present(url_problem("containerd_repo_url", settings["containerd_repo_url"]))
    return problems


# The docker role's settings that pass on to the containerd role it runs, each with the containerd role's own.
AGREEMENT_PAIRS: tuple[tuple[str, str], ...] = (
    ("docker_install_source", "containerd_install_source"),
    ("docker_containerd_version", "containerd_version"),
    ("docker_repo_url", "containerd_repo_url"),
)


def agreement_problems(settings: Mapping[str, Any], pairs: Iterable[Sequence[str]] = AGREEMENT_PAIRS) -> list[str]:
    """Pairs of variables that must agree where both are set (``None`` or missing: not set); by default the docker
    and containerd settings of AGREEMENT_PAIRS, which the docker and containerd roles and preflight all check.

    The docker role runs the containerd role with its own values; a play that also applies the containerd role
    with different ones would make the two fight over the same packages and files on every run.
    """
    problems = []
    for first, second in pairs:
        left, right = settings.get(first), settings.get(second)
        if left is not None and right is not None and left != right:
            problems.append(
                f"{first} is {left!r} but {second} is {right!r}: Docker's packages and containerd's must come "
                "from the same place, so set both alike"
            )
    return problems


def _present(problem: str | None) -> list[str]:
    return [problem] if problem else []


def _duplicates(values: Iterable[Any]) -> list[Any]:
    seen: list[Any] = []
    repeated: list[Any] = []
    for value in values:
        if value in seen and value not in repeated:
            repeated.append(value)
        seen.append(value)
    return repeated


class FilterModule:
    """Container runtime checks, exposed as sensorstack.iot.* filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "docker_problems": docker_problems,
            "containerd_problems": containerd_problems,
            "runtime_agreement_problems": agreement_problems,
        }
