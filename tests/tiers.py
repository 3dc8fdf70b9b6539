"""A missing prerequisite (a server, a tool, Docker) skips a developer's run and fails CI's: a test proves something
only when it runs, so under CI=true a skip for a missing prerequisite must not read as a pass.

Imperative: ``unavailable("integration", "needs influxd")``. Declarative: ``@needs(shutil.which("x") is None, "...")``.
Both skip with a reason that starts with ``MISSING``; tests/conftest.py turns those skips into failures under CI.
Skips that are not about a missing prerequisite (an opt-in real endpoint, a container that cannot load modules)
use pytest.skip directly and stay skips.
"""

from __future__ import annotations

import os

import pytest

MISSING = "prerequisite missing: "


def under_ci() -> bool:
    return bool(os.environ.get("CI"))


def unavailable(tier: str, reason: str) -> None:
    """Skip this test (or fixture) for a missing prerequisite of the tier."""
    pytest.skip(f"{MISSING}{tier}: {reason}")


def needs(missing: bool, reason: str, tier: str = "integration") -> pytest.MarkDecorator:
    """skipif for a missing prerequisite, as a decorator or a module's pytestmark."""
    return pytest.mark.skipif(missing, reason=f"{MISSING}{tier}: {reason}")
