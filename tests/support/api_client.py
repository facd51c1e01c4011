"""A sketch server app in this process, spoken to through FastAPI's TestClient (no socket, no subprocess)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from clipasso_core.models import ModelSpec
from clipasso_server.app import create_app
from clipasso_server.config import ServerConfig
from tests.support.server_process import LOCAL


def make_client(models: ModelSpec, data_dir: Path, **config: Any) -> TestClient:
    """A TestClient of a server with ``models`` and its data in ``data_dir`` (``config``: other ServerConfig fields);
    a server error is answered as a 500, as a client would see it, instead of raised."""
    return TestClient(create_app(ServerConfig(data_dir=data_dir, models=models, **config)),
                      raise_server_exceptions=False, base_url=LOCAL)
