"""``python -m sensorstack.lab images|up|down|status``: manage the built-in local lab."""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sensorstack import project_root
from sensorstack.bundle.cache import default_bundle_dir
from sensorstack.bundle.manifest import verify
from sensorstack.bundle.serve import (
    DEFAULT_REGISTRY_PORT,
    BundleServer,
    is_detached_running,
    start_detached,
    stop_detached,
)
from sensorstack.errors import USER_ERRORS, describe
from sensorstack.inventory import hostvars
from sensorstack.lab import containers, images, vm


def _build_images(names: list[str], force: bool) -> None:
    recipes = [images.recipe_for(name) for name in names]
    with ThreadPoolExecutor(max_workers=len(recipes) or 1) as pool:
        for recipe, (tag, built) in zip(
            recipes, pool.map(lambda r: images.build(r, force=force), recipes), strict=True
        ):
            print(f"{'built' if built else 'cached'} {tag} (alias {recipe.alias})")


def _has_vms(inventory: Path) -> bool:
    return any(variables.get("lab_provider") == vm.PROVIDER for variables in hostvars(inventory).values())


def _bundle_ports(inventory: Path) -> tuple[int, int] | None:
    """The inventory's lab_bundle_port and lab_registry_port: the lab's nodes install from a served bundle."""
    for variables in hostvars(inventory).values():
        if "lab_bundle_port" in variables:
            return int(variables["lab_bundle_port"]), int(variables.get("lab_registry_port", DEFAULT_REGISTRY_PORT))
    return None


def _serve_bundle(ports: tuple[int, int]) -> str:
    """Serve the bundle on the lab network's gateway unless a server started by the lab is running there."""
    gateway = containers.network_gateway()
    server = BundleServer(default_bundle_dir().resolve(), gateway, *ports)
    if is_detached_running(gateway, ports[0]):
        return f"serving {server.bundle} at {server.url}/ and {server.registry} (running)"
    problems = verify(server.bundle)
    if problems:
        raise RuntimeError(f"the bundle at {server.bundle} is damaged ({problems[0]}): run `make bundle`")
    pid = start_detached(server)
    return f"serving {server.bundle} at {server.url}/ and {server.registry} (pid {pid})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sensorstack-lab", description=__doc__)
    parser.add_argument(
        "--inventory",
        type=Path,
        default=project_root() / "inventories/local",
        help="inventory whose lab_image hosts make up the lab (default: inventories/local)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("images", help="build the lab images (skipped when the recipe is unchanged)")
    build.add_argument("names", nargs="*", default=sorted(images.RECIPES))
    build.add_argument("--force", action="store_true", help="rebuild even when the tag exists")
    commands.add_parser("up", help="build missing images and start every lab host")
    commands.add_parser("down", help="remove every lab container and the lab network")
    commands.add_parser("status", help="list the lab containers")
    args = parser.parse_args(argv)

    try:
        if args.command == "images":
            _build_images(args.names, args.force)
        elif args.command == "up" and _has_vms(args.inventory):
            for name, started in vm.up(args.inventory):
                print(f"{'started' if started else 'running'} VM {name}")
        elif args.command == "up":
            hosts = containers.hosts_from_inventory(args.inventory)
            _build_images(sorted({host.image for host in hosts}), force=False)
            for host in hosts:
                began = time.monotonic()
                started = containers.start(host)
                took = f" in {time.monotonic() - began:.1f} s" if started else ""
                address = f", {host.address}" if host.address else ""
                print(f"{'started' if started else 'running'} {host.container} ({host.image}{address}){took}")
            ports = _bundle_ports(args.inventory)
            if ports:
                print(_serve_bundle(ports))
        elif args.command == "down":
            ports = _bundle_ports(args.inventory)
            if ports and containers.network_exists() and stop_detached(containers.network_gateway(), ports[0]):
                print("stopped the bundle server")
            removed = []
            for name, host, _status in containers.lab_containers():
                if containers.belongs_to_a_test_session(name):
                    print(f"kept {name} (a test session's: it removes its own containers)")
                    continue
                containers.remove(name)
                removed.append(host)
                print(f"removed {name}")
            for name in vm.down(args.inventory):
                removed.append(name)
                print(f"removed VM {name}")
            containers.forget_facts(project_root() / ".cache/facts", removed)
            containers.remove_network()
        else:
            for name, host, status in containers.lab_containers():
                print(f"{host}\t{name}\t{status}")
            for name, state in vm.status(args.inventory) if _has_vms(args.inventory) else []:
                print(f"{name}\tVM\t{state}")
    except USER_ERRORS as error:
        print(f"sensorstack-lab: {describe(error)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
