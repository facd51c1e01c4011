"""Waiting in tests for something to hold, without timing assertions: poll until true or fail after a generous time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(check: Callable[[], Any], timeout: float = 60.0, what: str = "the condition",
               every: float = 0.02) -> Any:
    """Call ``check`` every ``every`` seconds until it returns something true, and return that; fail, naming
    ``what``, after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)
    return value
