"""Make the checkout importable as the sensorstack.iot collection, as ansible.cfg does for Ansible."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "collections"))
