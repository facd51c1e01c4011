"""uvicorn's h11 HTTP protocol with guards: timeouts, a bound on open connections, JSON answers to bad HTTP.

A connection whose request stays incomplete (headers or body) with nothing received for
``read_timeout`` seconds is answered 408 (when no answer has started) and closed, so stalled clients
cannot hold descriptors for ever; one that sends nothing at all is closed after ``idle_timeout`` s, as
uvicorn closes a kept-alive one. Open connections are bounded below the process's file descriptor limit
(:func:`connection_limit`): a connection beyond it closes the oldest idle one (no request in progress),
so a wave of idle sockets can never use up the descriptors and stop the server accepting (the ``accept``
of a process out of descriptors fails, and asyncio retries only a second later, for as long as the wave
lasts). A request that is not valid HTTP (say a malformed Content-Length) gets the API's JSON error body
instead of uvicorn's plain-text 400.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

try:
    import resource
except ImportError:  # Windows: no descriptor limit to read
    resource = None  # type: ignore[assignment]

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .config import DEFAULT_IDLE_TIMEOUT_S, DEFAULT_MAX_CONNECTIONS, DEFAULT_READ_TIMEOUT_S
from .errors import RAW_SECURITY_HEADERS, error_bytes


log = logging.getLogger("clipasso_server")

ACCEPT_BACKLOG = 32
"""Connections waiting to be accepted, and so the most asyncio accepts in one go before the protocol sees them."""
DESCRIPTOR_RESERVE = 64 + 4 * ACCEPT_BACKLOG
"""File descriptors kept for everything but the connections kept open: the database, job files, logs, threads'
pipes (the server uses about 15), and the bursts of accepted connections whose closing is still under way (a
closed socket's descriptor goes a turn of the event loop later, while the next burst may be accepted)."""


def descriptor_limit() -> int | None:
    """The process's soft limit of open file descriptors, or ``None`` where there is none to read."""
    if resource is None:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def raise_descriptor_limit() -> None:
    """Raise the soft limit of open file descriptors to the hard one (macOS starts processes at 256)."""
    if resource is None:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))
        except (OSError, ValueError):  # not allowed here: the bound below still holds
            pass


def connection_limit(max_connections: int) -> int:
    """Connections kept open at once: ``max_connections``, fewer when the descriptor limit is lower."""
    available = descriptor_limit()
    if available is None:
        return max_connections
    return max(8, min(max_connections, available - DESCRIPTOR_RESERVE))


class GuardedH11Protocol(H11Protocol):
    """H11Protocol that closes stalled and idle connections, bounds how many are open and answers bad HTTP with
    JSON."""

    read_timeout: float = DEFAULT_READ_TIMEOUT_S
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT_S
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    open_connections: ClassVar[dict[GuardedH11Protocol, None]] = {}
    """This server's open connections, oldest first (each :func:`guarded_protocol` class has its own)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock for the first request; beyond the connection limit, close the oldest idle connection."""
        super().connection_made(transport)
        self._rearm_read_deadline(self.idle_timeout)
        self.open_connections[self] = None
        if len(self.open_connections) > connection_limit(self.max_connections):
            oldest_idle = next((other for other in self.open_connections if other.idle() and other is not self), None)
            log.warning("%d connections are open, the most this server keeps; closing %s", len(self.open_connections) - 1,
                        "the oldest idle one" if oldest_idle else "the new one (none is idle)")
            closed = oldest_idle or self
            self.open_connections.pop(closed, None)  # its descriptor goes at the next turn of the loop
            closed._cancel_read_deadline()
            closed.transport.close()

    def idle(self) -> bool:
        """Whether no request is in progress on this connection (none received yet, or its answer sent)."""
        return (self.cycle is None or self.cycle.response_complete) and self.conn.their_state in (h11.IDLE, h11.DONE)

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clock and forget the connection."""
        self._cancel_read_deadline()
        self.open_connections.pop(self, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Restart the clock on every byte while the request is incomplete; stop it once it is whole."""
        super().data_received(data)
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing():
            self._rearm_read_deadline()
        else:
            self._cancel_read_deadline()

    def on_response_complete(self) -> None:
        """Between requests uvicorn's keep-alive timeout applies instead."""
        self._cancel_read_deadline()
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        """A JSON 400 for a request that is not valid HTTP, then close."""
        self._cancel_read_deadline()
        self._send_error_and_close(400, "bad_request", "The request is not valid HTTP (for example a malformed "
                                                       "Content-Length or header line).")

    def _rearm_read_deadline(self, timeout: float | None = None) -> None:
        self._cancel_read_deadline()
        self._read_deadline = self.loop.call_later(self.read_timeout if timeout is None else timeout,
                                                   self._read_timed_out)

    def _cancel_read_deadline(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _read_timed_out(self) -> None:
        self._read_deadline = None
        if not self.transport.is_closing():  # a 408 when the request has begun, else just the close
            self._send_error_and_close(408, "request_timeout", f"Nothing was received for {self.read_timeout:g} s "
                                                               "while the request was incomplete.")

    def _send_error_and_close(self, status: int, code: str, message: str) -> None:
        body = error_bytes(code, message)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close"),
                   *RAW_SECURITY_HEADERS]
        try:
            output = self.conn.send(h11.Response(status_code=status, headers=headers))
            output += self.conn.send(h11.Data(data=body)) or b""
            output += self.conn.send(h11.EndOfMessage()) or b""
            self.transport.write(output)
        except h11.LocalProtocolError:
            pass  # an answer had already begun: just close
        self.transport.close()


def guarded_protocol(read_timeout: float, idle_timeout: float = DEFAULT_IDLE_TIMEOUT_S,
                     max_connections: int = DEFAULT_MAX_CONNECTIONS) -> type[GuardedH11Protocol]:
    """The protocol class to give uvicorn (``Config(http=…)``) for these timeouts and connection limit."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {
        "read_timeout": read_timeout, "idle_timeout": min(idle_timeout, read_timeout),
        "max_connections": max_connections, "open_connections": {}})
