"""Make the checkout importable as the sensorstack.iot collection, as ansible.cfg does for Ansible."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "collections"))

# Ansible's collection loader over the same path, so that templates rendered in tests find the sensorstack.iot.*
# filters as a play does.
from ansible.plugins.loader import init_plugin_loader  # noqa: E402

init_plugin_loader([str(ROOT / "collections")])

# CI runs the property-based tests with a fixed seed, so a run is reproducible; locally they explore freely.
try:
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, print_blob=True)
    if os.environ.get("CI"):
        settings.load_profile("ci")
except ImportError:  # pragma: no cover - hypothesis is in the test extra
    pass
