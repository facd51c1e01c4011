"""ASGI middleware in front of every route: the bearer-token check, the request body size limit, and the
headers every answer carries (``X-Content-Type-Options: nosniff`` and a Content-Security-Policy)."""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import RAW_SECURITY_HEADERS, error_bytes


async def send_error(send: Send, status: int, code: str, message: str,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """Send a JSON error answer straight from middleware."""
    body = error_bytes(code, message)
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    *(headers or [])],
    })
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value
    return None


class BearerTokenMiddleware:
    """With a token configured, every request must carry ``Authorization: Bearer <token>`` (else 401).

    Paths starting with one of ``public_prefixes`` (pages that hold no data) are served without it.
    """

    def __init__(self, app: ASGIApp, token: str, public_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()
        self.public_prefixes = public_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.public_prefixes and scope["path"].startswith(self.public_prefixes)):
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"authorization") or b""
        if not hmac.compare_digest(given, self.expected):
            message = ("This sketch server needs a token: send 'Authorization: Bearer <token>' with the token "
                       "it was started with." if not given else "The bearer token is wrong.")
            await send_error(send, 401, "unauthorized", message, [(b"www-authenticate", b"Bearer")])
            return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """Answer 413 when a request body is larger than ``max_bytes``: by its Content-Length, or while reading it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> str:
        return (f"The request body is larger than the server's limit of {self.max_bytes / 1e6:g} MB "
                "(clipasso-server --max-body-mb); send a smaller image.")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await send_error(send, 400, "bad_request", "The Content-Length header is not a number.")
                return
            if declared > self.max_bytes:
                await send_error(send, 413, "body_too_large", self._too_large())
                return
        # Read (at most max_bytes of) the body here, so a body without Content-Length is bounded too.
        chunks: list[bytes] = []
        size = 0
        disconnected: Message | None = None
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected = message
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await send_error(send, 413, "body_too_large", self._too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                if disconnected is not None:
                    return disconnected
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class SecurityHeadersMiddleware:
    """Every answer, errors included, says ``X-Content-Type-Options: nosniff`` and has a Content-Security-Policy
    (:data:`~clipasso_server.errors.SECURITY_HEADERS`, each unless the route set its own)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                names = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in RAW_SECURITY_HEADERS if name not in names]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
