"""What the server does when nobody needs it: free the CLIP models, and (when asked to) exit.

``--unload-after MINUTES``: after that long without a job the models are freed (their GPU memory handed
back); the next job loads them again. ``--exit-when-idle MINUTES``: after that long without a job and
without a request the server ends itself, as one the Inkscape extension started on demand does. A thread
looks every few seconds; a middleware notes the time of every HTTP request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .model_cache import ModelCache

log = logging.getLogger("clipasso_server")

MAX_CHECK_EVERY_S = 5.0
MIN_CHECK_EVERY_S = 0.05


class IdleWatch:
    """Frees ``models`` after ``unload_after_s`` without a job; calls ``request_exit`` after ``exit_after_s``
    without a job or a request (0 turns either off). ``busy()`` says whether a job is queued or running."""

    def __init__(self, models: ModelCache, busy: Callable[[], bool], unload_after_s: float, exit_after_s: float,
                 request_exit: Callable[[], None] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.models = models
        self.busy = busy
        self.unload_after_s = unload_after_s
        self.exit_after_s = exit_after_s
        self.request_exit = request_exit
        self._clock = clock
        self._last_activity = clock()
        self._exiting = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        shortest = min((limit for limit in (unload_after_s, exit_after_s) if limit > 0), default=0.0)
        self.check_every_s = min(MAX_CHECK_EVERY_S, max(MIN_CHECK_EVERY_S, shortest / 10))

    @property
    def active(self) -> bool:
        """Whether there is anything to watch for."""
        return self.unload_after_s > 0 or self.exit_after_s > 0

    def saw_request(self) -> None:
        """An HTTP request arrived: the server is not idle."""
        self._last_activity = self._clock()

    def check(self) -> None:
        """One look: note a job, else free the models or ask to exit if they have been idle long enough."""
        try:
            busy = self.busy()
        except Exception as error:  # the store may fail for a while; an unknown state counts as busy
            log.debug("idle check: cannot tell whether jobs wait: %s", error)
            busy = True
        now = self._clock()
        if busy:
            self._last_activity = now
            return
        if self.unload_after_s > 0:
            self.models.unload_if_idle(self.unload_after_s)
        idle = now - self._last_activity
        if self.exit_after_s > 0 and idle >= self.exit_after_s and not self._exiting and self.request_exit:
            self._exiting = True
            log.info("no job and no request for %.1f minutes: exiting (--exit-when-idle)", idle / 60)
            self.request_exit()

    def start(self) -> None:
        """Look every few seconds in a thread, until :meth:`stop`."""
        if not self.active or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="clipasso-idle-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the watching thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.check_every_s):
            self.check()


class RequestClock:
    """ASGI middleware: tells the :class:`IdleWatch` of every HTTP request (health checks and page polls too)."""

    def __init__(self, app: Callable[..., Awaitable[None]], watch: IdleWatch) -> None:
        self.app = app
        self.watch = watch

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[..., Any],
                       send: Callable[..., Any]) -> None:
        if scope["type"] == "http":
            self.watch.saw_request()
        await self.app(scope, receive, send)
