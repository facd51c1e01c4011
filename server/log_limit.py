"""A logging filter that keeps the log readable under a storm: each kind of message is written at most a
few times per window, then counted, and the count is reported with the next one that gets through.

A "kind" is the logger, level and message template (``record.msg`` before formatting). Only warnings
and errors are limited: information lines (jobs, the access log) always pass.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

MAX_KINDS = 1000


class RepeatLimitFilter(logging.Filter):
    """Pass at most ``burst`` warnings of one kind per ``window_s`` seconds; say how many were held back."""

    def __init__(self, burst: int = 5, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.burst = burst
        self.window_s = window_s
        self.clock = clock
        self._kinds: OrderedDict[tuple[str, int, str], list[float | int]] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether to write ``record`` (warnings and errors only are limited; information always passes)."""
        if record.levelno < logging.WARNING:
            return True
        kind = (record.name, record.levelno, str(record.msg)[:200])
        now = self.clock()
        state = self._kinds.get(kind)  # [window start, written, held back]
        if state is None or now - state[0] >= self.window_s:
            held = int(state[2]) if state is not None else 0
            self._kinds[kind] = [now, 1, 0]
            self._kinds.move_to_end(kind)
            while len(self._kinds) > MAX_KINDS:
                self._kinds.popitem(last=False)
            if held:
                record.msg = f"{record.msg} [{held} more like this were not shown]"
            return True
        if state[1] <= self.burst:
            state[1] = int(state[1]) + 1
            if state[1] > self.burst:
                record.msg = f"{record.msg} [repeated too often: more like this are left out for a while]"
            return True
        state[2] = int(state[2]) + 1
        return False
