"""Presentation of runs: live progress, the per-host recap table, the JSON report and exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterable

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from sensorstack.events import (
    CertificateExpiry,
    Event,
    HostResult,
    HostStatus,
    PlayStarted,
    RunResult,
    RunStatus,
    TaskStarted,
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_FAILED_HOSTS = 2
EXIT_UNREACHABLE = 3
EXIT_DRIFT = 4
EXIT_CANCELED = 130

_STYLES = {
    HostStatus.OK: "green",
    HostStatus.CHANGED: "yellow",
    HostStatus.FAILED: "bold red",
    HostStatus.UNREACHABLE: "bold magenta",
    HostStatus.SKIPPED: "cyan",
}


def exit_code(result: RunResult, drift_is_failure: bool = False) -> int:
    if result.status is RunStatus.CANCELED:
        return EXIT_CANCELED
    if result.unreachable_hosts:
        return EXIT_UNREACHABLE
    if result.failed_hosts:
        return EXIT_FAILED_HOSTS
    # ansible-playbook stopped before any host's task (a syntax error, a vault it cannot open, a --limit that
    # matches nothing), or ran every play on no host: the input is wrong, not a host.
    if result.status is not RunStatus.SUCCESSFUL or result.error:
        return EXIT_ERROR
    if drift_is_failure and result.changed:
        return EXIT_DRIFT
    return EXIT_OK


class Progress:
    """A one-line live display: current play, current task, hosts done out of the play's hosts."""

    def __init__(self, console: Console, verbose: bool = False, enabled: bool = True, quiet: bool = False) -> None:
        self.console = console
        self.verbose = verbose
        self.quiet = quiet
        self.enabled = enabled and console.is_terminal
        self.play = ""
        self.task = ""
        self.hosts_total = 0
        self.hosts_done: set[str] = set()
        self._live = Live(console=console, refresh_per_second=8, transient=True) if self.enabled else None

    def __enter__(self) -> Progress:
        if self._live:
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live:
            self._live.__exit__(*exc)

    def _render(self) -> Text:
        done = f"{len(self.hosts_done)}/{self.hosts_total}" if self.hosts_total else "-"
        return Text.assemble(("▶ ", "bold"), (self.play, "bold"), "  ·  ", self.task, f"  ·  hosts {done}")

    def __call__(self, event: Event) -> None:
        if isinstance(event, PlayStarted):
            self.play = event.name
            self.hosts_total = 0
            self.hosts_done = set()
            if not self.enabled and not self.quiet:
                self.console.print(f"PLAY {event.name}", style="bold")
        elif isinstance(event, TaskStarted):
            self.task = event.name
            self.hosts_done = set()
        elif isinstance(event, HostResult):
            self.hosts_done.add(event.host)
            self.hosts_total = max(self.hosts_total, len(self.hosts_done))
            important = event.status in (HostStatus.FAILED, HostStatus.UNREACHABLE)
            if self.verbose or important:
                line = Text.assemble(
                    (f"{event.status.value:>11} ", _STYLES[event.status]), f"{event.host}  ", event.task
                )
                if event.message:
                    line.append(f"\n            {event.message}", style="dim")
                self.console.print(line)
        if self._live:
            self._live.update(self._render())


def recap_table(result: RunResult) -> Table:
    table = Table(title=f"{result.playbook}: {result.status.value}" + (" (check mode)" if result.check else ""))
    for column in ("host", "ok", "changed", "failed", "unreachable", "skipped"):
        table.add_column(column, justify="left" if column == "host" else "right")
    for host, recap in sorted(result.recap.items()):
        table.add_row(
            host,
            str(recap.ok),
            Text(str(recap.changed), style="yellow" if recap.changed else ""),
            Text(str(recap.failed), style="bold red" if recap.failed else ""),
            Text(str(recap.unreachable), style="bold magenta" if recap.unreachable else ""),
            str(recap.skipped),
        )
    return table


def _days(days: int) -> str:
    if days < 0:
        return f"expired {-days} day{'s' if days != -1 else ''} ago"
    return f"{days} day{'s' if days != 1 else ''} left"


def certificate_line(expiry: CertificateExpiry) -> str:
    """``lab-cp1: control-plane certificates: 364 days left (soonest: apiserver)``."""
    return f"{expiry.host}: control-plane certificates: {_days(expiry.soonest_days_left)} (soonest: {expiry.soonest})"


def certificate_lines(result: RunResult) -> Iterable[Text]:
    """One line per control-plane node that reported its certificates; yellow once renewal is due, red if expired."""
    for expiry in result.certificates:
        style = "bold red" if expiry.soonest_days_left < 0 else "yellow" if expiry.renewal_due else ""
        yield Text(certificate_line(expiry), style=style)


def next_steps(result: RunResult, check: bool) -> Iterable[str]:
    if result.status is RunStatus.CANCELED:
        yield "The run was cancelled; rerun the same command to finish converging."
    if result.error:
        yield f"ansible-playbook stopped: {result.error}"
    if result.unreachable_hosts:
        yield (
            f"Unreachable: {', '.join(result.unreachable_hosts)}. Check the hosts are up and reachable "
            "(sensorstack doctor), or use --limit to leave them out."
        )
    if result.failed_hosts:
        yield f"Failed: {', '.join(result.failed_hosts)}. The first error of each is above; fix it and rerun."
    due = [expiry.host for expiry in result.certificates if expiry.renewal_due and expiry.renewal_enabled]
    if due:
        yield (
            f"Certificates fall due on {', '.join(due)}: the renewal timer renews them at its next run; "
            "`systemctl start kubeadm-certificates-renew.service` there renews them now."
        )
    unattended = [expiry.host for expiry in result.certificates if expiry.renewal_due and not expiry.renewal_enabled]
    if unattended:
        yield (
            f"Certificates fall due on {', '.join(unattended)}, whose renewal timer is off "
            "(kubeadm_certificates_renewal_enabled): run `kubeadm certs renew all` there and restart the control plane."
        )
    if check and result.changed:
        yield (
            f"Drift: {len(result.changed)} task(s) would change something. Run `sensorstack deploy` to converge, "
            "or inspect the diff above."
        )
    if result.artifact_dir:
        yield f"Full log and events: {result.artifact_dir}"


def print_summary(console: Console, result: RunResult, check: bool = False, show_diff: bool = False) -> None:
    if show_diff:
        for change in result.changed:
            console.print(
                Text.assemble(
                    ("would change " if check else "changed ", "yellow"), f"{change.host}  ", (change.task, "bold")
                )
            )
            if change.diff:
                console.print(json.dumps(change.diff, indent=2, default=str), style="dim", markup=False)
    console.print(recap_table(result))
    for certificates in certificate_lines(result):
        console.print(certificates)
    # Plain text: a step may quote ansible-playbook's own output, whose brackets are not Rich markup.
    for line in next_steps(result, check):
        console.print(line, markup=False)


def json_report(result: RunResult) -> str:
    return json.dumps(result.to_dict(), indent=2, default=str)
