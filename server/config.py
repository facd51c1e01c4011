"""The server's settings, as given on the command line or in server.toml."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from platformdirs import user_data_dir

from clipasso_core.image import DEFAULT_MAX_PIXELS
from clipasso_core.models import ModelSpec

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_MAX_BODY_MB = 64.0
DEFAULT_MAX_REQUESTS = 64
DEFAULT_READ_TIMEOUT_S = 30.0
DEFAULT_IDLE_TIMEOUT_S = 5.0
"""Seconds a connection may stay open without sending a request (uvicorn's keep-alive timeout is the same)."""
DEFAULT_MAX_CONNECTIONS = 1000
"""Connections kept open at once (fewer where the process may open fewer files); beyond it the oldest idle one
is closed."""
APP_NAME = "clipasso"
DEFAULT_KEEP_DAYS = 30.0
"""Finished jobs older than this many days are deleted with their files (0 keeps them forever)."""
DEFAULT_UNLOAD_AFTER_MIN = 10.0
"""Minutes without a job after which the CLIP models are freed (0 keeps them loaded)."""
DEFAULT_STUCK_AFTER_S = 900.0
"""Seconds without progress on the running job after which /v1/health calls the worker stuck."""


def default_data_dir() -> Path:
    """Where jobs and results live unless --data-dir says otherwise: the user's data directory."""
    return Path(user_data_dir(APP_NAME, appauthor=False))


@dataclass(frozen=True)
class ServerConfig:
    """Everything the app needs: where to keep jobs, which models on which device, the token and the limits."""

    data_dir: Path
    models: ModelSpec = field(default_factory=ModelSpec)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    token: str | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_body_bytes: int = int(DEFAULT_MAX_BODY_MB * 1_000_000)
    max_requests: int = DEFAULT_MAX_REQUESTS
    """Requests answered at once; more get a JSON 503 ``busy``."""
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    """Seconds a connection may stall in the middle of a request before it is answered 408 and closed."""
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    """Seconds a connection may stay open without sending a request."""
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    """Connections kept open at once (lowered to what the descriptor limit allows)."""
    ray_workers: int = 0
    """Ray worker actors to run jobs on (0: the in-process worker; the process must have joined a cluster)."""
    ray_gpus_per_worker: int = 0
    stuck_after_s: float = DEFAULT_STUCK_AFTER_S
    """Seconds without progress on the running job after which /v1/health reports the worker stuck (503)."""
    keep_days: float = DEFAULT_KEEP_DAYS
    """Finished jobs older than this many days are deleted with their files; 0 keeps them forever."""
    unload_after_s: float = DEFAULT_UNLOAD_AFTER_MIN * 60
    """Seconds without a job after which the in-process worker's models are freed; 0 keeps them loaded."""
    exit_when_idle_s: float = 0.0
    """Seconds without a job or a request after which the server exits; 0 never."""
