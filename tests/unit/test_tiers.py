"""A skip for a missing prerequisite is a skip on a developer's machine and a failure under CI=true."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SESSION = {
    "conftest.py": "from tests.conftest import pytest_runtest_makereport  # noqa: F401\n",
    "test_sample.py": (
        "import pytest\n"
        "from tests.tiers import needs, unavailable\n\n"
        "@needs(True, 'needs a server that is not here')\n"
        "def test_declared():\n    pass\n\n"
        "def test_imperative():\n    unavailable('integration', 'needs a tool that is not here')\n\n"
        "def test_opt_in():\n    pytest.skip('an opt-in real endpoint is not configured')\n"
    ),
}


def run_session(tmp_path: Path, ci: bool) -> subprocess.CompletedProcess[str]:
    for name, text in SESSION.items():
        (tmp_path / name).write_text(text)
    environment = {key: value for key, value in os.environ.items() if key != "CI"}
    environment["PYTHONPATH"] = str(ROOT)
    if ci:
        environment["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        check=False,
    )


@pytest.mark.parametrize(("ci", "summary"), [(False, "3 skipped"), (True, "1 skipped")])
def test_a_missing_prerequisite_fails_only_under_ci(tmp_path: Path, ci: bool, summary: str) -> None:
    result = run_session(tmp_path, ci)
    assert summary in result.stdout, result.stdout
    if ci:
        assert result.returncode == 1, result.stdout
        # The declared one is refused at setup (an error), the imperative one in the test (a failure).
        assert "1 failed, 1 skipped, 1 error" in result.stdout, result.stdout
        assert "a prerequisite is missing" in result.stdout, result.stdout
    else:
        assert result.returncode == 0, result.stdout
