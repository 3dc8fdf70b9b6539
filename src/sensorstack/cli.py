"""The ``sensorstack`` command: a presentation layer over sensorstack.runner, sensorstack.doctor and the lab."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from sensorstack import __version__, checkout_root, mitogen_strategy, project_root
from sensorstack.bundle.__main__ import add_commands as add_bundle_commands
from sensorstack.bundle.__main__ import run as bundle_run
from sensorstack.doctor import run_checks
from sensorstack.errors import USER_ERRORS, describe
from sensorstack.events import certificate_expiry, job_events
from sensorstack.extra_vars import extra_var, parse_extra_vars
from sensorstack.lab.__main__ import main as lab_main
from sensorstack.report import (
    EXIT_ERROR,
    EXIT_OK,
    Progress,
    exit_code,
    json_report,
    print_summary,
)
from sensorstack.runner import DEFAULT_KEEP_RUNS, Run, RunRequest, available_playbooks

# Without -i: the built-in local lab's inventory, in a checkout only (it builds Telegraf with the checkout's scripts).
DEFAULT_INVENTORY = Path("inventories/local")
# What `sensorstack init` copies: the sample inventory for real hardware.
SAMPLE_INVENTORY = Path("inventories/lab")
# The host `sensorstack render` runs the stack's cluster play on: the first control plane (it contacts no host), of
# the group the playbooks take from -e sensorstack_control_plane_group, as their `hosts:` do.
CONTROL_PLANE_GROUP = "control_plane"
# What a render writes: one file per role that places objects (sensorstack_objects_owner).
RENDERED_FILES = frozenset(
    f"{owner}.yaml" for owner in ("namespace", "storage", "mosquitto", "influxdb", "telegraf", "grafana")
)


def _keep_runs(value: str) -> int:
    try:
        keep = int(value)
    except ValueError:
        keep = -1
    if keep < 0:
        raise argparse.ArgumentTypeError(
            f"--keep-runs (or SENSORSTACK_KEEP_RUNS) must be a whole number >= 0, got {value!r}"
        )
    return keep


def _run_options(parser: argparse.ArgumentParser, check_flags: bool = True) -> None:
    parser.add_argument(
        "-i",
        "--inventory",
        type=Path,
        default=None,
        help="inventory file or directory (default: inventories/local, the built-in lab)",
    )
    parser.add_argument("-l", "--limit", help="only these hosts or groups")
    parser.add_argument("-t", "--tags", action="append", default=[], help="only tasks with these tags")
    parser.add_argument("--skip-tags", action="append", default=[], help="skip tasks with these tags")
    parser.add_argument(
        "-e",
        "--extra-vars",
        action="append",
        default=[],
        metavar="KEY=VALUE|@FILE",
        help="extra variables, as ansible-playbook reads them (key=value pairs kept out of every command line)",
    )
    parser.add_argument("--vault-password-file", type=Path, help="file holding the Ansible Vault password")
    if check_flags:
        parser.add_argument("-C", "--check", action="store_true", help="report what would change, change nothing")
        parser.add_argument("-D", "--diff", action="store_true", help="show the changes of each task")
    parser.add_argument("--json", action="store_true", help="print a machine-readable JSON report only")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the recap and errors")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="show every host result (-vv: Ansible -v)")
    parser.add_argument(
        "--keep-runs",
        type=_keep_runs,
        # A string default goes through type= like a command-line value, so a bad variable is a usage error.
        default=os.environ.get("SENSORSTACK_KEEP_RUNS", str(DEFAULT_KEEP_RUNS)),
        metavar="N",
        help=f"run logs kept under the state folder, newest first (0: all; default $SENSORSTACK_KEEP_RUNS or "
        f"{DEFAULT_KEEP_RUNS})",
    )
    parser.add_argument(
        "--mitogen",
        action="store_true",
        help="run the plays with Mitogen's strategy, one Python a host for the whole run (default "
        f"${mitogen_strategy.ENVIRONMENT_SWITCH}; needs sensorstack[mitogen]; docs/mitogen.md)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sensorstack", description="Provision an IoT telemetry stack with Ansible.")
    parser.add_argument("--version", action="version", version=f"sensorstack {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    deploy = commands.add_parser("deploy", help="converge everything: site.yml")
    _run_options(deploy)
    check = commands.add_parser("check", help="check and diff site.yml; exit 4 when something would change")
    _run_options(check, check_flags=False)
    if (project_root() / "playbooks/verify.yml").is_file():
        verify = commands.add_parser("verify", help="publish a reading and find it in InfluxDB (playbooks/verify.yml)")
        _run_options(verify)
    run = commands.add_parser("run", help="run any playbook of the repository (or a path)")
    run.add_argument("playbook", help=f"one of {', '.join(available_playbooks())}, or a path")
    _run_options(run)

    render = commands.add_parser(
        "render", help="write the stack's cluster objects as YAML into a folder, without a cluster (for review, GitOps)"
    )
    render.add_argument("directory", type=Path, help="a new or empty folder, or one a previous render wrote")
    _run_options(render, check_flags=False)

    inventory = commands.add_parser("inventory", help="inventory tools")
    inventory_commands = inventory.add_subparsers(dest="inventory_command", required=True)
    validate = inventory_commands.add_parser("validate", help="run only the preflight checks")
    _run_options(validate, check_flags=False)

    init = commands.add_parser("init", help="write the sample inventory into a new folder, to start from")
    init.add_argument("directory", type=Path, help="a folder that does not exist yet, or is empty")

    doctor = commands.add_parser("doctor", help="check the controller and reach every host")
    doctor.add_argument("-i", "--inventory", type=Path, default=None)
    doctor.add_argument("--vault-password-file", type=Path, help="file holding the Ansible Vault password")

    lab = commands.add_parser("lab", help="the built-in local lab of systemd containers")
    lab.add_argument("lab_command", choices=["up", "down", "status", "images"])
    lab.add_argument("-i", "--inventory", type=Path, default=None)

    bundle = commands.add_parser("bundle", help="the air-gapped bundle: build, verify, serve")
    add_bundle_commands(bundle.add_subparsers(dest="bundle_command", required=True))
    return parser


def _inventory(args: argparse.Namespace) -> Path:
    if args.inventory:
        # Ansible only warns about an inventory it cannot find, then runs every play on no host and succeeds.
        if not Path(args.inventory).exists():
            raise ValueError(f"-i {args.inventory}: no such inventory file or folder")
        return Path(args.inventory)
    if checkout_root() is None:
        raise ValueError("no inventory given: pass -i DIR (`sensorstack init DIR` writes a sample one to start from)")
    return project_root() / DEFAULT_INVENTORY


def init_command(directory: Path, console: Console) -> int:
    """Copy the sample inventory into ``directory``, never over anything that is there."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ValueError(f"{directory} exists and is not an empty folder: give a new one")
    shutil.copytree(project_root() / SAMPLE_INVENTORY, directory, dirs_exist_ok=True)
    console.print(f"Wrote the sample inventory to {directory}. Put your hosts in {directory / 'hosts.yml'}, your")
    console.print(f"settings in {directory / 'group_vars'}, then: sensorstack inventory validate -i {directory}")
    return EXIT_OK


def render_folder(directory: Path) -> Path:
    """``directory`` checked for a render: a new folder, or one holding nothing but the files a render writes. A
    folder holding anything else (a kustomization.yaml, say) is refused, so a render never mixes with, or removes,
    files it did not write."""
    directory = directory.resolve()
    if directory.exists():
        if not directory.is_dir():
            raise ValueError(f"{directory} is not a folder")
        foreign = [path.name for path in directory.iterdir() if path.name not in RENDERED_FILES or not path.is_file()]
        if foreign:
            raise ValueError(f"{directory} holds files a render did not write ({', '.join(sorted(foreign))})")
    return directory


def replace_rendered(staging: Path, directory: Path) -> list[str]:
    """Put a finished render in ``directory``: the previous render's files go, the new ones take their place."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in RENDERED_FILES:
        (directory / name).unlink(missing_ok=True)
    written = sorted(path.name for path in staging.glob("*.yaml"))
    for name in written:
        # A rename where it can; a copy where the folder is another file system than its parent (a mount point).
        shutil.move(staging / name, directory / name)
    return written


def render_command(args: argparse.Namespace, console: Console) -> int:
    """playbooks/stack.yml's cluster play with sensorstack_stack_render_dir: the roles write their objects instead
    of applying them, and nothing on a host or a cluster is read or changed. The objects are written beside the
    folder first, so a failed render leaves the previous one as it was."""
    directory = render_folder(args.directory)
    group = extra_var(parse_extra_vars(args.extra_vars), "sensorstack_control_plane_group") or CONTROL_PLANE_GROUP
    args.limit = args.limit or f"{group}[0]"
    directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{directory.name}-", dir=directory.parent) as staging:
        extra_vars = {"sensorstack_stack_render_dir": staging}
        code = run_command(args, console, "stack", check=False, diff=False, extra_vars=extra_vars)
        if code != EXIT_OK:
            return code
        if not any(Path(staging).glob("*.yaml")):
            raise RuntimeError(f"the render wrote no file: {directory} is left as it was (check -i and -l)")
        written = replace_rendered(Path(staging), directory)
    if not args.json:
        console.print(f"Wrote {', '.join(written)} to {directory}")
    return code


def _request(
    args: argparse.Namespace, playbook: str, check: bool, diff: bool, extra_vars: Mapping[str, Any] | None = None
) -> RunRequest:
    return RunRequest(
        playbook=playbook,
        inventory=_inventory(args),
        extra_vars_layers=parse_extra_vars(args.extra_vars),
        extra_vars=dict(extra_vars or {}),
        tags=args.tags,
        skip_tags=args.skip_tags,
        limit=args.limit,
        check=check,
        diff=diff,
        vault_password_file=args.vault_password_file,
        verbosity=max(0, args.verbose - 1),
        keep_runs=args.keep_runs,
        mitogen=args.mitogen or mitogen_strategy.switched_on(),
    )


def run_command(
    args: argparse.Namespace,
    console: Console,
    playbook: str,
    check: bool,
    diff: bool,
    drift_is_failure: bool = False,
    extra_vars: Mapping[str, Any] | None = None,
) -> int:
    request = _request(args, playbook, check, diff, extra_vars)
    progress = Progress(
        console, verbose=args.verbose > 0 and not args.quiet, enabled=not (args.json or args.quiet), quiet=args.quiet
    )
    run = Run(request, on_event=progress if not args.json else None)
    # Ctrl-C, and the stops of timeout(1), a CI job's cancel or a closed terminal: each cancels the run cleanly (the
    # playbook stopped, its private files removed), where Python's default would exit at once and leave both.
    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {stop: signal.signal(stop, lambda _signum, _frame: run.cancel()) for stop in stops}
    try:
        with progress:
            result = run.execute()
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler)
    # The reports of role kubeadm_certificates, from the events the run kept.
    result.certificates = certificate_expiry(job_events(result.artifact_dir))
    if args.json:
        print(json_report(result))
    else:
        print_summary(console, result, check=check, show_diff=diff)
    return exit_code(result, drift_is_failure=drift_is_failure)


def doctor_command(args: argparse.Namespace, console: Console) -> int:
    failed = False
    for check in run_checks(_inventory(args), args.vault_password_file):
        failed |= not check.ok
        mark = "[green]ok[/]  " if check.ok else "[bold red]FAIL[/]"
        console.print(f"{mark} {check.name}: {check.detail}")
        if check.fix:
            console.print(f"      fix: {check.fix}")
    return EXIT_ERROR if failed else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=getattr(args, "json", False), highlight=False)
    try:
        if args.command == "deploy":
            return run_command(args, console, "site", args.check, args.diff)
        if args.command == "check":
            return run_command(args, console, "site", check=True, diff=True, drift_is_failure=True)
        if args.command == "verify":
            return run_command(args, console, "verify", args.check, args.diff)
        if args.command == "run":
            return run_command(args, console, args.playbook, args.check, args.diff)
        if args.command == "render":
            return render_command(args, console)
        if args.command == "inventory":
            return run_command(args, console, "preflight", check=False, diff=False)
        if args.command == "init":
            return init_command(args.directory, console)
        if args.command == "doctor":
            return doctor_command(args, console)
        if args.command == "bundle":
            return bundle_run(args)
        lab_args = ["--inventory", str(args.inventory)] if args.inventory else []
        return lab_main([*lab_args, args.lab_command])
    except USER_ERRORS as error:
        console.print(f"[bold red]sensorstack:[/] {escape(describe(error))}", highlight=False)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
