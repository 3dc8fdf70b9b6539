"""Typed events and results of a playbook run, as the API hands them to callers and the CLI formats them."""

from __future__ import annotations

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
        return report
