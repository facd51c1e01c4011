"""The job routes of the v1 API: submit an image, read a job's state and result, cancel it.

A submission is checked whole before it is queued (its parameters, base64, the image decoded once, the
mask inside the image), in a worker thread under the heavy-work limit (:mod:`~clipasso_server.heavy_work`),
so a job that runs never fails for its input and a flood of uploads never stalls the event loop. An identical
queued, running or succeeded job is returned instead of running again; each client that asked for a shared
job holds an interest in it, and a cancel withdraws only the canceller's (the job stops when no client wants it).
:func:`job_state` builds the state body every route answers with.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from PIL import Image
from pydantic import ValidationError

from clipasso_core.errors import ImageError, ImageTooLargeError, UnsupportedImageError
from clipasso_core.image import CanvasFrame, read_image
from clipasso_core.mask import MaskError, mask_coverage

from .errors import ApiError, is_json_media_type, not_json, openapi_errors
from .heavy_work import run_heavy
from .job_files import find_job, queue_of, stored_result
from .job_queue import JobQueue, SharedJob
from .job_status import JobStatus
from .schemas import CLIENT_PATTERN, MAX_CLIENT_LENGTH, JobCreated, JobRequest, JobState, SketchResultBody
from .store import DEFAULT_CLIENT, Job, iso_time

_WHITESPACE = re.compile(rb"\s+")

router = APIRouter()
ClientQuery = Annotated[str | None, Query(min_length=1, max_length=MAX_CLIENT_LENGTH, pattern=CLIENT_PATTERN,
                                          description="The client you submitted as (the body's client), if you named "
                                                      "one: a cancel withdraws only that client's interest.")]


def job_state(queue: JobQueue, job: Job) -> JobState:
    """The state body of ``job`` (its view, see :meth:`JobQueue.view`): status, live progress, error (also one
    that keeps its outcome from the disk), place in the queue, settings."""
    return JobState(
        id=job.id,
        status=job.status,
        progress=job.progress,
        error=job.error,
        created_at=iso_time(job.created_at) or "",
        started_at=iso_time(job.started_at),
        finished_at=iso_time(job.finished_at),
        client=job.client,
        worker=job.worker,
        queue_position=queue.store.queue_position(job.id) if job.status == JobStatus.QUEUED else None,
        settings=job_settings(job),
    )


PATH_DATA_PARAMS = {"mask", "init_paths", "locked"}
"""Parameters left out of a job's ``settings``: path data, which can be long and means nothing to read."""


def job_settings(job: Job) -> dict[str, Any] | None:
    """The job's parameters as it runs them, without its path data; ``None`` when they no longer read."""
    if job.params is None:
        return None
    return job.params.model_dump(mode="json", exclude=PATH_DATA_PARAMS)


SUBMISSION_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/JobRequest"}}}}}
"""The OpenAPI body of ``POST /v1/jobs``: the route reads and validates it itself, off the event loop."""


def add_submission_schema(document: dict[str, Any]) -> None:
    """Put the schema of :class:`JobRequest` (and of the models it uses) into an OpenAPI ``document``."""
    schema = JobRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, definition in schema.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    schemas["JobRequest"] = schema


@router.post("/v1/jobs", status_code=202, response_model=JobCreated, responses=openapi_errors(413, 415, 422, 503, 507),
             openapi_extra=SUBMISSION_BODY,
             summary="Submit an image to sketch (an identical earlier job is returned instead of running again)")
async def submit_job(request: Request) -> JobCreated:
    content_type = request.headers.get("content-type")
    if content_type is not None and not is_json_media_type(content_type):
        raise not_json()
    raw = await request.body()
    client = token_client(request.headers.get("authorization"))
    return await run_heavy(request, lambda: submit(queue_of(request), raw, request.app.state.config.max_pixels,
                                                   client))


def submit(queue: JobQueue, raw: bytes, max_pixels: int, token_name: str) -> JobCreated:
    """Validate a submission's body whole (JSON, parameters with their path data, base64, the image decoded once,
    the mask inside the image) and queue it, or return the identical job already known."""
    try:
        body = JobRequest.model_validate_json(raw)
    except ValidationError as error:
        raise RequestValidationError([{**item, "loc": ("body", *item["loc"])} for item in error.errors()]) from None
    data = decode_image_field(body.image)
    key = queue.cache_key(data, body.params)
    client = body.client or token_name
    existing = queue.find_reusable(key, data)
    if existing is not None:
        queue.join(existing, client)
    else:
        size = check_image(data, max_pixels)
        if body.params.mask is not None:
            check_mask(body.params.mask, size)
        existing = queue.submit(data, body.params, key, client)
    return JobCreated(id=existing.id, status=existing.status)


@router.get("/v1/jobs/{job_id}", response_model=JobState, responses=openapi_errors(404),
            summary="A job's status, progress and error")
def get_job(job_id: str, request: Request, client: ClientQuery = None) -> JobState:
    queue = queue_of(request)
    return job_state(queue, queue.for_client(find_job(queue, job_id), request_client(request, client)))


@router.get("/v1/jobs/{job_id}/result", response_model=SketchResultBody, responses=openapi_errors(404, 409),
            summary="A succeeded job's strokes, one entry per abstraction level")
def get_result(job_id: str, request: Request) -> dict[str, Any]:
    queue = queue_of(request)
    return stored_result(queue, find_job(queue, job_id))


@router.delete("/v1/jobs/{job_id}", response_model=JobState, responses=openapi_errors(404, 409, 503, 507),
               summary="Cancel your interest in a queued or running job: it stops when no client wants it any more "
                       "(a finished job is left as it is)")
def cancel_job(job_id: str, request: Request, client: ClientQuery = None) -> JobState:
    queue = queue_of(request)
    find_job(queue, job_id)
    try:
        job = queue.cancel(job_id, request_client(request, client))
    except SharedJob:
        raise ApiError(409, "job_shared", "Several clients asked for this job and you are not one of them; cancel it "
                                          "as the client that submitted it (?client=NAME).") from None
    if job is None:
        raise ApiError(404, "not_found", f"There is no job {job_id[:64]!r} on this server.")
    return job_state(queue, job)



def request_client(request: Request, named: str | None) -> str:
    """Who makes a request: the client it names, else its bearer token's identity, else ``local``."""
    return named or token_client(request.headers.get("authorization"))


def token_client(authorization: str | None) -> str:
    """The client name of a request that names none: its bearer token's identity, else ``local``."""
    if not authorization or not authorization.startswith("Bearer "):
        return DEFAULT_CLIENT
    return "token-" + hashlib.sha256(authorization[7:].encode()).hexdigest()[:12]


def decode_image_field(text: str) -> bytes:
    """The image bytes of the request's base64 ``image`` (a ``data:…;base64,`` prefix is allowed)."""
    if text.startswith("data:") and "," in text[:200]:
        text = text.split(",", 1)[1]
    try:
        data = base64.b64decode(_WHITESPACE.sub(b"", text.encode("ascii")), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise ApiError(422, "invalid_base64", "image: is not valid base64; send the base64 of a PNG, JPEG, WebP, "
                                              "GIF or TIFF file.") from None
    if not data:
        raise ApiError(422, "invalid_base64", "image: is empty; send the base64 of a PNG, JPEG, WebP, GIF or TIFF "
                                              "file.")
    return data


def check_image(data: bytes, max_pixels: int) -> tuple[int, int]:
    """Decode the whole image once, so a damaged or oversized one is refused at submission; its width and height."""
    try:
        image = read_image(data, max_pixels)
    except ImageTooLargeError:
        size = _size(data)
        what = f"is {size} pixels, more" if size else "has more pixels"
        raise ApiError(413, "image_too_large", f"The image {what} than this server's limit of {max_pixels:,} "
                                               "pixels (--max-pixels); scale it down first.") from None
    except UnsupportedImageError as error:
        raise ApiError(415, error.code, str(error)) from None
    except ImageError as error:
        raise ApiError(422, error.code, str(error)) from None
    return image.width, image.height


def check_mask(mask: str, size: tuple[int, int]) -> None:
    """Refuse a mask that encloses nothing or lies outside the submitted image."""
    try:
        mask_coverage(mask, CanvasFrame(*size))
    except MaskError as error:
        raise ApiError(422, error.code, f"params.mask: {error}") from None


def _size(data: bytes) -> str | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return f"{image.width}×{image.height}"
    except Exception:  # the size is only for the message
        return None
