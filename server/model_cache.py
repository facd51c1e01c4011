"""The CLIP models of this server process, and the state they are in for ``GET /v1/health``.

States: ``missing`` (weights from the Hugging Face hub are not on this computer yet), ``downloading`` (with
bytes done and in all), ``loading``, ``ready`` (in memory), ``unloaded`` (weights here, not in memory: before
the first job, and after a time without jobs), ``failed`` (with the one-sentence reason; the next job tries
again). Missing weights are fetched in the background when the server starts, else by the first job;
the models are loaded by the first job (or at start with --preload) and freed again by
:meth:`ModelCache.unload_if_idle`, which on CUDA also hands the memory back to the driver.

The in-process worker calls :meth:`ModelCache.get` when a job starts and :meth:`ModelCache.release` when
it ends; models that a job holds are never freed.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from clipasso_core.errors import ClipassoError, ModelError
from clipasso_core.models import LoadedModels, ModelSpec, load_models
from clipasso_core.precision import Precision, resolve_precision
from clipasso_core.weights import LIBRARY_WAY, OfflineWay, download, hub_weights, missing

from .store import canonical_json

log = logging.getLogger("clipasso_server")

LOG_EVERY_PERCENT = 10


def models_identity(spec: ModelSpec, device: torch.device) -> str:
    """A string naming the models of ``spec`` and the precision they compute in on ``device`` (part of a job's cache key)."""
    fields = {
        "precision": resolve_precision(spec.precision, device).value,
        "loss_model": spec.loss_model,
        "saliency_model": spec.saliency_model,
        "pretrained": spec.pretrained,
        "loss_weights": str(spec.loss_weights.resolve()) if spec.loss_weights else None,
        "saliency_weights": str(spec.saliency_weights.resolve()) if spec.saliency_weights else None,
    }
    return canonical_json(fields)


@dataclass(frozen=True)
class ModelsStatus:
    """Which state the models are in; bytes while downloading; the reason when failed."""

    state: str  # missing, downloading, loading, ready, unloaded, failed
    bytes_done: int | None = None
    bytes_total: int | None = None
    error: str | None = None
    code: str | None = None

    def problem(self) -> tuple[str, str] | None:
        """Why no job can run now, as (code, one sentence), or ``None`` when jobs can run (maybe after a load)."""
        if self.state == "missing":
            return "models_missing", ("The CLIP models are not downloaded yet; the sketch server is about to fetch "
                                      "them, and jobs wait until they are in.")
        if self.state == "downloading":
            return "models_downloading", f"The sketch server is {downloading_text(self)}; jobs wait until it is done."
        if self.state == "failed":
            return self.code or "models_failed", self.error or "The CLIP models could not be loaded."
        return None


def downloading_text(status: ModelsStatus) -> str:
    """``downloading the CLIP models: 120 of 1084 MB`` (or without the total when the hub did not say)."""
    done = (status.bytes_done or 0) / 1e6
    if status.bytes_total:
        return f"downloading the CLIP models: {done:.0f} of {status.bytes_total / 1e6:.0f} MB"
    return f"downloading the CLIP models: {done:.0f} MB so far"


class ModelCache:
    """Fetches the weights of ``spec``, loads the models on ``device`` when a job needs them, frees them when idle.

    ``offline_way`` names, in the message for weights that cannot be had, how to give them as files; a load
    error that names the library's weights parameters (``ModelSpec.loss_weights``) says them that way too.
    """

    def __init__(self, spec: ModelSpec, device: torch.device, offline_way: OfflineWay = LIBRARY_WAY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self.device = device
        self.offline_way = offline_way
        self._clock = clock
        self._hub = hub_weights(spec.loss_model, spec.saliency_model, spec.pretrained, spec.loss_weights,
                                spec.saliency_weights)
        self._models: LoadedModels | None = None
        self._error: ClipassoError | None = None
        self._status = ModelsStatus("missing" if missing(self._hub) else "unloaded")
        self._jobs = 0  # jobs between get() and release(): workers of one process share the models
        self._jobs_lock = threading.Lock()  # not self._lock, which a load holds for minutes
        self._last_used = clock()
        self._lock = threading.Lock()

    @property
    def precision(self) -> Precision:
        """The precision the networks compute in on this device (``auto`` resolved)."""
        return resolve_precision(self.spec.precision, self.device)

    @property
    def loaded(self) -> bool:
        """Whether the models are in memory."""
        return self._models is not None

    @property
    def error(self) -> ClipassoError | None:
        """Why the last download or load failed (one sentence saying what is missing and how to fix it), or ``None``."""
        return self._error

    def status(self) -> ModelsStatus:
        """The models' state now."""
        return self._status

    def fetch(self) -> None:
        """Download the weights the models need from the hub, if any are missing (progress in :meth:`status`)."""
        with self._lock:
            self._fetch_locked()

    def fetch_in_background(self) -> threading.Thread | None:
        """Start :meth:`fetch` in a thread when weights are missing (its failure shows in :meth:`status`)."""
        if self._status.state != "missing":
            return None

        def fetch_quietly() -> None:
            try:
                self.fetch()
            except ClipassoError:
                pass  # logged, and kept in the status for /v1/health and the next job

        thread = threading.Thread(target=fetch_quietly, name="clipasso-model-download", daemon=True)
        thread.start()
        return thread

    def get(self) -> LoadedModels:
        """The loaded models for a job (fetched and loaded on first use; a failure is tried again next time).

        The models count as in use until :meth:`release`.
        """
        with self._jobs_lock:
            self._jobs += 1
        with self._lock:
            if self._models is not None:
                return self._models
            self._fetch_locked()
            self._set(ModelsStatus("loading"))
            started = time.monotonic()
            log.info("loading CLIP models on %s", self.device)
            try:
                self._models = load_models(self.spec, self.device)
            except ClipassoError as error:  # the job that needed them fails with this message (and logs it)
                self._failed(error.worded(self.offline_way.names()))
                raise self._error from None
            except Exception as error:  # a broken install or file the library does not recognise
                log.exception("unexpected error while loading the CLIP models")
                self._failed(ModelError(f"The CLIP models could not be loaded ({type(error).__name__}); see the "
                                        "sketch server's log."))
                raise self._error from None
            self._error = None
            self._set(ModelsStatus("ready"))
            log.info("CLIP models loaded in %.1f s", time.monotonic() - started)
            return self._models

    def release(self) -> None:
        """The job that called :meth:`get` is over: once no job holds them, the models may be freed after the idle
        time from now."""
        with self._jobs_lock:
            self._jobs -= 1
            self._last_used = self._clock()

    def unload_if_idle(self, idle_s: float) -> bool:
        """Free the models when no job has used them for ``idle_s`` seconds; whether they were freed.

        Never waits: while the models download or load they are not idle.
        """
        if not self._lock.acquire(blocking=False):
            return False
        try:
            idle = self._clock() - self._last_used
            if self._models is None or self._jobs or idle < idle_s:
                return False
            self._models = None
            self._set(ModelsStatus("unloaded"))
        finally:
            self._lock.release()
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()  # hand the freed memory back to the driver, for other programs
        log.info("freed the CLIP models after %.1f minutes without a job; the next job loads them again", idle / 60)
        return True

    def _fetch_locked(self) -> None:
        needed = missing(self._hub)
        if not needed:
            if self._status.state == "missing":
                self._set(ModelsStatus("unloaded"))
            return
        log.info("downloading the CLIP models %s from the Hugging Face hub",
                 " and ".join(item.label() for item in needed))
        self._set(ModelsStatus("downloading", 0, None))
        try:
            download(needed, self._downloading, self.offline_way)
        except ClipassoError as error:
            log.error("the CLIP models cannot be downloaded: %s", error)
            self._failed(error)
            raise
        log.info("downloaded the CLIP models")
        self._set(ModelsStatus("unloaded"))

    def _downloading(self, done: int, total: int | None) -> None:
        before = self._status
        self._set(ModelsStatus("downloading", done, total))
        if total:
            step = total * LOG_EVERY_PERCENT // 100 or 1
            if (before.bytes_done or 0) // step != done // step:
                log.info("%s", downloading_text(self._status))

    def _failed(self, error: ClipassoError) -> None:
        self._error = error
        self._set(ModelsStatus("failed", error=str(error), code=error.code))

    def _set(self, status: ModelsStatus) -> None:
        self._status = status
