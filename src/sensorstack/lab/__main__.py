"""``python -m sensorstack.lab images|up|down|status``: manage the built-in local lab."""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sensorstack import project_root
from sensorstack.lab import containers, images


def _build_images(names: list[str], force: bool) -> None:
    recipes = [images.recipe_for(name) for name in names]
    with ThreadPoolExecutor(max_workers=len(recipes) or 1) as pool:
        for recipe, (tag, built) in zip(
            recipes, pool.map(lambda r: images.build(r, force=force), recipes), strict=True
        ):
            print(f"{'built' if built else 'cached'} {tag} (alias {recipe.alias})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sensorstack-lab", description=__doc__)
    parser.add_argument(
        "--inventory",
        type=Path,
        default=project_root() / "inventories/local",
        help="inventory whose lab_image hosts make up the lab (default: inventories/local)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("images", help="build the base images (skipped when the recipe is unchanged)")
    build.add_argument("names", nargs="*", default=sorted(images.RECIPES))
    build.add_argument("--force", action="store_true", help="rebuild even when the tag exists")
    commands.add_parser("up", help="build missing images and start every lab host")
    commands.add_parser("down", help="remove every lab container and the lab network")
    commands.add_parser("status", help="list the lab containers")
    args = parser.parse_args(argv)

    try:
        if args.command == "images":
            _build_images(args.names, args.force)
        elif args.command == "up":
            hosts = containers.hosts_from_inventory(args.inventory)
            _build_images(sorted({host.image for host in hosts}), force=False)
            for host in hosts:
                started = containers.start(host)
                print(f"{'started' if started else 'running'} {host.container} ({host.image})")
        elif args.command == "down":
            removed = containers.lab_containers()
            for name, _host, _status in removed:
                containers.remove(name)
                print(f"removed {name}")
            containers.forget_facts(project_root() / ".cache/facts", [host for _name, host, _status in removed])
            containers.remove_network()
        else:
            for name, host, status in containers.lab_containers():
                print(f"{host}\t{name}\t{status}")
    except (ValueError, RuntimeError, TimeoutError) as error:
        print(f"sensorstack-lab: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
