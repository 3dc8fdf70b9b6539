"""The one retry loop the InfluxDB and Grafana clients share."""

from __future__ import annotations

import pytest
from ansible_collections.sensorstack.iot.plugins.module_utils.retry import TryAgain, call_with_retries


class Refused(Exception):
    pass


def test_a_success_after_failures_returns_its_value_after_one_pause_per_failure() -> None:
    sleeps: list[float] = []

    def operation(attempt: int) -> str:
        if attempt < 3:
            raise TryAgain(Refused(f"attempt {attempt}"))
        return "answer"

    assert call_with_retries(operation, 3, lambda attempt: attempt * 1.5, sleeps.append) == "answer"
    assert sleeps == [1.5, 3.0]


def test_the_last_attempts_error_is_raised_once_none_is_left() -> None:
    sleeps: list[float] = []
    calls: list[int] = []

    def operation(attempt: int) -> str:
        calls.append(attempt)
        raise TryAgain(Refused(f"attempt {attempt}"))

    with pytest.raises(Refused, match="attempt 4"):
        call_with_retries(operation, 4, lambda attempt: 0.1, sleeps.append)
    assert calls == [1, 2, 3, 4] and len(sleeps) == 3


def test_any_other_error_ends_the_loop_at_once() -> None:
    sleeps: list[float] = []

    def operation(attempt: int) -> str:
        raise ValueError("not worth another attempt")

    with pytest.raises(ValueError):
        call_with_retries(operation, 5, lambda attempt: 1.0, sleeps.append)
    assert sleeps == []


def test_no_retries_still_makes_one_attempt() -> None:
    with pytest.raises(Refused):
        call_with_retries(lambda attempt: (_ for _ in ()).throw(TryAgain(Refused())), 0, lambda attempt: 1.0)
