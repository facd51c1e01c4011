"""The CLIP models of this server process: loaded once (at start with --preload, else by the first job).

Why a load failed is said with the server's options (``--loss-weights``), as its operator sets them.
"""

from __future__ import annotations

import logging
import threading
import time

import torch

from clipasso_core.errors import ClipassoError, ModelError
from clipasso_core.model_options import OPTION_NAMES
from clipasso_core.models import LoadedModels, ModelSpec, load_models
from clipasso_core.precision import Precision, resolve_precision

from .store import canonical_json

log = logging.getLogger("clipasso_server")


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


class ModelCache:
    """Loads the models of ``spec`` on ``device`` at most once; remembers why the last attempt failed."""

    def __init__(self, spec: ModelSpec, device: torch.device) -> None:
        self.spec = spec
        self.device = device
        self._models: LoadedModels | None = None
        self._error: ClipassoError | None = None
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
        """Why the last load failed (one sentence saying what is missing and how to fix it), or ``None``."""
        return self._error

    def get(self) -> LoadedModels:
        """The loaded models; loads them on first use (a failed load is tried again next time)."""
        with self._lock:
            if self._models is not None:
                return self._models
            started = time.monotonic()
            log.info("loading CLIP models on %s", self.device)
            try:
                self._models = load_models(self.spec, self.device)
            except ClipassoError as error:  # the job that needed them fails with this message (and logs it)
                self._error = error.worded(OPTION_NAMES)
                raise self._error from None
            except Exception as error:  # a broken install or file the library does not recognise
                log.exception("unexpected error while loading the CLIP models")
                self._error = ModelError(f"The CLIP models could not be loaded ({type(error).__name__}); "
                                         "see the sketch server's log.")
                raise self._error from None
            self._error = None
            log.info("CLIP models loaded in %.1f s", time.monotonic() - started)
            return self._models
