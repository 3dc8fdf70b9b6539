"""The opt-in Mitogen strategy: what a run's environment needs to use it.

Mitogen (PyPI ``mitogen``, ``pip install 'sensorstack[mitogen]'``) keeps one Python interpreter per host for the
whole run and runs each module inside it, where Ansible starts a connection, a Python and an AnsiballZ unpacking per
task and host. It accelerates only the connections it knows by their short names (``ssh``, ``docker``, ``local``,
...), which is why the lab's inventories name the ``docker`` connection by its short name. What it changes for a
run is in docs/mitogen.md; the measurements are in benchmarks/README.md.

``python -m sensorstack.mitogen_strategy`` prints the two ``export`` lines that turn it on for any Ansible command
run from that shell (``eval "$(python -m sensorstack.mitogen_strategy)"``): plain ``ansible-playbook``, the test
suite (make test-mitogen, which keeps molecule on Ansible's strategy).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

STRATEGY = "mitogen_linear"
# Where the CLI and the API read the default of --mitogen from: set it to 1 (or true, yes) to turn it on.
ENVIRONMENT_SWITCH = "SENSORSTACK_MITOGEN"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


class MitogenUnavailable(RuntimeError):
    """Mitogen was asked for and is not installed in the Python that runs Ansible."""


def switched_on(value: str | None = None) -> bool:
    """Whether $SENSORSTACK_MITOGEN (or ``value``) asks for Mitogen; anything but a yes or a no is an error."""
    raw = os.environ.get(ENVIRONMENT_SWITCH, "") if value is None else value
    word = raw.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"{ENVIRONMENT_SWITCH} must be 1 or 0 (true/false, yes/no), got {raw!r}")


def strategy_plugins() -> Path:
    """The folder of Mitogen's strategy plugins, in the package installed beside this one."""
    try:
        import ansible_mitogen
    except ImportError as error:
        raise MitogenUnavailable(
            "--mitogen (or SENSORSTACK_MITOGEN=1) needs Mitogen in the Python that runs Ansible: "
            f"{sys.executable} -m pip install 'sensorstack[mitogen]'"
        ) from error
    return Path(ansible_mitogen.__file__).resolve().parent / "plugins" / "strategy"


def environment() -> dict[str, str]:
    """The variables that make ansible-playbook run every play with Mitogen's linear strategy."""
    return {"ANSIBLE_STRATEGY_PLUGINS": str(strategy_plugins()), "ANSIBLE_STRATEGY": STRATEGY}


def main() -> int:
    try:
        variables = environment()
    except MitogenUnavailable as error:
        print(error, file=sys.stderr)
        return 1
    for name, value in variables.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
