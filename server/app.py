"""The FastAPI application: settings, middleware, JSON error handlers and the route modules over one job queue.

The routes live in :mod:`~clipasso_server.health_routes`, :mod:`~clipasso_server.job_routes`,
:mod:`~clipasso_server.job_files` and :mod:`~clipasso_server.page_routes`; they find the queue, the
models and the settings on ``app.state``. The queue's worker starts and stops with the app's lifespan.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from . import health_routes, job_files, job_routes, page_routes
from .config import ServerConfig
from .derived_files import DerivedFiles
from .dispatcher import Dispatcher
from .errors import install_error_handlers
from .guards import ConcurrencyLimitMiddleware, HeadAsGetMiddleware, LoopbackOnlyMiddleware
from .health_routes import package_version
from .idle import IdleWatch, RequestClock
from .job_queue import JobQueue
from .middleware import BearerTokenMiddleware, BodyLimitMiddleware, SecurityHeadersMiddleware
from .model_cache import ModelCache, models_identity
from .store import JobStore
from .worker import LocalWorkers

log = logging.getLogger("clipasso_server")


def create_app(config: ServerConfig, models: ModelCache | None = None) -> FastAPI:
    """Build the app for ``config``; the worker starts and stops with the app's lifespan."""
    models = models or ModelCache(config.models, config.device)
    queue = make_queue(config, JobStore(config.data_dir), models)
    local_models = not config.ray_workers  # Ray workers load, keep and report their own

    def busy() -> bool:
        """A job waits or runs, or the models are on their way: the server is not idle."""
        return queue.queue_length() > 0 or models.status().state in ("downloading", "loading")

    watch = IdleWatch(models, busy, config.unload_after_s if local_models else 0.0, config.exit_when_idle_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        queue.start()
        if local_models:
            models.fetch_in_background()
        watch.start()
        try:
            yield
        finally:
            watch.stop()
            if queue.stop():
                queue.store.close()
            log.info("sketch server stopped")

    app = FastAPI(
        title="CLIPasso sketch server",
        version=package_version(),
        description="Turns a raster image into a few editable pen strokes with the CLIPasso optimizer. "
                    "Every error is JSON {\"error\": {\"code\", \"message\"}}.",
        lifespan=lifespan,
        docs_url=None,  # page_routes serves /docs, saying where Swagger UI comes from
        redoc_url=None,
    )
    app.state.queue = queue
    app.state.derived = DerivedFiles(config.data_dir, package_version())
    app.state.models = models
    app.state.config = config
    app.state.idle_watch = watch  # clipasso-server gives it the way to stop the server
    app.state.exit_message = None  # why the server stopped on its own, for clipasso-server to say

    def workers_lost(message: str) -> None:
        """The workers stayed unreachable: stop the server, which says why and exits with an error."""
        app.state.exit_message = message
        if watch.request_exit is not None:
            watch.request_exit()

    queue.dispatcher.on_lost = workers_lost
    install_error_handlers(app, config.data_dir)
    # Middleware added last runs first: headers → clock → HEAD → concurrency limit → token or loopback rule → body limit.
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
    if config.token:
        app.add_middleware(BearerTokenMiddleware, token=config.token, public_prefixes=page_routes.PAGE_PREFIXES)
    else:
        app.add_middleware(LoopbackOnlyMiddleware)
    app.add_middleware(ConcurrencyLimitMiddleware, max_requests=config.max_requests)
    app.add_middleware(HeadAsGetMiddleware)
    app.add_middleware(RequestClock, watch=watch)
    app.add_middleware(SecurityHeadersMiddleware)  # outermost: every answer of the app carries its headers
    for module in (health_routes, job_routes, job_files, page_routes):
        app.include_router(module.router)
    generated_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's document, with the submission body the job route validates itself."""
        if app.openapi_schema is None:
            job_routes.add_submission_schema(generated_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/", include_in_schema=False)
    def root() -> dict[str, str]:
        return {"service": "clipasso-sketch-server", "api": "/v1", "docs": "/docs", "openapi": "/openapi.json"}

    return app


def make_queue(config: ServerConfig, store: JobStore, models: ModelCache) -> JobQueue:
    """The job queue, its jobs run in this process or, when ``config`` asks for Ray workers, on Ray actors."""
    if config.ray_workers:
        from .ray_backend import RayWorkers

        pool = RayWorkers(models.spec, config.ray_workers, config.ray_gpus_per_worker)
    else:
        pool = LocalWorkers(models)
    dispatcher = Dispatcher(store, pool, config.max_pixels, stuck_after_s=config.stuck_after_s,
                            keep_days=config.keep_days)
    return JobQueue(store, dispatcher, models_identity(models.spec, models.device))
