"""``sensorstack bundle build|verify|serve|stop|compare``: the air-gapped bundle of every pinned artifact."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sensorstack.bundle.cache import default_bundle_dir
from sensorstack.bundle.manifest import compare, read_manifest, summary, verify
from sensorstack.bundle.serve import (
    DEFAULT_HTTP_PORT,
    DEFAULT_REGISTRY_PORT,
    BundleServer,
    detached_servers,
    serve_forever,
    start_detached,
    stop_detached,
)
from sensorstack.errors import USER_ERRORS, describe


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    build = commands.add_parser("build", help="gather every pinned artifact into one folder")
    build.add_argument(
        "--from",
        dest="source",
        choices=["source", "upstream"],
        default="source",
        help="source: build everything from the Go module proxy and Debian; upstream: fetch the published artifacts",
    )
    build.add_argument("--out", type=Path, default=None, help="bundle folder (default: <cache>/bundle)")
    build.add_argument(
        "--upstream-registries-conf",
        type=Path,
        help="containers-registries.conf(5) for --from upstream (e.g. a mirror standing in for the registries)",
    )
    build.add_argument(
        "-e",
        "--override",
        action="append",
        default=[],
        metavar="VAR=VALUE",
        help="override a variable of versions.yml, e.g. sensorstack_mirror=http://host:8080 for --from upstream",
    )

    check = commands.add_parser("verify", help="check a bundle's files against its bundle.json")
    check.add_argument("bundle", type=Path, nargs="?", default=None)

    diff = commands.add_parser("compare", help="compare the artifact lists of two bundles")
    diff.add_argument("first", type=Path)
    diff.add_argument("second", type=Path)

    serve = commands.add_parser("serve", help="serve a bundle: apt and files over HTTP, images from a registry")
    serve.add_argument("bundle", type=Path, nargs="?", default=None)
    serve.add_argument("--address", default="127.0.0.1", help="address to listen on (default: loopback only)")
    serve.add_argument("--port", type=int, default=DEFAULT_HTTP_PORT, help="HTTP port of apt/ and files/")
    serve.add_argument("--registry-port", type=int, default=DEFAULT_REGISTRY_PORT, help="port of the registry")
    serve.add_argument("--detach", action="store_true", help="run in the background; stop with `bundle stop`")

    stop = commands.add_parser("stop", help="stop a server started with `bundle serve --detach`")
    stop.add_argument("--address", default="127.0.0.1")
    stop.add_argument("--port", type=int, default=DEFAULT_HTTP_PORT)


def _overrides(values: list[str]) -> dict[str, str]:
    result = {}
    for value in values:
        name, separator, content = value.partition("=")
        if not separator or not name:
            raise ValueError(f"--override {value}: expected VAR=VALUE")
        result[name] = content
    return result


def run(args: argparse.Namespace) -> int:
    bundle = getattr(args, "bundle", None) or getattr(args, "out", None) or default_bundle_dir()
    if args.bundle_command == "build":
        from sensorstack.bundle.build import build_bundle

        manifest = build_bundle(
            bundle,
            source=args.source,
            overrides=_overrides(args.override),
            registries_conf=args.upstream_registries_conf,
        )
        print(json.dumps(summary(manifest) | {"bundle": str(bundle)}, indent=2))
        return 0
    if args.bundle_command == "verify":
        problems = verify(bundle)
        for problem in problems:
            print(f"FAIL {problem}", file=sys.stderr)
        manifest = read_manifest(bundle)
        state = "damaged" if problems else "whole"
        print(f"{bundle}: {len(manifest.artifacts)} artifacts, {len(problems)} problems: {state}")
        return 1 if problems else 0
    if args.bundle_command == "compare":
        differences = compare(read_manifest(args.first), read_manifest(args.second))
        for difference in differences:
            print(difference)
        print(f"{len(differences)} differences")
        return 1 if differences else 0
    if args.bundle_command == "serve":
        server = BundleServer(bundle.resolve(), args.address, args.port, args.registry_port)
        if args.detach:
            pid = start_detached(server)
            print(f"serving {bundle} at {server.url}/ and {server.registry} (pid {pid})")
            return 0
        return serve_forever(server)
    if stop_detached(args.address, args.port):
        print("stopped")
        return 0
    print(f"no server was running at {args.address}:{args.port}")
    # Each server is known by the address and port it was started with: name the ones that run elsewhere.
    for address, port in detached_servers():
        print(f"one runs at {address}:{port}: sensorstack bundle stop --address {address} --port {port}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sensorstack bundle", description=__doc__)
    add_commands(parser.add_subparsers(dest="bundle_command", required=True))
    args = parser.parse_args(argv)
    try:
        return run(args)
    except USER_ERRORS as error:
        print(f"sensorstack bundle: {describe(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
