"""What the modules say in check mode about something an earlier task of the same run would create.

In check mode that task only reported the change (a database, a dashboard's folder, the broker's folder), so the
object is missing: a module warns and plans on, where a real run fails.
"""

from __future__ import annotations


def created_earlier_warning(problem: str) -> str:
    """The check-mode warning for ``problem``, a missing object that a real run would fail on."""
    return f"{problem}; check mode goes on as if an earlier task had created it"
