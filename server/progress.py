"""Time of a running job: seconds since its run started and the estimated seconds left, from the measured pace.

The pace is measured from the first progress report on (model loading and stroke initialisation happen
before it and are not repeated), so the estimate is ``null`` until two reports have come in.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class JobClock:
    """Started when a run starts; :meth:`times` gives ``elapsed_s`` and ``eta_s`` for a progress report."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started = clock()
        self._first: tuple[int, float] | None = None

    def times(self, iteration: int, total: int) -> dict[str, float | None]:
        """``{"elapsed_s", "eta_s"}`` after ``iteration`` of ``total`` steps (``eta_s`` is 0 when done, null until known)."""
        now = self._clock()
        eta: float | None = None
        if iteration >= total:
            eta = 0.0
        elif self._first is None:
            self._first = (iteration, now)
        elif iteration > self._first[0]:
            pace = (now - self._first[1]) / (iteration - self._first[0])
            eta = round(pace * (total - iteration), 3)
        return {"elapsed_s": round(now - self._started, 3), "eta_s": eta}
