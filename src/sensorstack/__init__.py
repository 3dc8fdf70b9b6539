"""sensorstack: provision an IoT telemetry stack on lab hardware with Ansible."""

from pathlib import Path

__version__ = "0.1.0"


def project_root() -> Path:
    """Return the checkout that holds site.yml, roles/ and inventories/."""
    return Path(__file__).resolve().parents[2]
