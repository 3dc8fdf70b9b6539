"""Run the repository's playbooks through ansible-runner: typed events in, a typed result out.

Secrets stay inside the run: extra variables travel in files inside a private (0700) directory that is
removed as soon as ansible-playbook has read them, never on a command line; the vault password and the user's own
variable files are passed as file paths; the runner's artifacts live under a private directory too, and keep only
the environment sensorstack set, not the user's. Ansible's own no_log masking covers task results.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner

from sensorstack import checkout_root, collection_pins, mitogen_strategy, project_root
from sensorstack.events import (
    ChangedTask,
    Event,
    HostRecap,
    HostResult,
    HostStatus,
    PlayStarted,
    RunResult,
    RunStatus,
    TaskStarted,
)
from sensorstack.extra_vars import ExtraVarsLayer
from sensorstack.inventory import vault_arguments
from sensorstack.leftovers import RUN_MARKER, process_alive, stop_marked_processes

EventCallback = Callable[[Event], None]

_HOST_EVENTS = {
    "runner_on_ok": HostStatus.OK,
    "runner_on_failed": HostStatus.FAILED,
    "runner_on_unreachable": HostStatus.UNREACHABLE,
    "runner_on_skipped": HostStatus.SKIPPED,
}


def resolve_playbook(name_or_path: str, root: Path | None = None) -> Path:
    """``site`` is site.yml, ``verify`` is playbooks/verify.yml; anything else is a path to a playbook."""
    root = root or project_root()
    candidates = [root / f"{name_or_path}.yml", root / "playbooks" / f"{name_or_path}.yml", Path(name_or_path)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise FileNotFoundError(f"no playbook {name_or_path!r} (looked for {', '.join(str(c) for c in candidates)})")


def available_playbooks(root: Path | None = None) -> list[str]:
    root = root or project_root()
    return sorted(["site", *(path.stem for path in (root / "playbooks").glob("*.yml"))])


def playbook_error(stdout: str) -> str:
    """The error ansible-playbook printed when it stopped before or outside any host's task."""
    lines = stdout.splitlines()
    for index, line in enumerate(lines):
        if line.startswith(("[ERROR]", "ERROR!")):
            return "\n".join(lines[index : index + 8]).strip()
    return ""


def failure_message(result: dict[str, Any]) -> str:
    """The task's message, plus each failed loop item's own, which is where a looped task says what went wrong.
    A module that could not run at all (its msg only says so) adds the last line it wrote to stderr: with pipelining
    that is where, say, a missing Python or a stopped lab container ("No such container") shows."""
    message = str(result.get("msg", ""))
    stderr_lines = [line.strip() for line in str(result.get("module_stderr") or "").splitlines() if line.strip()]
    if stderr_lines and stderr_lines[-1] not in message:
        message = f"{message}: {stderr_lines[-1]}" if message else stderr_lines[-1]
    items = [item for item in result.get("results", []) or [] if isinstance(item, dict) and item.get("failed")]
    # By the item's label, as Ansible shows it: the whole item may hold a password that loop_control.label leaves out.
    details = [f"{item.get('_ansible_item_label', item.get('item', '?'))}: {item.get('msg', '')}" for item in items]
    return "; ".join([message, *details]) if details else message


def limit_with_files_resolved(limit: str | None) -> str | None:
    """A --limit whose @file entries name absolute paths: ansible-playbook runs in the project folder (ansible-runner's
    cwd) and would look for a relative one there, not where the operator typed it, as -i and -e @ are read."""
    if not limit or "@" not in limit:
        return limit
    # Only for a limit file: ansible's inventory package is not otherwise imported by the CLI.
    from ansible.inventory.manager import split_host_pattern

    # Split as Ansible splits it (commas, or colons, spaces around entries); commas join the entries back.
    return ",".join(
        f"@{Path(entry[1:]).expanduser().resolve()}" if entry.startswith("@") else entry
        for entry in split_host_pattern(limit)
    )


def counted_failures(failures: Sequence[HostResult], recap: Mapping[str, HostRecap]) -> list[HostResult]:
    """The failures the recap counts. A failure that a block's rescue recovered, or an unreachable host that the task
    ignored (ignore_unreachable), comes in an event like any other, and only the recap tells them apart: a host's
    counted failures are its last ones, as after a failure that nothing recovers a host runs only always sections."""
    budget = {(host, HostStatus.FAILED): counts.failed for host, counts in recap.items()} | {
        (host, HostStatus.UNREACHABLE): counts.unreachable for host, counts in recap.items()
    }
    counted = []
    for failure in reversed(failures):
        key = (failure.host, failure.status)
        if budget.get(key, 0) > 0:
            budget[key] -= 1
            counted.append(failure)
    return counted[::-1]


def result_diff(result: Mapping[str, Any]) -> Any:
    """A task result's diff; for a loop, where Ansible keeps one per item, the items' diffs labelled by item."""
    if result.get("diff"):
        return result["diff"]
    items = [item for item in result.get("results") or [] if isinstance(item, dict) and item.get("diff")]
    return [{"item": item.get("_ansible_item_label", item.get("item")), "diff": item["diff"]} for item in items] or None


# Run folders the CLI keeps (--keep-runs, $SENSORSTACK_KEEP_RUNS): each holds a run's whole log and events.
DEFAULT_KEEP_RUNS = 50


@dataclass
class RunRequest:
    playbook: str
    inventory: Path
    # Applied last: they win over extra_vars_layers.
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    # -e values in order, later ones winning (sensorstack.extra_vars.parse_extra_vars): mappings and variable files.
    extra_vars_layers: Sequence[ExtraVarsLayer] = ()
    tags: Sequence[str] = ()
    skip_tags: Sequence[str] = ()
    limit: str | None = None
    check: bool = False
    diff: bool = False
    vault_password_file: Path | None = None
    verbosity: int = 0
    artifacts_root: Path | None = None
    # Run folders kept under artifacts_root, newest first; older ones are removed after each run (0 keeps all).
    keep_runs: int = DEFAULT_KEEP_RUNS
    # Run every play with Mitogen's strategy (sensorstack.mitogen_strategy; needs sensorstack[mitogen]).
    mitogen: bool = False


def extra_vars_arguments(layers: Sequence[ExtraVarsLayer], private: Path) -> list[str]:
    """ansible-playbook's -e arguments for the layers, in their order: a variable file by its path, a mapping in a
    file of its own (0600) in ``private``, so that no value reaches a command line."""
    arguments = []
    for index, layer in enumerate(layers):
        if isinstance(layer, Path):
            arguments += ["-e", f"@{layer.resolve()}"]
        elif layer:
            path = private / f"extra-vars-{index}.json"
            path.touch(mode=0o600)
            path.write_text(json.dumps(dict(layer), default=str))
            arguments += ["-e", f"@{path}"]
    return arguments


def keep_own_environment(command_file: Path, own: Mapping[str, str]) -> None:
    """ansible-runner records the whole environment of a run in its ``command`` artifact, the user's tokens and
    passwords included: keep only the variables sensorstack set."""
    try:
        recorded = json.loads(command_file.read_text())
    except (OSError, ValueError):
        return
    if isinstance(recorded, dict) and "env" in recorded:
        recorded["env"] = {name: value for name, value in recorded["env"].items() if name in own}
        command_file.write_text(json.dumps(recorded))


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def runner_environment(root: Path, mitogen: bool = False) -> dict[str, str]:
    """What every ansible-runner call here needs: the repository's ansible.cfg and this interpreter's tools first,
    and Mitogen's strategy when asked for (raises MitogenUnavailable before anything runs if it is not installed).

    Outside a checkout (an installed wheel), ansible.cfg's paths relative to the checkout do not exist: the
    collections are found where pip put them (sensorstack.iot beside this package, the others from the ansible
    package). ansible-runner keeps each run's facts in the run's own folder (its fact_cache), whatever is set here.

    Host key checking is passed on as ansible.cfg has it (on) unless the caller's environment says otherwise:
    ansible-runner turns it off for every run whose environment does not name it.
    """
    environment = {
        "ANSIBLE_CONFIG": str(root / "ansible.cfg"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_HOST_KEY_CHECKING": os.environ.get("ANSIBLE_HOST_KEY_CHECKING", "True"),
    }
    if checkout_root() is None:
        environment |= {
            "ANSIBLE_COLLECTIONS_PATH": str(collection_pins.collections_folder()),
            "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "true",
        }
    if mitogen:
        environment |= mitogen_strategy.environment()
    return environment


# A run's folder name: its start time, the process id, a random part (two runs of one process in one second) and the
# playbook (Run.execute), so names sort by start time.
RUN_FOLDER = re.compile(r"^\d{8}T\d{6}-(?P<pid>\d+)-")


def runs_to_prune(names: Iterable[str], keep: int) -> list[str]:
    """Of the folder names under the artifacts root, the runs beyond the newest ``keep`` (none when keep is 0).
    Anything not named like a run is never pruned."""
    if keep <= 0:
        return []
    runs = sorted((name for name in names if RUN_FOLDER.match(name)), reverse=True)
    return sorted(runs[keep:])


def run_finished(folder: Path) -> bool:
    """Whether the run of ``folder`` is over: ansible-runner writes its ``status`` file at the end, and a run killed
    before that (SIGKILL, a reboot) has none but its process, named in the folder's name, is gone. Such a folder
    still holds the environment ansible-runner recorded at the start: it is dropped here."""
    if (folder / "status").is_file():
        return True
    match = RUN_FOLDER.match(folder.name)
    if match is None or process_alive(int(match.group("pid"))):
        return False
    keep_own_environment(folder / "command", {})
    return True


def prune_runs(root: Path, keep: int) -> list[Path]:
    """Remove the oldest finished run folders under root beyond the newest keep; returns what was removed. A run
    still going is neither removed nor counted: two runs side by side never remove each other's folder."""
    finished = (path.name for path in root.iterdir() if path.is_dir() and run_finished(path))
    removed = []
    for name in runs_to_prune(finished, keep):
        shutil.rmtree(root / name, ignore_errors=True)
        removed.append(root / name)
    return removed


def default_artifacts_root() -> Path:
    base = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state"))
    return base / "sensorstack" / "runs"


class Run:
    """One playbook run. ``cancel()`` (or Ctrl-C in the CLI) stops it cleanly."""

    def __init__(self, request: RunRequest, on_event: EventCallback | None = None) -> None:
        self.request = request
        self.on_event = on_event or (lambda _event: None)
        # A plain flag, not a threading.Event: cancel() runs in the CLI's SIGINT handler, and Event.set() takes a
        # lock that a second Ctrl-C, interrupting the first handler, waited on forever.
        self._cancel_requested = False
        self._play = ""
        self._task = ""
        self._changed: list[ChangedTask] = []
        self._failures: list[HostResult] = []
        self._recap: dict[str, HostRecap] = {}
        self._private: Path | None = None

    def cancel(self) -> None:
        self._cancel_requested = True

    @property
    def cancelled(self) -> bool:
        return self._cancel_requested

    def _handle(self, raw: dict[str, Any]) -> bool:
        kind = raw.get("event", "")
        data = raw.get("event_data", {}) or {}
        if kind == "playbook_on_start" and self._private is not None:
            # ansible-playbook has read the variable files: they go now, not only when the run ends.
            for path in self._private.glob("extra-vars-*.json"):
                path.unlink(missing_ok=True)
        if kind == "playbook_on_play_start":
            self._play = data.get("play", "")
            self.on_event(PlayStarted(self._play, tuple(data.get("play_pattern", "").split(","))))
        elif kind == "playbook_on_task_start":
            self._task = data.get("task", "")
            self.on_event(TaskStarted(self._play, self._task))
        elif kind in _HOST_EVENTS:
            self._host_event(kind, data)
        elif kind == "playbook_on_stats":
            self._stats(data)
        return True

    def _host_event(self, kind: str, data: dict[str, Any]) -> None:
        result = data.get("res", {}) or {}
        status = _HOST_EVENTS[kind]
        if status is HostStatus.OK and result.get("changed"):
            status = HostStatus.CHANGED
        if status is HostStatus.FAILED and data.get("ignore_errors"):
            status = HostStatus.OK
        host = data.get("host", "")
        task = data.get("task", self._task)
        diff = result_diff(result) if self.request.diff else None
        event = HostResult(
            self._play,
            task,
            host,
            status,
            failure_message(result) if status in (HostStatus.FAILED, HostStatus.UNREACHABLE) else "",
            diff,
        )
        if status is HostStatus.CHANGED:
            self._changed.append(ChangedTask(self._play, task, host, diff))
        if status in (HostStatus.FAILED, HostStatus.UNREACHABLE):
            self._failures.append(event)
        self.on_event(event)

    def _stats(self, data: dict[str, Any]) -> None:
        counters = {
            "ok": "ok",
            "changed": "changed",
            "failures": "failed",
            "dark": "unreachable",
            "skipped": "skipped",
            "rescued": "rescued",
            "ignored": "ignored",
        }
        for source, target in counters.items():
            for host, count in (data.get(source) or {}).items():
                setattr(self._recap.setdefault(host, HostRecap()), target, count)
        for host in data.get("processed") or {}:
            self._recap.setdefault(host, HostRecap())
        self._failures = counted_failures(self._failures, self._recap)

    def execute(self) -> RunResult:
        request = self.request
        root = project_root()
        playbook = resolve_playbook(request.playbook, root)
        environment = runner_environment(root, mitogen=request.mitogen)
        artifacts_root = _private_dir(request.artifacts_root or default_artifacts_root())
        ident = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}-{secrets.token_hex(3)}-{playbook.stem}"
        environment[RUN_MARKER] = ident
        private = self._private = Path(tempfile.mkdtemp(prefix="sensorstack-run-"))  # 0700 by mkdtemp
        artifact_dir = artifacts_root / ident
        try:
            cmdline = extra_vars_arguments([*request.extra_vars_layers, request.extra_vars], private)
            if request.check:
                cmdline.append("--check")
            if request.diff:
                cmdline.append("--diff")
            cmdline += vault_arguments(request.vault_password_file)
            runner = ansible_runner.run(
                private_data_dir=str(private),
                artifact_dir=str(artifacts_root),
                ident=ident,
                project_dir=str(root),
                playbook=str(playbook),
                inventory=str(Path(request.inventory).resolve()),
                tags=",".join(request.tags) or None,
                skip_tags=",".join(request.skip_tags) or None,
                limit=limit_with_files_resolved(request.limit),
                verbosity=request.verbosity or None,
                cmdline=shlex.join(cmdline) or None,
                envvars=environment,
                event_handler=self._handle,
                cancel_callback=lambda: self.cancelled,
                quiet=True,
            )
        finally:
            shutil.rmtree(private, ignore_errors=True)
            keep_own_environment(artifact_dir / "command", environment)
            if self.cancelled:
                stop_marked_processes(ident)
        if artifact_dir.exists():
            for path in [artifact_dir, *artifact_dir.rglob("*")]:
                with contextlib.suppress(FileNotFoundError):  # another run's prune, once this one has finished
                    path.chmod(0o700 if path.is_dir() else 0o600)
        prune_runs(artifacts_root, request.keep_runs)
        status = RunStatus(runner.status) if runner.status in RunStatus._value2member_map_ else RunStatus.FAILED
        error = ""
        if status is not RunStatus.SUCCESSFUL and not self._failures and (artifact_dir / "stdout").is_file():
            error = playbook_error((artifact_dir / "stdout").read_text(errors="replace"))
        if status is RunStatus.SUCCESSFUL and not self._recap and not self.cancelled:
            # Ansible skips a play whose hosts the inventory lacks ("no hosts matched") and succeeds.
            error = "no host of the inventory ran any play: check -i and -l against the playbook's groups"
        return RunResult(
            playbook=str(playbook.relative_to(root) if playbook.is_relative_to(root) else playbook),
            status=RunStatus.CANCELED if self.cancelled else status,
            rc=runner.rc if runner.rc is not None else 1,
            recap=self._recap,
            changed=self._changed,
            failures=self._failures,
            artifact_dir=artifact_dir if artifact_dir.exists() else None,
            check=request.check,
            error=error,
        )


def run_playbook(request: RunRequest, on_event: EventCallback | None = None) -> RunResult:
    """Run one playbook and return its result; see :class:`RunRequest` for the options."""
    return Run(request, on_event).execute()


def ping_hosts(inventory: Path, vault_password_file: Path | None = None) -> dict[str, bool]:
    """Host -> whether Ansible can reach it and run Python there (ansible.builtin.ping)."""
    reachable: dict[str, bool] = {}

    def record(raw: dict[str, Any]) -> bool:
        data = raw.get("event_data", {}) or {}
        if raw.get("event") in _HOST_EVENTS:
            reachable[data.get("host", "")] = raw["event"] == "runner_on_ok"
        return True

    private = Path(tempfile.mkdtemp(prefix="sensorstack-ping-"))
    try:
        ansible_runner.run(
            private_data_dir=str(private),
            inventory=str(Path(inventory).resolve()),
            host_pattern="all",
            module="ansible.builtin.ping",
            cmdline=shlex.join(vault_arguments(vault_password_file)) or None,
            envvars=runner_environment(project_root()),
            event_handler=record,
            quiet=True,
        )
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return reachable
