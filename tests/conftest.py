"""Make the checkout importable as the sensorstack.iot collection, as ansible.cfg does for Ansible."""

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "collections"))

# Ansible's collection loader over the same path, so that templates rendered in tests find the sensorstack.iot.*
# filters as a play does.
from ansible.plugins.loader import init_plugin_loader  # noqa: E402

init_plugin_loader([str(ROOT / "collections")])

from tests.tiers import MISSING, under_ci  # noqa: E402

# CI runs the property-based tests with a fixed seed, so a run is reproducible; locally they explore freely.
try:
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, print_blob=True)
    if os.environ.get("CI"):
        settings.load_profile("ci")
except ImportError:  # pragma: no cover - hypothesis is in the test extra
    pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Under CI=true a skip for a missing prerequisite (tests/tiers.py) is a failure."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and under_ci() and MISSING in str(report.longrepr):
        report.outcome = "failed"
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"CI=true, where every test must run, and a prerequisite is missing: {reason}"
