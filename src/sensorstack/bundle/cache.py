"""The build cache of the bundle: outside the checkout, one folder per recipe, written atomically.

A folder is named ``<name>-<digest of its recipe>``; the recipe is everything that decides the output (versions,
flags, the digests of its inputs). A second caller with the same recipe waits on a lock instead of building twice,
and a build that fails leaves nothing behind, so what is in the cache is always whole.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

DEFAULT_CACHE = "~/.cache/sensorstack"
RECORD = "build.json"


def cache_root() -> Path:
    """``$SENSORSTACK_CACHE``, else ~/.cache/sensorstack: outside any clone, so CI on this machine stays warm."""
    return Path(os.environ.get("SENSORSTACK_CACHE") or DEFAULT_CACHE).expanduser()


def default_bundle_dir() -> Path:
    """``$SENSORSTACK_BUNDLE``, else the bundle folder in the cache: where `bundle build` writes and the lab serves
    from (the lab inventory's lab_bundle_dir reads the same two settings)."""
    return Path(os.environ.get("SENSORSTACK_BUNDLE") or cache_root() / "bundle").expanduser()


def recipe_digest(recipe: Mapping[str, Any]) -> str:
    """12 hex digits of the canonical JSON of a recipe."""
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:12]


def log(message: str) -> None:
    print(f"sensorstack bundle: {message}", file=sys.stderr, flush=True)


def sha256_file(path: Path) -> str:
    """The sha256 of a file's content, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def place(source: Path, target: Path) -> Path:
    """Put a cached file at target atomically: a hard link when both share a file system (no extra disk), else a
    copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # A name of this call's own: two builds placing the same file at once (two make targets that both set up the
    # bundle) must not link or copy onto each other's temporary file.
    temporary = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        try:
            os.link(source, temporary)
        except OSError:
            shutil.copyfile(source, temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


def cached(
    kind: str,
    name: str,
    recipe: Mapping[str, Any],
    build: Callable[[Path], None],
    root: Path | None = None,
) -> Path:
    """Return ``<root>/<kind>/<name>-<digest>``, calling ``build(folder)`` into a temporary folder when missing."""
    base = (root or cache_root()) / kind
    target = base / f"{name}-{recipe_digest(recipe)}"
    if (target / RECORD).is_file():
        return target
    base.mkdir(parents=True, exist_ok=True)
    with (base / f".{target.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / RECORD).is_file():
            return target
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=base))
        try:
            started = time.monotonic()
            build(work)
            seconds = round(time.monotonic() - started, 1)
            record = {"name": name, "recipe": dict(recipe), "seconds": seconds}
            (work / RECORD).write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
            shutil.rmtree(target, ignore_errors=True)
            work.rename(target)
            log(f"{kind}/{name} built in {seconds:.0f} s")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target
