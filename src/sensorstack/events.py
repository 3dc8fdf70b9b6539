"""Typed events and results of a playbook run, as the API hands them to callers and the CLI formats them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class HostStatus(StrEnum):
    OK = "ok"
    CHANGED = "changed"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class PlayStarted:
    name: str
    hosts: tuple[str, ...]


@dataclass(frozen=True)
class TaskStarted:
    play: str
    name: str


@dataclass(frozen=True)
class HostResult:
    play: str
    task: str
    host: str
    status: HostStatus
    message: str = ""
    diff: Any = None


Event = PlayStarted | TaskStarted | HostResult


@dataclass
class HostRecap:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0


@dataclass(frozen=True)
class ChangedTask:
    play: str
    task: str
    host: str
    diff: Any = None


# The key and value that mark the kubeadm_certificates role's report among a run's task results
# (roles/kubeadm_certificates/vars/main.yml: kubeadm_certificates_report).
CERTIFICATE_REPORT_MARKER = {"sensorstack_report": "control_plane_certificates"}


@dataclass(frozen=True)
class CertificateExpiry:
    """The days left of one control-plane node's certificates, as the kubeadm_certificates role reported them."""

    host: str
    days_left: dict[str, int]  # certificate -> whole days left, negative once expired
    soonest: str  # the certificate that expires first
    soonest_days_left: int
    renew_days_before: int | None = None  # the node's renewal threshold
    renewal_enabled: bool = True  # whether the node's renewal timer runs

    @property
    def renewal_due(self) -> bool:
        return self.renew_days_before is not None and self.soonest_days_left < self.renew_days_before


def certificate_expiry(events: Iterable[Mapping[str, Any]]) -> list[CertificateExpiry]:
    """The kubeadm_certificates reports among ansible-runner's raw events (``{"event": ..., "event_data": ...}``):
    one per host, the last if the role ran twice, sorted by host. A report without certificates is left out."""
    reports: dict[str, CertificateExpiry] = {}
    for event in events:
        data = event.get("event_data") or {}
        message = (data.get("res") or {}).get("msg")
        if event.get("event") != "runner_on_ok" or not isinstance(message, Mapping):
            continue
        if any(message.get(key) != value for key, value in CERTIFICATE_REPORT_MARKER.items()):
            continue
        days_left = {str(name): int(days) for name, days in (message.get("days_left") or {}).items()}
        soonest = str(message.get("soonest") or "")
        if soonest not in days_left:
            continue
        threshold = message.get("renew_days_before")
        host = str(data.get("host", ""))
        reports[host] = CertificateExpiry(
            host,
            days_left,
            soonest,
            days_left[soonest],
            int(threshold) if threshold is not None else None,
            bool(message.get("renewal_enabled", True)),
        )
    return [reports[host] for host in sorted(reports)]


def job_events(artifact_dir: Path | None) -> Iterable[dict[str, Any]]:
    """The events ansible-runner kept of a run (``job_events/<counter>-<uuid>.json``), in the order they happened."""
    folder = artifact_dir / "job_events" if artifact_dir else None
    if folder is None or not folder.is_dir():
        return
    counted = [
        (path.name.split("-", 1)[0], path) for path in folder.glob("*.json") if not path.name.endswith("-partial.json")
    ]
    for _counter, path in sorted((int(counter), path) for counter, path in counted if counter.isdigit()):
        try:
            yield json.loads(path.read_text())
        except (OSError, ValueError):
            continue


class RunStatus(StrEnum):
    SUCCESSFUL = "successful"
    FAILED = "failed"
    CANCELED = "canceled"
    TIMEOUT = "timeout"


@dataclass
class RunResult:
    playbook: str
    status: RunStatus
    rc: int
    recap: dict[str, HostRecap] = field(default_factory=dict)
    changed: list[ChangedTask] = field(default_factory=list)
    failures: list[HostResult] = field(default_factory=list)
    artifact_dir: Path | None = None
    check: bool = False
    error: str = ""  # what ansible-playbook said when it stopped outside any host (syntax, vault, inventory)
    certificates: list[CertificateExpiry] = field(default_factory=list)  # per control-plane node, when reported

    @property
    def failed_hosts(self) -> list[str]:
        return sorted(host for host, recap in self.recap.items() if recap.failed)

    @property
    def unreachable_hosts(self) -> list[str]:
        return sorted(host for host, recap in self.recap.items() if recap.unreachable)

    @property
    def changed_count(self) -> int:
        return sum(recap.changed for recap in self.recap.values())

    def to_dict(self) -> dict[str, Any]:
        report = asdict(self)
        report["status"] = self.status.value
        report["artifact_dir"] = str(self.artifact_dir) if self.artifact_dir else None
        report["failures"] = [asdict(failure) | {"status": failure.status.value} for failure in self.failures]
        report["failed_hosts"] = self.failed_hosts
        report["unreachable_hosts"] = self.unreachable_hosts
        report["changed_count"] = self.changed_count
        report["certificates"] = [asdict(expiry) | {"renewal_due": expiry.renewal_due} for expiry in self.certificates]
        return report
