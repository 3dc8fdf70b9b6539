"""The wheel's package list follows src/ (it is written out, since the collection maps the repository root)."""

from __future__ import annotations

import tomllib

from tests.integration.ansible_module import ROOT


def test_every_python_package_under_src_is_in_the_wheel() -> None:
    packages = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    under_src = {".".join(path.parent.relative_to(ROOT / "src").parts) for path in (ROOT / "src").rglob("__init__.py")}
    assert under_src <= packages
    assert packages - under_src == {"ansible_collections.sensorstack.iot"}
