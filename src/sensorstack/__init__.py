"""sensorstack: provision an IoT telemetry stack on lab hardware with Ansible."""

from pathlib import Path

# The one version: pyproject.toml reads it, and galaxy.yml and CHANGELOG.md must agree (tests/unit/test_version.py).
__version__ = "0.1.0"

_PACKAGE = Path(__file__).resolve().parent


def checkout_root() -> Path | None:
    """The repository this package runs from (an editable install or a checkout on sys.path), if any."""
    root = _PACKAGE.parents[1]
    return root if (root / "site.yml").is_file() and (root / "roles").is_dir() else None


def installed_collection() -> Path:
    """Where an installed wheel put the sensorstack.iot collection: beside this package, under ansible_collections."""
    return _PACKAGE.parent / "ansible_collections" / "sensorstack" / "iot"


def project_root() -> Path:
    """The folder that holds site.yml, playbooks/ and roles/: the checkout, or else the installed collection."""
    return checkout_root() or installed_collection()
