"""``GET /v1/health``: whether the server can sketch, for every backend.

:func:`health_body` builds the body from the app's queue, models and settings; :func:`worker_problem` says
why the job worker cannot run jobs now (dead, stuck, or finished jobs waiting for the disk) and
:func:`models_problem` why jobs wait for the in-process worker's models: the route answers 503
"degraded" with that error, else 200 "ok".
"""

from __future__ import annotations

import dataclasses
from importlib import metadata
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .config import ServerConfig
from .dispatcher import WorkerState
from .errors import openapi_errors
from .job_queue import JobQueue
from .model_cache import ModelCache, ModelsStatus
from .heavy_work import MAX_PARALLEL_HEAVY
from .pace import recommended_preset
from .protocol import connection_limit
from .schemas import ErrorInfo, Health, Limits, ModelsHealth, WorkerHealth
from .store import BUSY_TIMEOUT_S

router = APIRouter()


def package_version() -> str:
    """The installed version of the clipasso package."""
    try:
        return metadata.version("clipasso-inkscape")
    except metadata.PackageNotFoundError:
        return "unknown"


def health_body(queue: JobQueue, models: ModelCache, config: ServerConfig) -> Health:
    """The health body: ``ok``, or ``degraded`` with the reason."""
    worker = queue.worker_state()
    status = None if config.ray_workers else models.status()  # Ray workers load, keep and report their own
    problem = worker_problem(worker, queue) or models_problem(status)
    models_error = models.error
    return Health(
        status="ok" if problem is None else "degraded",
        error=problem,
        worker=WorkerHealth(**dataclasses.asdict(worker)),
        version=package_version(),
        device=str(models.device),
        precision=models.precision.value,
        models_loaded=models.loaded,
        models_error=None if models_error is None else str(models_error),
        models=None if status is None else ModelsHealth(state=status.state, bytes_done=status.bytes_done,
                                                        bytes_total=status.bytes_total, error=status.error),
        queue_length=queue.queue_length(),
        max_body_bytes=config.max_body_bytes,
        max_pixels=config.max_pixels,
        limits=limits(config),
        workers=queue.workers.snapshot(),
        recommended_preset=recommended_preset(str(models.device)),
        preset_seconds=queue.dispatcher.pace.preset_seconds(),
    )


def limits(config: ServerConfig) -> Limits:
    """Every limit of the server with ``config``."""
    return Limits(max_body_bytes=config.max_body_bytes, max_pixels=config.max_pixels,
                  max_requests=config.max_requests, max_parallel_heavy=MAX_PARALLEL_HEAVY,
                  read_timeout_s=config.read_timeout_s, idle_timeout_s=min(config.idle_timeout_s, config.read_timeout_s),
                  max_connections=connection_limit(config.max_connections), database_busy_timeout_s=BUSY_TIMEOUT_S,
                  keep_days=config.keep_days)


def worker_problem(worker: WorkerState, queue: JobQueue) -> ErrorInfo | None:
    """Why the worker cannot run jobs now, as ``{"code", "message"}``, or ``None`` when all is well."""
    if worker.unreachable is not None:
        return ErrorInfo(code="workers_unreachable", message=worker.unreachable)
    if not worker.alive:
        return ErrorInfo(code="worker_dead", message="The sketch server's job worker has stopped, so no job will "
                                                     "run; restart clipasso-server (its log says why).")
    if worker.stuck:
        return ErrorInfo(code="worker_stuck", message=f"The sketch server's job worker has made no progress on job "
                                                      f"{worker.current_job} for {worker.seconds_since_progress:.0f} "
                                                      "s; cancel that job or restart clipasso-server.")
    if worker.unsaved_jobs:
        unsaved = queue.unsaved_problem()
        if unsaved is not None:
            return ErrorInfo(**unsaved)
    return None


def models_problem(status: ModelsStatus | None) -> ErrorInfo | None:
    """Why jobs wait for the models (missing, downloading, failed), as ``{"code", "message"}``, or ``None``."""
    problem = None if status is None else status.problem()
    return None if problem is None else ErrorInfo(code=problem[0], message=problem[1])


@router.get("/v1/health", response_model=Health, summary="Whether the server can sketch",
            responses={**openapi_errors(), 503: {"model": Health, "description": "Degraded: the job worker is dead or "
                                                                                 "stuck, results cannot be saved, or the "
                                                                                 "models are missing, downloading or "
                                                                                 "failed."}})
def health(request: Request) -> Any:
    state = request.app.state
    body = health_body(state.queue, state.models, state.config)
    if body.status == "ok":
        return body
    return JSONResponse(body.model_dump(mode="json"), status_code=503)
