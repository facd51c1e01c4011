"""Request and response bodies of the HTTP API (v1); the job ``params`` schema is :class:`SketchParams` itself."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from clipasso_core.params import SketchParams

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
WorkerStatus = Literal["starting", "idle", "busy"]
CLIENT_PATTERN = r"^[^\W_][\w .@+-]*$"
"""A client name: letters (any script, e.g. Zoë), digits, spaces and ``. _ @ + -``, starting with a letter or digit."""
MAX_CLIENT_LENGTH = 64


class ErrorInfo(BaseModel):
    """What went wrong: a stable machine-readable ``code`` and one sentence for people."""

    code: str = Field(description="Stable identifier, e.g. not_found, invalid_params, weights_unavailable.")
    message: str = Field(description="One sentence saying what went wrong and how to fix it.")


class ErrorResponse(BaseModel):
    """The body of every 4xx/5xx answer."""

    error: ErrorInfo


class JobRequest(BaseModel):
    """``POST /v1/jobs``: an image and the sketch parameters (missing keys take the defaults)."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(description="Base64 of the image file's bytes: PNG, JPEG, WebP, GIF or TIFF.")
    params: SketchParams = Field(default_factory=SketchParams, description="Sketch parameters; defaults apply.")
    client: str | None = Field(
        default=None, min_length=1, max_length=MAX_CLIENT_LENGTH, pattern=CLIENT_PATTERN,
        description="Who submits (e.g. a designer's name): the queue takes turns between clients. Default: "
                    "the bearer token's identity, or 'local' without a token.")


class JobCreated(BaseModel):
    """The answer to a submission: the job to poll (an existing one when the same job was submitted before)."""

    id: str
    status: JobStatus


class JobProgress(BaseModel):
    """Optimizer steps done of ``total`` and the best eval loss so far per stroke count (keys are stroke counts)."""

    iteration: int
    total: int
    best_loss: dict[str, float | None] = Field(description="Best eval loss so far per stroke count (null if not finite).")
    elapsed_s: float | None = Field(default=None, description="Seconds since the job's latest run started.")
    eta_s: float | None = Field(default=None, description="Estimated seconds left, from the measured pace; null until "
                                                          "it can be estimated, 0 when done.")


class WorkerRef(BaseModel):
    """Where a job runs or ran: the worker's name, host, process id and device."""

    name: str
    host: str | None = Field(description="The worker's computer (null while a Ray worker is starting).")
    pid: int | None = Field(description="The worker's process id on that computer (null while it is starting).")
    device: str


class WorkerState(WorkerRef):
    """A worker of this server: its identity, what it is doing and how many jobs it has finished."""

    status: WorkerStatus
    job: str | None = Field(description="The job it is running, or null.")
    jobs_done: int = Field(description="Jobs it has finished since this server started.")


class JobState(BaseModel):
    """A job's status, its latest progress and, when it failed or was cancelled, why."""

    id: str
    status: JobStatus
    progress: JobProgress | None
    error: ErrorInfo | None
    created_at: str = Field(description="When the job was submitted (ISO 8601, UTC).")
    started_at: str | None = Field(description="When its latest run started (ISO 8601, UTC).")
    finished_at: str | None = Field(description="When it finished (ISO 8601, UTC).")
    client: str = Field(description="Who submitted it (the queue takes turns between clients).")
    worker: WorkerRef | None = Field(description="The worker running it or that ran it last, or null.")
    queue_position: int | None = Field(default=None, description="For a queued job, how many queued jobs start "
                                                                  "before it (0: it is next), in the queue's fair "
                                                                  "order; null otherwise.")
    settings: dict[str, Any] | None = Field(default=None, description="The job's parameters (preset, strokes, seeds, "
                                                                       "iterations, …) as the server runs them, "
                                                                       "without the path data of mask, init_paths "
                                                                       "and locked; null when they no longer read.")


class LevelResult(BaseModel):
    """One abstraction level: its strokes as SVG path data in the submitted image's pixel space."""

    strokes: int
    stroke_width: float = Field(description="SVG stroke width in the submitted image's pixels.")
    paths: list[str] = Field(description="One absolute 'M x y C x y x y x y' path per stroke.")
    loss: float | None = Field(description="The chosen sketch's eval loss (lower is closer); null if not finite.")
    widths: list[float] | None = Field(default=None, description="Each path's own stroke width in the submitted "
                                                                 "image's pixels, when the job had optimize_width.")
    opacities: list[float] | None = Field(default=None, description="Each path's stroke opacity (0 to 1), when the "
                                                                    "job had optimize_opacity.")


class SketchResultBody(BaseModel):
    """A finished job's sketch: the submitted image's size and one entry per abstraction level."""

    width: int
    height: int
    levels: list[LevelResult]


class WorkerHealth(BaseModel):
    """The job worker thread: alive, what it does now, whether it is stuck, and the last error it met."""

    alive: bool
    current_job: str | None = Field(description="The id of the job it runs now, or null.")
    phase: str = Field(description="idle, starting, loading_models, reading_image, sketching, saving or stopped.")
    seconds_since_progress: float | None = Field(description="Seconds since the current job last made progress.")
    stuck: bool = Field(description="No progress on the current job for longer than the server allows.")
    last_error: str | None = Field(description="The last error the worker met (it carries on after errors), or null.")
    unsaved_jobs: int = Field(description="Finished jobs kept in memory because the data directory cannot be "
                                          "written; they are saved when it can.")


class Health(BaseModel):
    """Whether the server can sketch: version, device, precision, model state and how many jobs are waiting or running.

    Answered with 200 and status "ok", or 503 and status "degraded" (with ``error`` saying why) when the
    worker is dead or stuck or finished jobs cannot be saved.
    """

    status: Literal["ok", "degraded"]
    error: ErrorInfo | None = Field(description="Why the server is degraded and what to do, or null.")
    worker: WorkerHealth
    version: str
    device: str
    precision: str = Field(description="Precision the CLIP networks compute in: fp32, bf16 or fp16 (auto resolved).")
    models_loaded: bool
    models_error: str | None = Field(description="Why the models could not be loaded and how to fix it, or null.")
    queue_length: int = Field(description="Jobs queued or running.")
    max_body_bytes: int = Field(description="Largest request body accepted, in bytes (--max-body-mb): a client can "
                                            "refuse a larger upload before sending it.")
    max_pixels: int = Field(description="Largest image accepted, in pixels (--max-pixels).")
    workers: list[WorkerState] = Field(description="The workers that run jobs (one in-process worker, or Ray actors).")
