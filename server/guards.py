"""ASGI middleware that decides which requests get in: the loopback Host/Origin rule, the concurrency
limit, and HEAD served as GET without a body.

Without a token the server is for this computer only, but a web page can still reach 127.0.0.1 (and,
by re-resolving its own name to 127.0.0.1, read the answers: DNS rebinding). So without a token only
loopback Host names are served, and a request from a web page (an ``Origin`` header) only when that
page is the server's own (same loopback host name family, same port).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .middleware import _header, send_error

LOOPBACK_NAMES = ("localhost", "localhost.")


def split_host(value: str) -> tuple[str, int | None]:
    """``"[::1]:8765"`` → ``("::1", 8765)``; ``"localhost"`` → ``("localhost", None)``; ValueError if malformed."""
    parsed = urlsplit(f"//{value}")
    if parsed.hostname is None:
        raise ValueError(f"no host name in {value!r}")
    return parsed.hostname, parsed.port


def is_loopback_name(host: str) -> bool:
    """Whether a Host/Origin host name is a loopback one: localhost, 127.0.0.0/8 or ::1 (no DNS lookup)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LoopbackOnlyMiddleware:
    """Without a token: 403 for a non-loopback ``Host`` (forbidden_host) or a foreign ``Origin`` (forbidden_origin)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = (_header(scope, b"host") or b"").decode("latin-1")
        try:
            host_name, _ = split_host(host) if host else ("localhost", None)
        except ValueError:
            host_name = ""
        if not is_loopback_name(host_name):
            await send_error(send, 403, "forbidden_host",
                             f"This sketch server answers only to 127.0.0.1, localhost or [::1], not to "
                             f"{host[:80]!r}; start it with --token to serve other names.")
            return
        origin = _header(scope, b"origin")
        if origin is not None and not self._own_page(origin.decode("latin-1"), scope):
            await send_error(send, 403, "forbidden_origin",
                             f"Requests from web pages of other sites ({origin.decode('latin-1')[:80]!r}) are "
                             "refused; only the server's own pages may call it.")
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _own_page(origin: str, scope: Scope) -> bool:
        parsed = urlsplit(origin)
        server = scope.get("server") or (None, None)
        try:
            port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme)
        except ValueError:
            return False
        return (parsed.scheme == "http" and parsed.hostname is not None and is_loopback_name(parsed.hostname)
                and port == server[1])


class ConcurrencyLimitMiddleware:
    """At most ``max_requests`` requests in progress; more get a JSON 503 ``busy`` with Retry-After."""

    def __init__(self, app: ASGIApp, max_requests: int) -> None:
        self.app = app
        self.max_requests = max_requests
        self.in_progress = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.in_progress >= self.max_requests:
            await send_error(send, 503, "busy",
                             f"The sketch server is answering {self.max_requests} requests already "
                             "(--max-requests); try again in a moment.", [(b"retry-after", b"1")])
            return
        self.in_progress += 1  # one event loop: no lock needed
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_progress -= 1


class HeadAsGetMiddleware:
    """Answer ``HEAD`` on every GET route: run it as GET and send the status and headers only."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)
