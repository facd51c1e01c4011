"""How one job runs, on every backend: :func:`run_job` turns image + parameters + models into an :class:`Outcome`.

The in-process worker and the Ray actors both call it (through :class:`clipasso_server.worker.SketchWorker`),
so one fault gives one outcome wherever the job runs: a stored image that is gone, unreadable or no
longer decodes fails as ``image_missing``; parameters this version cannot read as ``invalid_stored_job``;
a library error with its own code; running out of memory as ``out_of_memory``; anything else as
``internal_error`` (the traceback goes to the server's log, never to the client). It touches no store:
:func:`job_input` reads what a run needs from the store on the server's side.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from clipasso_core.errors import ClipassoError, ImageError, ImageTooLargeError
from clipasso_core.image import read_image
from clipasso_core.optimize import Progress
from clipasso_core.params import SketchParams
from clipasso_core.sketch import SketchResult, sketch_image
from clipasso_core.snapshot import SketchSnapshot, finite_or_none

from .job_status import JobStatus
from .model_cache import ModelCache
from .schemas import SketchResultBody
from .store import Job, JobStore

OUT_OF_MEMORY_MESSAGE = ("The {device} ran out of memory while sketching; try fewer stroke counts, fewer seeds or "
                         "a smaller image, or run the server on a device with more memory.")
INTERNAL_MESSAGE = "The sketch failed because of an unexpected error in the sketch server; see its log."
INVALID_STORED_MESSAGE = ("This job was stored with parameters this version of the sketch server does not accept "
                          "({reason}); submit the image again.")
IMAGE_MISSING_MESSAGE = "The uploaded image of this job is missing or damaged on the server; submit it again."


def progress_body(progress: Progress) -> dict[str, Any]:
    """The API's progress object: ``{"iteration", "total", "best_loss": {"<strokes>": loss}}``."""
    return {
        "iteration": progress.iteration,
        "total": progress.total,
        "best_loss": {str(count): finite_or_none(loss) for count, loss in progress.best_loss.items()},
    }


def result_body(result: SketchResult) -> dict[str, Any]:
    """The API's result object: the image size and each level's strokes as path data in image pixels."""
    return SketchResultBody.from_levels(result.width, result.height, result.levels).body()


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` says the device (GPU or CPU) ran out of memory."""
    if isinstance(error, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


@dataclass(frozen=True)
class JobInput:
    """What a run needs, read from the store by the server: the image bytes (``None``: gone or unreadable),
    the parameters (``None``: stored by a version whose parameters no longer validate, see ``params_error``)
    and the server's pixel limit."""

    id: str
    image: bytes | None
    params: SketchParams | None
    max_pixels: int
    params_error: str | None = None


def job_input(store: JobStore, job: Job, max_pixels: int) -> JobInput:
    """The input of a claimed job; an image file that cannot be read (gone, no permission, not a file) is ``None``."""
    image = None
    if job.params is not None:
        try:
            image = store.image_path(job).read_bytes()
        except OSError:
            image = None
    return JobInput(job.id, image, job.params, max_pixels, job.params_error)


@dataclass(frozen=True)
class Outcome:
    """How a run ended: succeeded with a result, failed with a code and one sentence, or cancelled.

    ``progress`` is the job's last progress (the server adds it before writing the outcome down),
    ``iterations`` the steps a cancelled run made, ``details`` an unexpected error's traceback for the log.
    """

    status: JobStatus
    progress: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    code: str | None = None
    message: str | None = None
    iterations: int = 0
    details: str | None = None


def failed(code: str, message: str, details: str | None = None) -> Outcome:
    """A failed run's outcome."""
    return Outcome(JobStatus.FAILED, code=code, message=message, details=details)


IMAGE_MISSING_OUTCOME = failed("image_missing", IMAGE_MISSING_MESSAGE)
"""A job whose uploaded image is gone or damaged."""
INTERNAL_OUTCOME = failed("internal_error", INTERNAL_MESSAGE)
"""A run that ended by a fault of the server (details only in its log)."""


def invalid_stored_outcome(reason: str | None) -> Outcome:
    """A job whose stored parameters this version cannot read: failed, with the reason."""
    return failed("invalid_stored_job", INVALID_STORED_MESSAGE.format(reason=reason or "unreadable parameters"))


def _ignore(_: Any) -> None:
    return None


@dataclass
class RunHooks:
    """How a run talks to its worker: it reports its phase, progress and snapshots, and stops once ``cancel`` is set."""

    cancel: threading.Event = field(default_factory=threading.Event)
    phase: Callable[[str], None] = _ignore
    progress: Callable[[Progress], None] = _ignore
    snapshot: Callable[[SketchSnapshot], None] = _ignore


def run_job(job: JobInput, models: ModelCache, hooks: RunHooks | None = None) -> Outcome:
    """Run one job to its end on ``models``: the outcome, never an exception (phases: loading_models,
    reading_image, sketching)."""
    hooks = hooks or RunHooks()
    if job.params is None:
        return invalid_stored_outcome(job.params_error)
    try:
        hooks.phase("loading_models")
        loaded = models.get()  # in use until released below: never freed under a running job
        hooks.phase("reading_image")
        picture = _decoded(job)
        if picture is None:
            return IMAGE_MISSING_OUTCOME
        hooks.phase("sketching")
        result = sketch_image(picture, job.params, loaded, progress=hooks.progress, cancel=hooks.cancel,
                              snapshot=hooks.snapshot)
    except ClipassoError as error:
        return failed(error.code, str(error))
    except Exception as error:
        if not is_out_of_memory(error):
            return replace(INTERNAL_OUTCOME, details=traceback.format_exc())
        if models.device.type == "cuda":
            torch.cuda.empty_cache()
        device = "GPU" if models.device.type == "cuda" else "computer"
        return failed("out_of_memory", OUT_OF_MEMORY_MESSAGE.format(device=device))
    finally:
        models.release()
    if result.cancelled or hooks.cancel.is_set():
        return Outcome(JobStatus.CANCELLED, iterations=result.iterations)
    return Outcome(JobStatus.SUCCEEDED, result=result_body(result))


def _decoded(job: JobInput) -> Any:
    """The job's image, or ``None`` when its bytes are gone or no longer decode (they decoded when submitted)."""
    if job.image is None:
        return None
    try:
        return read_image(job.image, job.max_pixels)
    except ImageTooLargeError:  # whole, but over a lower limit this server was restarted with: say so
        raise
    except ImageError:
        return None
