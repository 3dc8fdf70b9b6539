"""Where the wheels of an installed sensorstack's dependencies are kept for offline installs (scripts/fill-wheelhouse).

Keyed by a hash of what decides them: pyproject.toml's runtime dependencies and requirements/constraints.txt.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

from sensorstack.bundle.cache import cache_root


def runtime_requirements(root: Path) -> list[str]:
    """pyproject.toml's [project] dependencies: what `pip install sensorstack-*.whl` pulls in."""
    return list(tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"])


def wheelhouse_dir(root: Path) -> Path:
    recipe = "\n".join(runtime_requirements(root)) + "\n" + (root / "requirements/constraints.txt").read_text()
    return cache_root() / "wheelhouse" / hashlib.sha256(recipe.encode()).hexdigest()[:12]
