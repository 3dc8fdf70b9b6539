"""Bounded retries for the service clients (InfluxDB, Grafana): one loop, each client deciding what to retry.

``call_with_retries(operation, attempts, delay)`` calls ``operation(attempt)`` (1-based) until it returns. The
operation raises ``TryAgain(error)`` for a failure worth another attempt; after the last attempt that ``error`` is
raised instead. Any other exception ends the loop at once. ``delay(attempt)`` is the pause after a failed attempt.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

Result = TypeVar("Result")

READ_METHODS = frozenset({"GET", "HEAD"})


def may_send_again(method: str, error: Exception) -> bool:
    """Whether a request that failed with ``error`` can be sent again without doing its change twice: a read always,
    a write only when it never reached the server (connection refused, name not resolved). A write that timed out
    may have been done: sending it again could repeat it, or fail on what it already did."""
    reason = getattr(error, "reason", error)
    refused = isinstance(reason, (ConnectionRefusedError, socket.gaierror))
    return refused or method in READ_METHODS


class TryAgain(Exception):
    """Raised by an operation whose failure another attempt may cure; ``error`` is raised if none is left."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def call_with_retries(
    operation: Callable[[int], Result],
    attempts: int,
    delay: Callable[[int], float],
    sleep: Callable[[float], None] = time.sleep,
) -> Result:
    for attempt in range(1, max(1, attempts) + 1):
        try:
            return operation(attempt)
        except TryAgain as failure:
            if attempt >= attempts:
                raise failure.error from None
        sleep(delay(attempt))
    raise AssertionError("unreachable: the last attempt returns or raises")
