"""Whether dpkg already has what an apt_packages task asks for: pure functions, unit-tested without a host.

The apt_packages action asks ``dpkg-query`` (one short command, no Python on the host) before it runs
``ansible.builtin.apt``, whose every call loads the whole apt cache: 2 to 4 s a host on a converged lab.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Debian policy 5.6.1: lower case letters, digits, + - . ; at least two characters, starting alphanumeric.
_PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
# A Debian version (epoch, upstream, revision) or an apt-style pattern of one ('1.35.0-*').
_VERSION_PATTERN = re.compile(r"^[A-Za-z0-9.+~:*?-]+$")
DPKG_QUERY_FORMAT = r"${Package}\t${db:Status-Abbrev}\t${Version}\n"
# The options of sensorstack.iot.apt_packages (its action plugin validates them; the module documents them).
ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "name": {"type": "list", "elements": "str", "required": True, "aliases": ["package", "pkg"]},
    "update_cache": {"type": "bool", "default": False},
    "cache_valid_time": {"type": "int", "default": 0},
    "allow_change_held_packages": {"type": "bool", "default": False},
    "hold_pinned": {"type": "bool", "default": False},
}


@dataclass(frozen=True)
class PackageRequest:
    """One entry of the task's name list: a package, and the version (or pattern) it must have, if any."""

    package: str
    version: str | None = None

    def __str__(self) -> str:
        return self.package if self.version is None else f"{self.package}={self.version}"


@dataclass(frozen=True)
class InstalledPackage:
    status: str  # dpkg's db:Status-Abbrev: desired action, status, error flag ('ii ', 'hi ', 'rc ', ...)
    version: str

    @property
    def installed(self) -> bool:
        return len(self.status) >= 2 and self.status[1] == "i" and self.status[2:].strip() == ""

    @property
    def held(self) -> bool:
        return self.status[:1] == "h"


def parse_requests(names: Iterable[str]) -> list[PackageRequest] | None:
    """The requests of ``name`` entries of the forms ``package`` and ``package=version`` (a glob allowed in the version,
    as apt takes it); None when one entry has another form (``pkg>=1``, ``pkg:arm64``, a .deb path): apt decides.
    """
    requests = []
    for name in names:
        package, separator, version = str(name).strip().partition("=")
        if not _PACKAGE_NAME.match(package) or (separator and not _VERSION_PATTERN.match(version)):
            return None
        requests.append(PackageRequest(package, version if separator else None))
    return requests


def dpkg_query_command(requests: Iterable[PackageRequest]) -> str:
    """The shell command that lists the packages' status and version, one line each, in the C locale."""
    packages = sorted({request.package for request in requests})
    return " ".join(
        ["LC_ALL=C", "dpkg-query", "--show", f"--showformat={shlex.quote(DPKG_QUERY_FORMAT)}", "--", *packages]
    )


def parse_dpkg_query(output: str) -> dict[str, InstalledPackage]:
    """Package -> status and version, from dpkg_query_command's output (packages dpkg never heard of are absent)."""
    found: dict[str, InstalledPackage] = {}
    for line in output.splitlines():
        fields = line.split("\t")
        if len(fields) == 3 and fields[0]:
            found[fields[0]] = InstalledPackage(status=fields[1], version=fields[2])
    return found


def unsatisfied(requests: Iterable[PackageRequest], installed: Mapping[str, InstalledPackage]) -> list[str]:
    """The requests dpkg does not satisfy: the package is not installed, or not at a version the request matches."""
    return [str(request) for request in requests if not _satisfies(installed.get(request.package), request)]


def _satisfies(package: InstalledPackage | None, request: PackageRequest) -> bool:
    if package is None or not package.installed:
        return False
    return request.version is None or fnmatch.fnmatchcase(package.version, request.version)


def absent(requests: Iterable[PackageRequest], installed: Mapping[str, InstalledPackage]) -> list[str]:
    """The packages of the requests that dpkg has no version of at all (never installed, or only config files left).

    apt installs them fresh, and a fresh package's maintainer scripts start its service with whatever configuration
    is already in place: a role that wrote that configuration first has nothing to restart.
    """
    packages = []
    for request in requests:
        package = installed.get(request.package)
        if (package is None or package.status[1:2] in ("n", "c")) and request.package not in packages:
            packages.append(request.package)
    return packages


def to_hold(requests: Iterable[PackageRequest], installed: Mapping[str, InstalledPackage]) -> list[str]:
    """The packages of the requests that name a version and that dpkg does not hold (yet), in request order."""
    packages = []
    for request in requests:
        package = installed.get(request.package)
        if request.version is not None and (package is None or not package.held) and request.package not in packages:
            packages.append(request.package)
    return packages


def hold_command(packages: Iterable[str]) -> str:
    """The shell command that marks the packages as held (apt-mark validates the names itself)."""
    return " ".join(["apt-mark", "hold", "--", *(shlex.quote(package) for package in packages)])


# ansible.builtin.apt's messages for a name or version its package lists do not hold.
_UNKNOWN_TO_APT = ("No package matching", "no available installation candidate")


def unknown_to_apt(message: str) -> bool:
    """Whether apt failed because its package lists do not hold a requested package or version."""
    return any(marker in message for marker in _UNKNOWN_TO_APT)
