"""The pages for people: the live page ``GET /jobs/{id}`` (HTML) and its script and style sheet, as package
data; and ``/docs``, the interactive API documentation (Swagger UI, loaded from a CDN, as the page says).

The page holds no job data: its script fetches the job, its preview and its files from the v1 API
(with the Bearer token the person types in, when the server has one), so these routes are served
without a token. Every answer carries a strict Content-Security-Policy: only the server's own
scripts, styles and connections, nothing inline, no framing.
"""

from __future__ import annotations

import html
from functools import cache
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import Response

from .errors import ApiError
from .store import is_job_id

PAGE_PREFIXES = ("/jobs/", "/static/live/")
"""Paths of the page and its files: served without a token (they hold no data)."""

CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
                           "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
                           "frame-ancestors 'none'")
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
STATIC_FILES = {"live.js": "text/javascript; charset=utf-8", "live.css": "text/css; charset=utf-8"}
HTML_TYPE = "text/html; charset=utf-8"

SWAGGER_CDN = "https://cdn.jsdelivr.net"
DOCS_CONTENT_SECURITY_POLICY = (f"default-src 'none'; script-src {SWAGGER_CDN} 'unsafe-inline'; "
                                f"style-src {SWAGGER_CDN} 'unsafe-inline'; img-src 'self' data: https:; "
                                "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
"""/docs runs Swagger UI's script from the CDN and its inline start-up script; it may call only this server."""
DOCS_NOTE = ('<p style="font-family: sans-serif; margin: 1em">This page loads Swagger UI from ' + SWAGGER_CDN +
             ' (the server holds no copy of it): without internet access it stays blank. The same API description '
             'is <a href="/openapi.json">/openapi.json</a>, served by this server.</p>')

router = APIRouter(include_in_schema=False)


@cache
def page_file(name: str) -> str:
    """The text of one file of the live page (package data in ``live_page/``)."""
    return resources.files(__package__).joinpath("live_page", name).read_text(encoding="utf-8")


@router.get("/jobs/{job_id}")
def live_page(job_id: str, request: Request) -> Response:
    """The live page of job ``job_id``, or a 404 page when there is no such job.

    With a server token the page is served for any well-formed id: whether a job exists is data, which the
    page's script learns from the API once the person has given the token.
    """
    token = request.app.state.config.token
    exists = is_job_id(job_id) if token else request.app.state.queue.store.get(job_id) is not None
    template = page_file("page.html" if exists else "not_found.html")
    body = template.replace("{job_id}", html.escape(job_id[:64], quote=True))
    return Response(body, status_code=200 if exists else 404, media_type=HTML_TYPE, headers=PAGE_HEADERS)


@router.get("/static/live/{name}")
def live_file(name: str) -> Response:
    """The live page's script or style sheet."""
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise ApiError(404, "not_found", f"There is no file {name[:64]!r} here.")
    return Response(page_file(name), media_type=media_type, headers=PAGE_HEADERS)


@router.get("/docs")
def api_docs() -> Response:
    """Swagger UI over ``/openapi.json``, saying that it comes from a CDN."""
    page = get_swagger_ui_html(openapi_url="/openapi.json", title="CLIPasso sketch server - API")
    body = bytes(page.body).decode("utf-8").replace("<body>", "<body>\n" + DOCS_NOTE, 1)
    return Response(body, media_type=HTML_TYPE, headers={"Content-Security-Policy": DOCS_CONTENT_SECURITY_POLICY,
                                                         "Referrer-Policy": "no-referrer"})
