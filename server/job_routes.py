"""The job routes of the v1 API: submit an image, read a job's state and result, cancel it.

A submission is checked whole before it is queued (base64, the image decoded once, the mask inside
the image), so a job that runs never fails for its input; an identical earlier job is returned instead
of running again. :func:`job_state` builds the state body every route answers with.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import threading
from typing import Any

from fastapi import APIRouter, Request
from PIL import Image

from clipasso_core.errors import ImageError, ImageTooLargeError, UnsupportedImageError
from clipasso_core.image import CanvasFrame, read_image
from clipasso_core.mask import MaskError, mask_coverage

from .errors import ApiError, openapi_errors
from .job_files import find_job, queue_of, stored_result
from .job_queue import JobQueue
from .job_status import JobStatus
from .schemas import JobCreated, JobRequest, JobState, SketchResultBody
from .store import DEFAULT_CLIENT, Job, iso_time

MAX_PARALLEL_DECODES = 2
"""Uploads decoded at once for validation: each may take ~10 bytes per pixel, so this bounds the memory."""
_WHITESPACE = re.compile(rb"\s+")

router = APIRouter()
decode_slots = threading.BoundedSemaphore(MAX_PARALLEL_DECODES)


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


@router.post("/v1/jobs", status_code=202, response_model=JobCreated, responses=openapi_errors(413, 415, 422, 503, 507),
             summary="Submit an image to sketch (an identical earlier job is returned instead of running again)")
def submit_job(body: JobRequest, request: Request) -> JobCreated:
    queue = queue_of(request)
    max_pixels = request.app.state.config.max_pixels
    data = decode_image_field(body.image)
    key = queue.cache_key(data, body.params)
    existing = queue.find_reusable(key, data)
    if existing is None:
        with decode_slots:
            size = check_image(data, max_pixels)
        if body.params.mask is not None:
            check_mask(body.params.mask, size)
        client = body.client or token_client(request.headers.get("authorization"))
        existing = queue.submit(data, body.params, key, client)
    return JobCreated(id=existing.id, status=existing.status)


@router.get("/v1/jobs/{job_id}", response_model=JobState, responses=openapi_errors(404),
            summary="A job's status, progress and error")
def get_job(job_id: str, request: Request) -> JobState:
    queue = queue_of(request)
    return job_state(queue, find_job(queue, job_id))


@router.get("/v1/jobs/{job_id}/result", response_model=SketchResultBody, responses=openapi_errors(404, 409),
            summary="A succeeded job's strokes, one entry per abstraction level")
def get_result(job_id: str, request: Request) -> dict[str, Any]:
    queue = queue_of(request)
    return stored_result(queue, find_job(queue, job_id))


@router.delete("/v1/jobs/{job_id}", response_model=JobState, responses=openapi_errors(404, 503, 507),
               summary="Cancel a queued or running job (a finished job is left as it is)")
def cancel_job(job_id: str, request: Request) -> JobState:
    queue = queue_of(request)
    find_job(queue, job_id)
    job = queue.cancel(job_id)
    if job is None:
        raise ApiError(404, "not_found", f"There is no job {job_id[:64]!r} on this server.")
    return job_state(queue, job)


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
