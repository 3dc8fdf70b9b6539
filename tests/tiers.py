"""What the slow tiers (cluster, VM) share: a missing prerequisite skips a developer's run and fails CI's."""

from __future__ import annotations

import os

import pytest


def unavailable(tier: str, reason: str) -> None:
    """Skip locally, fail under CI=true: a tier proves something only when it runs, a skip must not read as a pass."""
    if os.environ.get("CI"):
        pytest.fail(f"the {tier} tier cannot run: {reason}")
    pytest.skip(reason)
