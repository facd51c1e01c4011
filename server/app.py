"""The FastAPI application: the v1 routes over a :class:`JobQueue`, with JSON errors and limits."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import io
import logging
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from PIL import Image

from clipasso_core.errors import ImageError, ImageTooLargeError, UnsupportedImageError
from clipasso_core.image import CanvasFrame, read_image
from clipasso_core.mask import MaskError, mask_coverage

from . import job_files, page_routes
from .config import ServerConfig
from .errors import ApiError, install_error_handlers
from .guards import ConcurrencyLimitMiddleware, HeadAsGetMiddleware, LoopbackOnlyMiddleware
from .middleware import BearerTokenMiddleware, BodyLimitMiddleware
from .model_cache import ModelCache
from .schemas import (ErrorInfo, ErrorResponse, Health, JobCreated, JobRequest, JobState, SketchResultBody,
                      WorkerHealth)
from .store import DEFAULT_CLIENT, Job, JobStore, iso_time
from .worker import JobQueue, WorkerState

_WHITESPACE = re.compile(rb"\s+")
log = logging.getLogger("clipasso_server")


def package_version() -> str:
    """The installed version of the clipasso package."""
    try:
        return metadata.version("clipasso-inkscape")
    except metadata.PackageNotFoundError:
        return "unknown"


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
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
    return {status: {"model": ErrorResponse, "description": descriptions[status]} for status in (*statuses, 401, 403, 500, 503)}


MAX_PARALLEL_DECODES = 2
"""Uploads decoded at once for validation: each may take ~10 bytes per pixel, so this bounds the memory."""


def create_app(config: ServerConfig, models: ModelCache | None = None) -> FastAPI:
    """Build the app for ``config``; the worker starts and stops with the app's lifespan."""
    models = models or ModelCache(config.models, config.device)
    queue = make_queue(config, JobStore(config.data_dir), models)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        queue.start()
        try:
            yield
        finally:
            if queue.stop():
                queue.store.close()
            log.info("sketch server stopped")

    app = FastAPI(
        title="CLIPasso sketch server",
        version=package_version(),
        description="Turns a raster image into a few editable pen strokes with the CLIPasso optimizer. "
                    "Every error is JSON {\"error\": {\"code\", \"message\"}}.",
        lifespan=lifespan,
    )
    app.state.queue = queue
    app.state.config = config
    decode_slots = threading.BoundedSemaphore(MAX_PARALLEL_DECODES)
    install_error_handlers(app, config.data_dir)
    # Middleware added last runs first: HEAD → concurrency limit → token or loopback rule → body limit.
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
    if config.token:
        app.add_middleware(BearerTokenMiddleware, token=config.token, public_prefixes=page_routes.PAGE_PREFIXES)
    else:
        app.add_middleware(LoopbackOnlyMiddleware)
    app.add_middleware(ConcurrencyLimitMiddleware, max_requests=config.max_requests)
    app.add_middleware(HeadAsGetMiddleware)

    def job_state(job: Job) -> JobState:
        unsaved = queue.unsaved(job.id) if job.status == "running" else None
        return JobState(
            id=job.id,
            status=job.status,  # type: ignore[arg-type]
            progress=queue.progress(job),
            error=job.error if unsaved is None else unsaved[1],
            created_at=iso_time(job.created_at) or "",
            started_at=iso_time(job.started_at),
            finished_at=iso_time(job.finished_at),
            client=job.client,
            worker=job.worker,
            queue_position=queue.store.queue_position(job.id) if job.status == "queued" else None,
            settings=job_settings(job),
        )

    def find_job(job_id: str) -> Job:
        return job_files.find_job(queue, job_id)

    @app.get("/v1/health", response_model=Health, summary="Whether the server can sketch",
             responses={**_errors(), 503: {"model": Health, "description": "Degraded: the job worker is dead or "
                                                                             "stuck, or results cannot be saved."}})
    def health() -> Any:
        worker = queue.worker_state()
        problem = worker_problem(worker, queue)
        models_error = models.error
        body = Health(
            status="ok" if problem is None else "degraded",
            error=problem,
            worker=WorkerHealth(**dataclasses.asdict(worker)),
            version=package_version(),
            device=str(models.device),
            precision=models.precision.value,
            models_loaded=models.loaded,
            models_error=None if models_error is None else str(models_error),
            queue_length=queue.queue_length(),
            max_body_bytes=config.max_body_bytes,
            max_pixels=config.max_pixels,
            workers=queue.workers.snapshot(),
        )
        if problem is None:
            return body
        return JSONResponse(body.model_dump(mode="json"), status_code=503)

    @app.post("/v1/jobs", status_code=202, response_model=JobCreated, responses=_errors(413, 415, 422, 503, 507),
              summary="Submit an image to sketch (an identical earlier job is returned instead of running again)")
    def submit_job(body: JobRequest, request: Request) -> JobCreated:
        data = decode_image_field(body.image)
        key = queue.cache_key(data, body.params)
        existing = queue.find_reusable(key, data)
        if existing is None:
            with decode_slots:
                size = check_image(data, config.max_pixels)
            if body.params.mask is not None:
                check_mask(body.params.mask, size)
            client = body.client or token_client(request.headers.get("authorization"))
            existing = queue.submit(data, body.params, key, client)
        return JobCreated(id=existing.id, status=existing.status)  # type: ignore[arg-type]

    @app.get("/v1/jobs/{job_id}", response_model=JobState, responses=_errors(404),
             summary="A job's status, progress and error")
    def get_job(job_id: str) -> JobState:
        return job_state(find_job(job_id))

    @app.get("/v1/jobs/{job_id}/result", response_model=SketchResultBody, responses=_errors(404, 409),
             summary="A succeeded job's strokes, one entry per abstraction level")
    def get_result(job_id: str) -> dict[str, Any]:
        job = find_job(job_id)
        unsaved = queue.unsaved(job.id) if job.status == "running" else None
        if unsaved is not None and unsaved[0].result is not None:
            return unsaved[0].result  # finished, waiting for the disk: the strokes are served from memory
        return job_files.stored_result(queue, job)

    @app.delete("/v1/jobs/{job_id}", response_model=JobState, responses=_errors(404, 503, 507),
                summary="Cancel a queued or running job (a finished job is left as it is)")
    def cancel_job(job_id: str) -> JobState:
        find_job(job_id)
        job = queue.cancel(job_id)
        if job is None:
            raise ApiError(404, "not_found", f"There is no job {job_id[:64]!r} on this server.")
        return job_state(job)

    app.include_router(job_files.router)
    app.include_router(page_routes.router)

    @app.get("/", include_in_schema=False)
    def root() -> dict[str, str]:
        return {"service": "clipasso-sketch-server", "api": "/v1", "docs": "/docs", "openapi": "/openapi.json"}

    return app


def worker_problem(worker: WorkerState, queue: JobQueue) -> ErrorInfo | None:
    """Why the worker cannot run jobs now, as ``{"code", "message"}``, or ``None`` when all is well."""
    if not worker.alive:
        return ErrorInfo(code="worker_dead", message="The sketch server's job worker has stopped, so no job will "
                                                     "run; restart clipasso-server (its log says why).")
    if worker.stuck:
        return ErrorInfo(code="worker_stuck", message=f"The sketch server's job worker has made no progress on job "
                                                      f"{worker.current_job} for {worker.seconds_since_progress:.0f} "
                                                      "s; cancel that job or restart clipasso-server.")
    if worker.unsaved_jobs:
        for job_id in list(queue.unsaved_ids()):
            unsaved = queue.unsaved(job_id)
            if unsaved is not None:
                return ErrorInfo(**unsaved[1])
    return None


PATH_DATA_PARAMS = {"mask", "init_paths", "locked"}
"""Parameters left out of a job's ``settings``: path data, which can be long and means nothing to read."""


def job_settings(job: Job) -> dict[str, Any] | None:
    """The job's parameters as it runs them, without its path data; ``None`` when they no longer read."""
    if job.params is None:
        return None
    return job.params.model_dump(mode="json", exclude=PATH_DATA_PARAMS)


def token_client(authorization: str | None) -> str:
    """The client name of a request that names none: its bearer token's identity, else ``local``."""
    if not authorization or not authorization.startswith("Bearer "):
        return DEFAULT_CLIENT
    return "token-" + hashlib.sha256(authorization[7:].encode()).hexdigest()[:12]


def make_queue(config: ServerConfig, store: JobStore, models: ModelCache) -> JobQueue:
    """The in-process job queue, or the Ray one when ``config`` asks for Ray workers."""
    if not config.ray_workers:
        return JobQueue(store, models, max_pixels=config.max_pixels, stuck_after_s=config.stuck_after_s,
                        keep_days=config.keep_days)
    from .ray_backend import RayJobQueue

    return RayJobQueue(store, models, config.ray_workers, config.ray_gpus_per_worker, max_pixels=config.max_pixels,
                       stuck_after_s=config.stuck_after_s, keep_days=config.keep_days)


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
