"""uvicorn's h11 HTTP protocol with two guards: a read timeout and JSON answers to malformed requests.

A connection whose request stays incomplete (headers or body) with nothing received for
``read_timeout`` seconds is answered 408 (when no answer has started) and closed, so stalled clients
cannot hold descriptors for ever. A request that is not valid HTTP (say a malformed Content-Length)
gets the API's JSON error body instead of uvicorn's plain-text 400.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .config import DEFAULT_READ_TIMEOUT_S
from .errors import SECURITY_HEADERS, error_bytes


class GuardedH11Protocol(H11Protocol):
    """H11Protocol that closes stalled connections after ``read_timeout`` s and answers bad HTTP with JSON."""

    read_timeout: float = DEFAULT_READ_TIMEOUT_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock for the first request."""
        super().connection_made(transport)
        self._rearm_read_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clock."""
        self._cancel_read_deadline()
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

    def _rearm_read_deadline(self) -> None:
        self._cancel_read_deadline()
        self._read_deadline = self.loop.call_later(self.read_timeout, self._read_timed_out)

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
                   *((name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items())]
        try:
            output = self.conn.send(h11.Response(status_code=status, headers=headers))
            output += self.conn.send(h11.Data(data=body)) or b""
            output += self.conn.send(h11.EndOfMessage()) or b""
            self.transport.write(output)
        except h11.LocalProtocolError:
            pass  # an answer had already begun: just close
        self.transport.close()


def guarded_protocol(read_timeout: float) -> type[GuardedH11Protocol]:
    """The protocol class to give uvicorn (``Config(http=…)``) for this read timeout."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"read_timeout": read_timeout})
