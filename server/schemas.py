"""Request and response bodies of the HTTP API (v1); the job ``params`` schema is :class:`SketchParams` itself.

:class:`SketchResultBody` is also the wire form of a sketch's levels (:class:`StrokeLevel`): what the
server stores and answers, and the rules a sound result follows (the Inkscape extension checks the same).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from clipasso_core.level import StrokeLevel
from clipasso_core.params import CANVAS_SIZE, SketchParams
from clipasso_core.svg_xml import PATH_DATA, numbers

from .job_status import JobStatus

API_VERSION = 3
"""The revision of the v1 API this server speaks: 2 added presets, the models' state, health's canvas_size and
this number (a server without ``api_version`` speaks revision 1); 3 added add_strokes and tidy (and a level's
added and left_out). Revisions only add; a client for revision N
works with any server of revision N or later."""
StatusField = Literal[JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED]
"""A job's status in a body: a :class:`JobStatus`, whose schema is the plain string enum of its words."""
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
    status: StatusField


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
    status: StatusField
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


def _stroke_path(d: str) -> str:
    if PATH_DATA.fullmatch(d) is None or not all(math.isfinite(value) for value in numbers(d)):
        raise ValueError("not SVG path data of finite numbers starting with a moveto")
    return d


StrokePath = Annotated[str, AfterValidator(_stroke_path)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
PositiveFinite = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Opacity = Annotated[float, Field(ge=0, le=1)]


class LevelResult(BaseModel):
    """One abstraction level: its strokes as SVG path data in the submitted image's pixel space."""

    strokes: int = Field(gt=0, description="How many strokes (paths) the level has.")
    stroke_width: PositiveFinite = Field(description="SVG stroke width in the submitted image's pixels.")
    paths: list[StrokePath] = Field(description="One path per stroke: 'M x y C x y x y x y' (a refined path may have "
                                                "more 'C' segments and end in 'Z'; a locked one comes back as sent).")
    loss: Finite | None = Field(description="The chosen sketch's eval loss (lower is closer); null if not finite.")
    widths: list[PositiveFinite] | None = Field(default=None, description="Each path's own stroke width in the "
                                                "submitted image's pixels, when the job had optimize_width.")
    opacities: list[Opacity] | None = Field(default=None, description="Each path's stroke opacity (0 to 1), when "
                                                                      "the job had optimize_opacity.")
    added: int | None = Field(default=None, ge=0, description="How many strokes the job added to init_paths "
                                                              "(add_strokes): the last ones of paths; absent when "
                                                              "none were added.")
    left_out: int | None = Field(default=None, ge=0, description="How many strokes tidy left out of this level "
                                                                 "(specks and near-duplicates); absent without tidy.")

    @model_validator(mode="after")
    def _one_of_each_per_stroke(self) -> LevelResult:
        for name, values in (("paths", self.paths), ("widths", self.widths), ("opacities", self.opacities)):
            if values is not None and len(values) != self.strokes:
                raise ValueError(f"{len(values)} {name} for {self.strokes} strokes")
        if self.added is not None and self.added > self.strokes:
            raise ValueError(f"{self.added} added strokes of {self.strokes}")
        return self

    @classmethod
    def from_level(cls, level: StrokeLevel) -> LevelResult:
        """The wire form of ``level``: widths and opacities to 4 decimals, left out when the job did not optimize them."""
        styles: dict[str, Any] = {name: [round(float(value), 4) for value in values]
                                  for name, values in (("widths", level.widths), ("opacities", level.opacities))
                                  if values is not None}
        if level.added:
            styles["added"] = level.added
        if level.left_out is not None:
            styles["left_out"] = level.left_out
        return cls(strokes=level.strokes, stroke_width=level.stroke_width, paths=list(level.paths), loss=level.loss,
                   **styles)

    def to_level(self) -> StrokeLevel:
        """The level this wire form describes."""
        return StrokeLevel(tuple(self.paths), self.stroke_width, None if self.widths is None else tuple(self.widths),
                           None if self.opacities is None else tuple(self.opacities), self.loss,
                           added=self.added or 0, left_out=self.left_out)


class SketchResultBody(BaseModel):
    """A finished job's sketch: the submitted image's size and one entry per abstraction level."""

    width: int = Field(gt=0)
    height: int = Field(gt=0)
    levels: list[LevelResult] = Field(min_length=1)

    @classmethod
    def from_levels(cls, width: int, height: int, levels: list[StrokeLevel]) -> SketchResultBody:
        """The result of a sketch of a ``width`` × ``height`` image with these levels."""
        return cls(width=width, height=height, levels=[LevelResult.from_level(level) for level in levels])

    def body(self) -> dict[str, Any]:
        """As JSON-ready data (what the server stores): optional fields only where they are set."""
        return self.model_dump(exclude_unset=True)


def is_result_body(body: Any) -> bool:
    """Whether ``body`` (decoded JSON) is a sound result: JSON types exactly (no ``"3"`` for 3), every rule above."""
    try:
        SketchResultBody.model_validate(body, strict=True)
    except ValidationError:
        return False
    return True


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
    unreachable: str | None = Field(default=None, description="Why the workers cannot be reached now (a lost Ray "
                                                              "head), or null; jobs wait, reads keep answering.")


class ModelsHealth(BaseModel):
    """The state of the CLIP models of the in-process worker."""

    state: Literal["missing", "downloading", "loading", "ready", "unloaded", "failed"] = Field(
        description="missing: not downloaded yet; downloading (see bytes_done, bytes_total); loading; ready: in "
                    "memory; unloaded: downloaded, freed or not loaded yet (the next job loads them); failed (see "
                    "error).")
    bytes_done: int | None = Field(default=None, description="While downloading: bytes downloaded so far.")
    bytes_total: int | None = Field(default=None, description="While downloading: bytes in all (null if unknown).")
    error: str | None = Field(default=None, description="When failed: why, and what to do.")


class Limits(BaseModel):
    """The server's limits in one place (the README's table says the same)."""

    max_body_bytes: int = Field(description="Largest request body accepted, in bytes (--max-body-mb).")
    max_pixels: int = Field(description="Largest image accepted, in pixels (--max-pixels).")
    max_requests: int = Field(description="Requests answered at once; more get 503 busy (--max-requests).")
    max_parallel_heavy: int = Field(description="Submissions validated (image decoded, mask and init_paths checked) "
                                                "and job files drawn (GIF, SVG) at once; more wait their turn.")
    read_timeout_s: float = Field(description="Seconds a connection may stall in the middle of a request before it "
                                              "is answered 408 and closed (--read-timeout).")
    idle_timeout_s: float = Field(description="Seconds a connection may stay open without sending a request.")
    max_connections: int = Field(description="Connections kept open at once (--max-connections, lowered to what the "
                                             "system lets the server open); beyond it the oldest idle one is closed.")
    database_busy_timeout_s: float = Field(description="Seconds a write waits for another program's lock on the "
                                                       "job database before it answers 503 storage_unavailable.")
    keep_days: float = Field(description="Days a finished job is kept with its files (--keep-days; 0: forever).")


class Health(BaseModel):
    """Whether the server can sketch: version, device, precision, model state and how many jobs are waiting or running.

    Answered with 200 and status "ok", or 503 and status "degraded" (with ``error`` saying why) when the
    worker is dead or stuck, finished jobs cannot be saved, or jobs wait for the models: they are missing,
    downloading (``error.code`` models_downloading) or failed.
    """

    status: Literal["ok", "degraded"]
    api_version: int = Field(default=API_VERSION, description="The revision of the v1 API this server speaks (see "
                                                              "the README); a client refuses a server older than "
                                                              "it needs.")
    error: ErrorInfo | None = Field(description="Why the server is degraded and what to do, or null.")
    worker: WorkerHealth
    version: str
    device: str
    precision: str = Field(description="Precision the CLIP networks compute in: fp32, bf16 or fp16 (auto resolved).")
    models_loaded: bool
    models_error: str | None = Field(description="Why the models could not be loaded and how to fix it, or null.")
    models: ModelsHealth | None = Field(default=None, description="The models' state (null when jobs run on Ray "
                                                                  "workers, which load their own).")
    queue_length: int = Field(description="Jobs queued or running.")
    max_body_bytes: int = Field(description="Largest request body accepted, in bytes (--max-body-mb): a client can "
                                            "refuse a larger upload before sending it.")
    max_pixels: int = Field(description="Largest image accepted, in pixels (--max-pixels).")
    limits: Limits | None = Field(default=None, description="Every limit of this server (max_body_bytes and "
                                                            "max_pixels are also given above, as before).")
    canvas_size: int = Field(default=CANVAS_SIZE, description="Side of the square canvas the strokes are optimized "
                                                              "on, in pixels: a job's stroke_width is in its pixels "
                                                              "(a result's widths are in the image's).")
    workers: list[WorkerState] = Field(description="The workers that run jobs (one in-process worker, or Ray actors).")
    recommended_preset: Literal["quick", "balanced", "paper"] = Field(
        description="The quality preset this server recommends for its device: paper on a CUDA GPU, quick on a CPU "
                    "(the dialog's Automatic quality).")
    preset_seconds: dict[str, float] | None = Field(
        description="Per preset (quick, balanced, paper), the seconds a four-level job (4, 8, 16, 32 strokes) takes "
                    "on this server at the pace it measured in its recent jobs (seconds per image pass of the loss "
                    "network, counting each attempt until balanced's pick and one per level after it; models "
                    "loaded, loading not included). Null until the server has run a few steps.",
        json_schema_extra={"example": {"quick": 95.0, "balanced": 600.0, "paper": 2300.0}})
