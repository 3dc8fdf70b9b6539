"""Build Go programs from the Go module proxy in a generated wrapper module, cached by recipe.

Several upstream projects cannot be built with ``go install module@version``: their go.mod points nested modules at
local directories the module zip does not carry (Kubernetes' staging modules, Calico's ``./api``). A small generated
main module that ``require``s the project and carries its own ``replace`` block builds them all the same way.

Every build lands in ``<cache>/build/<name>-<12 hex of the recipe digest>/`` through :func:`cache.cached`: binaries
in ``bin/``, the generated wrapper module (go.mod, go.sum) in ``module/``, the recipe in ``build.json`` and the
binaries' names, sha256 and build timings in ``component.json``. A rerun of the same recipe reads two small files.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sensorstack.bundle.cache import cached, log, recipe_digest, sha256_file

DETAILS = "component.json"  # next to the cache's build.json: binaries, their sha256, timings of the build
PROGRESS_EVERY_SECONDS = 60.0


@dataclass(frozen=True)
class BuiltComponent:
    """One cached build: where its binaries are and which recipe made them."""

    name: str
    version: str
    folder: Path
    binaries: Mapping[str, Path]
    digest: str
    details: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def load(cls, folder: Path) -> BuiltComponent:
        details = json.loads((folder / DETAILS).read_text())
        binaries = {name: folder / relative for name, relative in details["binaries"].items()}
        return cls(details["name"], details["version"], folder, binaries, details["digest"], details)


@dataclass(frozen=True)
class Produced:
    """What a build step made inside its folder: binaries by name, and measurements for the record."""

    binaries: Mapping[str, Path]
    timings: Mapping[str, Any] = field(default_factory=dict)


def cached_build(
    cache_root: Path,
    name: str,
    version: str,
    recipe: Mapping[str, Any],
    produce: Callable[[Path], Produced],
) -> BuiltComponent:
    """The build of recipe in ``<cache_root>/build/<name>-<digest>``, from the cache or made now by produce(folder)."""
    digest = recipe_digest(recipe)

    def build(folder: Path) -> None:
        log(f"{name} {version}: building (recipe {digest})")
        started = time.monotonic()
        produced = produce(folder)
        details = {
            "name": name,
            "version": version,
            "digest": digest,
            "binaries": {binary: str(path.relative_to(folder)) for binary, path in produced.binaries.items()},
            "sha256": {binary: sha256_file(path) for binary, path in produced.binaries.items()},
            "seconds": round(time.monotonic() - started, 1),
            "timings": dict(produced.timings),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (folder / DETAILS).write_text(json.dumps(details, indent=2, sort_keys=True) + "\n")

    started = time.monotonic()
    folder = cached("build", name, recipe, build, root=cache_root)
    component = BuiltComponent.load(folder)
    log(f"{name} {version}: ready in {folder} ({time.monotonic() - started:.1f} s)")
    return component


# --- go.mod ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Replace:
    """One go.mod replace directive; new_version empty means new is a local directory."""

    old: str
    new: str
    new_version: str = ""
    old_version: str = ""

    @property
    def is_local(self) -> bool:
        return not self.new_version

    def directive(self) -> str:
        old = f"{self.old} {self.old_version}" if self.old_version else self.old
        new = f"{self.new} {self.new_version}" if self.new_version else self.new
        return f"{old} => {new}"


_REPLACE_LINE = re.compile(r"^(\S+)(?:\s+(\S+))?\s+=>\s+(\S+)(?:\s+(\S+))?$")


def parse_replaces(go_mod: str) -> list[Replace]:
    """The replace directives of a go.mod text, single-line and block forms alike."""
    replaces: list[Replace] = []
    in_block = False
    for raw in go_mod.splitlines():
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        if in_block:
            if line == ")":
                in_block = False
                continue
            body = line
        elif line == "replace (":
            in_block = True
            continue
        elif line.startswith("replace "):
            body = line.removeprefix("replace ").strip()
        else:
            continue
        match = _REPLACE_LINE.match(body)
        if match is None:
            raise ValueError(f"cannot read replace directive {raw.strip()!r}")
        old, old_version, new, new_version = match.groups()
        replaces.append(Replace(old, new, new_version or "", old_version or ""))
    return replaces


def wrapper_go_mod(
    module_path: str,
    go_directive: str,
    requires: Sequence[tuple[str, str]],
    replaces: Sequence[Replace],
) -> str:
    """The wrapper module's go.mod before ``go mod tidy`` completes it."""
    lines = [f"module {module_path}", "", f"go {go_directive}", ""]
    lines += [f"require {module} {version}" for module, version in requires]
    if replaces:
        lines += ["", "replace ("]
        lines += [f"\t{replace.directive()}" for replace in sorted(replaces, key=lambda item: item.old)]
        lines.append(")")
    return "\n".join(lines) + "\n"


def tools_go(packages: Sequence[str]) -> str:
    """A file that imports the packages to build, so ``go mod tidy`` keeps what they need."""
    imports = "\n".join(f'\t_ "{package}"' for package in packages)
    return f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n"


def default_binary_name(package: str) -> str:
    """The name ``go build -o DIR`` gives a main package: its last element, a /vN major suffix skipped."""
    elements = package.split("/")
    if len(elements) > 1 and re.fullmatch(r"v[2-9]\d*", elements[-1]):
        return elements[-2]
    return elements[-1]


# --- the Go toolchain -----------------------------------------------------------------------------------------


def go_executable() -> str:
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("the Go toolchain (`go`) is not on PATH; install Go 1.25 or newer")
    return go


def go_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every go command runs with: the user's proxy settings, nothing that changes the build."""
    env = dict(os.environ)
    for variable in ("GOFLAGS", "GOOS", "GOARCH", "CGO_ENABLED", "GOEXPERIMENT", "GONOSUMDB", "GOPRIVATE"):
        env.pop(variable, None)
    # GOWORK=off: a go.work above the cache must not join the build; GOTOOLCHAIN=local: never download a Go.
    env.update(GOWORK="off", GOTOOLCHAIN="local", GO111MODULE="on", GOFLAGS="-buildvcs=false")
    env.update(extra or {})
    return env


def go_version() -> str:
    command = [go_executable(), "env", "GOVERSION"]
    return subprocess.run(command, capture_output=True, text=True, check=True, env=go_environment()).stdout.strip()


@dataclass(frozen=True)
class ModuleInfo:
    """A module version as the proxy serves it (downloaded into the module cache)."""

    path: str
    version: str
    directory: Path
    go_mod: str
    time: str
    commit: str


def download_module(path: str, version: str, env: Mapping[str, str] | None = None) -> ModuleInfo:
    """``go mod download -json path@version``: well under a second when the module cache has it."""
    with tempfile.TemporaryDirectory(prefix="sensorstack-gomod-") as empty:
        answer = subprocess.run(
            [go_executable(), "mod", "download", "-json", f"{path}@{version}"],
            capture_output=True,
            text=True,
            cwd=empty,
            env=go_environment(env),
        )
    try:
        document = json.loads(answer.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(f"go mod download {path}@{version} failed: {answer.stderr.strip()}") from None
    if answer.returncode != 0 or "Error" in document:
        raise RuntimeError(f"go mod download {path}@{version} failed: {document.get('Error', answer.stderr.strip())}")
    info = json.loads(Path(document["Info"]).read_text())
    commit = info.get("Origin", {}).get("Hash") or document.get("Origin", {}).get("Hash", "")
    return ModuleInfo(
        path=path,
        version=version,
        directory=Path(document["Dir"]),
        go_mod=Path(document["GoMod"]).read_text(),
        time=info["Time"],
        commit=commit,
    )


# --- the wrapper module build ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionCheck:
    """Run a built binary with args; its output must contain expected (proof the version stamp took)."""

    binary: str
    args: tuple[str, ...]
    expected: str


@dataclass(frozen=True)
class GoRecipe:
    """Everything that decides what a wrapper-module build produces."""

    name: str
    version: str
    packages: tuple[str, ...]
    requires: tuple[tuple[str, str], ...]
    replaces: tuple[Replace, ...] = ()
    # (package, binary name) where the name is not the one go build gives the package.
    binary_names: tuple[tuple[str, str], ...] = ()
    # (alias, binary): one program installed under a second name (Calico's calico-ipam is calico).
    aliases: tuple[tuple[str, str], ...] = ()
    tags: tuple[str, ...] = ()
    ldflags: tuple[str, ...] = ("-s", "-w")
    env: tuple[tuple[str, str], ...] = (("CGO_ENABLED", "0"),)
    go_directive: str = "1.25.0"
    module_path: str = ""
    # Modules replaced by an empty local module (nested modules the proxy does not serve and nothing built imports).
    stub_modules: tuple[str, ...] = ()
    # go.sum lines to trust, for modules the checksum database does not know (GONOSUMDB).
    go_sum: str = ""
    checks: tuple[VersionCheck, ...] = ()

    @property
    def wrapper_module_path(self) -> str:
        return self.module_path or f"sensorstack.local/{self.name}-build"

    def binary_name(self, package: str) -> str:
        return dict(self.binary_names).get(package, default_binary_name(package))

    def document(self) -> dict[str, Any]:
        """The recipe as JSON data: what the digest covers and what build.json records.

        The checks are left out: they read the output, they do not change it.
        """
        document = asdict(self)
        del document["checks"]
        return document

    def build_flags(self) -> list[str]:
        flags = ["-trimpath"]
        if self.tags:
            flags += ["-tags", ",".join(self.tags)]
        return [*flags, "-ldflags", " ".join(self.ldflags)]


def build_go(recipe: GoRecipe, cache_root: Path) -> BuiltComponent:
    """The recipe's binaries, built now or taken from the cache."""
    document = {"builder": "go-wrapper-module/1", "go": go_version(), "recipe": recipe.document()}
    return cached_build(cache_root, recipe.name, recipe.version, document, lambda folder: _build(recipe, folder))


def _build(recipe: GoRecipe, folder: Path) -> Produced:
    module = folder / "module"
    module.mkdir()
    replaces = list(recipe.replaces)
    for stub in recipe.stub_modules:
        relative = f"./stub/{stub.replace('/', '_')}"
        (module / relative).mkdir(parents=True)
        (module / relative / "go.mod").write_text(f"module {stub}\n\ngo 1.21\n")
        replaces.append(Replace(stub, relative))
    go_mod = wrapper_go_mod(recipe.wrapper_module_path, recipe.go_directive, recipe.requires, replaces)
    (module / "go.mod").write_text(go_mod)
    (module / "go.sum").write_text(recipe.go_sum)
    (module / "tools.go").write_text(tools_go(recipe.packages))
    env = go_environment(dict(recipe.env))
    timings: dict[str, Any] = {}

    started = time.monotonic()
    _run([go_executable(), "mod", "tidy", "-e"], module, env, f"{recipe.name}: go mod tidy")
    timings["mod_tidy_seconds"] = round(time.monotonic() - started, 1)

    output = folder / "bin"
    output.mkdir()
    command = [go_executable(), "build", "-v", *recipe.build_flags(), "-o", f"{output}/", *recipe.packages]
    log(f"{recipe.name}: go build {' '.join(recipe.packages)}")
    started = time.monotonic()
    timings["packages_compiled"] = _go_build_with_progress(command, module, env, recipe.name)
    timings["go_build_seconds"] = round(time.monotonic() - started, 1)

    binaries: dict[str, Path] = {}
    for package in recipe.packages:
        built = output / default_binary_name(package)
        wanted = output / recipe.binary_name(package)
        if built != wanted:
            built.rename(wanted)
        binaries[wanted.name] = wanted
    for alias, binary in recipe.aliases:
        os.link(output / binary, output / alias)
        binaries[alias] = output / alias
    for check in recipe.checks:
        verify_output(output / check.binary, check.args, check.expected)
    return Produced(binaries, timings)


def verify_output(binary: Path, args: Sequence[str], expected: str) -> str:
    """Run binary args; fail unless its combined output contains expected."""
    answer = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=60)
    output = (answer.stdout + answer.stderr).strip()
    if expected not in output:
        raise RuntimeError(f"{binary.name} {' '.join(args)} printed {output!r}, expected {expected!r}")
    log(f"{binary.name} {' '.join(args)}: {output.splitlines()[0]}")
    return output


def _run(command: Sequence[str], cwd: Path, env: Mapping[str, str], what: str) -> None:
    answer = subprocess.run(command, cwd=cwd, env=dict(env), capture_output=True, text=True)
    if answer.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {answer.returncode}):\n{answer.stderr.strip()[-4000:]}")


def is_compiled_package_line(line: str) -> bool:
    """``go build -v`` names each package it compiles on a line of its own; cached packages are not named."""
    text = line.strip()
    return bool(text) and not text.startswith("#") and " " not in text and ":" not in text


def _go_build_with_progress(command: Sequence[str], cwd: Path, env: Mapping[str, str], name: str) -> int:
    """Run go build -v and log the packages compiled so far every minute; return how many it compiled."""
    process = subprocess.Popen(command, cwd=cwd, env=dict(env), stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    compiled = 0
    errors: collections.deque[str] = collections.deque(maxlen=80)
    started = time.monotonic()
    finished = threading.Event()

    def report() -> None:
        while not finished.wait(PROGRESS_EVERY_SECONDS):
            log(f"{name}: {compiled} packages compiled in {time.monotonic() - started:.0f} s")

    threading.Thread(target=report, daemon=True).start()
    try:
        for line in process.stderr:
            if is_compiled_package_line(line):
                compiled += 1
            else:
                errors.append(line.rstrip())
        returncode = process.wait()
    finally:
        finished.set()
        if process.poll() is None:
            process.kill()
            process.wait()
    if returncode != 0:
        raise RuntimeError(f"{name}: go build failed (exit {returncode}):\n" + "\n".join(errors))
    log(f"{name}: go build compiled {compiled} packages in {time.monotonic() - started:.0f} s")
    return compiled
