"""Every error answer is JSON ``{"error": {"code", "message"}}``; no traceback ever leaves the server.

:func:`error_body` is the one place that body is built: the app's handlers answer with it, and the
middleware and the HTTP protocol, which answer before the app, send it as bytes (:func:`error_bytes`).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from clipasso_core.params import describe_validation_errors

from .schemas import ErrorResponse
from .storage_faults import storage_fault

log = logging.getLogger("clipasso_server")

API_CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; "
                               "form-action 'none'")
"""The CSP of every answer that sets none of its own (JSON, SVG, GIF, PNG): an SVG opened from the API runs no
script and loads nothing, but may style itself (its strokes and the replay's keyframes are inline styles);
the live page and /docs send their own."""
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": API_CONTENT_SECURITY_POLICY}
"""Headers of every answer (added by :class:`~clipasso_server.middleware.SecurityHeadersMiddleware`, and by the
answers sent outside it: the 500 of an unexpected error and the HTTP protocol's own)."""
RAW_SECURITY_HEADERS = [(name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]
""":data:`SECURITY_HEADERS` as an ASGI or HTTP protocol writes them (lower-case name and value, in bytes)."""

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    500: "internal_error",
}


class ApiError(Exception):
    """An answer with an error status: ``status``, a stable ``code`` and one sentence."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


ERROR_DESCRIPTIONS = {
    401: "Missing or wrong bearer token (only when the server was started with --token).",
    403: "Without a token: the Host is not a loopback name (forbidden_host) or the request comes from another "
         "site's web page (forbidden_origin).",
    404: "No such job.",
    409: "The job has not succeeded (yet); the error says why.",
    413: "The request body or the image is larger than the server's limit.",
    415: "The image is not a PNG, JPEG, WebP, GIF or TIFF file.",
    422: "Invalid request: the message names the field (e.g. params.strokes) or says what is wrong with the image.",
    500: "Unexpected server error (details only in the server's log).",
    503: "The data directory cannot be written (read-only or no permission; the message names it), or the "
         "server is answering --max-requests requests already (busy; retry after Retry-After seconds).",
    507: "The data directory's disk is full; the message names it.",
}
"""What each error status of a v1 route means, for the OpenAPI document."""


def not_json() -> ApiError:
    """The 415 for a request body that is not sent as JSON."""
    return ApiError(415, "unsupported_media_type",
                    "Send the request body as JSON, with the header 'Content-Type: application/json'.")


def error_body(code: str, message: str) -> dict[str, Any]:
    """The JSON error body."""
    return {"error": {"code": code, "message": message}}


def error_bytes(code: str, message: str) -> bytes:
    """The JSON error body as bytes, for answers sent before the app (middleware, the HTTP protocol)."""
    return json.dumps(error_body(code, message)).encode()


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON error answer."""
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def openapi_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI entries of a v1 route's JSON error answers: ``statuses`` and those any route may give."""
    return {status: {"model": ErrorResponse, "description": ERROR_DESCRIPTIONS[status]}
            for status in (*statuses, 401, 403, 500, 503)}


def describe_request_errors(errors: Any) -> str:
    """One sentence naming each invalid field of a request (``params.strokes: …``) and why."""
    items = []
    for item in errors:
        location = list(item.get("loc", ()))
        if len(location) > 1 and location[0] in ("body", "path", "query", "header"):
            location = location[1:]
        message = item.get("msg", "is invalid")
        if item.get("type") == "json_invalid":
            location, message = ["body"], "is not valid JSON"
        items.append({"loc": location, "msg": message})
    return describe_validation_errors(items, empty_field="body") or "the request is invalid"


def install_error_handlers(app: FastAPI, data_dir: Path) -> None:
    """Answer API errors, validation errors, HTTP errors, storage faults and unexpected exceptions with JSON bodies.

    A disk that is full under ``data_dir`` answers 507 ``storage_full``, one that cannot be written 503
    ``storage_unavailable``, each naming the directory; any other exception is a 500 without details.
    """

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.code, error.message, error.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        if request.method in ("POST", "PUT", "PATCH") and not is_json_media_type(request.headers.get("content-type")):
            error = not_json()
            return error_response(error.status, error.code, error.message)
        code = "invalid_params" if any(_is_params(item) for item in error.errors()) else "invalid_request"
        return error_response(422, code, describe_request_errors(error.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        status = error.status_code
        if status == 400 and error.detail == "There was an error parsing the body":
            # FastAPI's answer to a body that is not UTF-8 JSON: the same as any other unreadable JSON.
            return error_response(422, "invalid_request", "body: is not valid JSON")
        if status == 404:
            message = f"There is no {shorten(request.url.path)!r} here; the API lives under /v1/."
        elif status == 405:
            message = f"{request.method[:16]} is not allowed on {shorten(request.url.path)!r}."
        else:
            message = str(error.detail) if error.detail else "The request cannot be served."
        return error_response(status, HTTP_CODES.get(status, "error"), message, getattr(error, "headers", None))

    @app.exception_handler(OSError)
    @app.exception_handler(sqlite3.Error)
    async def storage_error(request: Request, error: Exception) -> JSONResponse:
        fault = storage_fault(error, data_dir)
        if fault is None:
            log.error("unexpected %s on %s %s", type(error).__name__, request.method, request.url.path,
                      exc_info=error)
            return error_response(500, "internal_error", "The sketch server hit an unexpected error; see its log.")
        log.error("%s %s: %s", request.method, request.url.path, fault.message)
        return error_response(fault.status, fault.code, fault.message)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
        # Starlette re-raises the exception after this answer, so uvicorn logs its traceback server-side.
        log.error("unexpected %s on %s %s", type(error).__name__, request.method, request.url.path)
        return error_response(500, "internal_error", "The sketch server hit an unexpected error; see its log.",
                              SECURITY_HEADERS)


def shorten(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters (with an ellipsis), so an answer never echoes a huge path back."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_json_media_type(content_type: str | None) -> bool:
    """Whether a Content-Type header names JSON (``application/json`` or ``application/…+json``)."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


def _is_params(item: Any) -> bool:
    location = tuple(item.get("loc", ()))
    return len(location) > 1 and location[:2] == ("body", "params")
