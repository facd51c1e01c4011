"""What a client sees of a job on a real server: its files over HTTP, its live preview, the layers of its SVGs."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from typing import Any

from clipasso_core.svg import INKSCAPE_NS, SVG_NS
from tests.support.server_process import ServerProcess
from tests.support.waiting import wait_until


def fetch(server: ServerProcess, path: str, binary: bool = False) -> tuple[int, str, Any]:
    """GET ``path``; returns (status, content type, body text, or bytes when ``binary``)."""
    try:
        with urllib.request.urlopen(server.url + path, timeout=30) as response:
            body = response.read()
            return response.status, response.headers["Content-Type"], body if binary else body.decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def finished_state(client: Any, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """The state of job ``job_id`` once it is neither queued nor running, polled through a FastAPI TestClient."""
    return wait_until(lambda: (state := client.get(f"/v1/jobs/{job_id}").json())["status"] not in ("queued", "running")
                      and state, timeout, f"job {job_id} to finish")


def finished_result(client: Any, image: str, params: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    """Submit ``image`` (base64) with ``params`` through a FastAPI TestClient, wait until the job succeeded, and
    return its result body."""
    created = client.post("/v1/jobs", json={"image": image, "params": params})
    assert created.status_code == 202, created.text
    state = finished_state(client, created.json()["id"], timeout)
    assert state["status"] == "succeeded", state
    return client.get(f"/v1/jobs/{created.json()['id']}/result").json()


def layers(svg_text: str) -> list[tuple[str | None, int, bool]]:
    """(label, number of paths, visible) of each layer of an SVG document."""
    root = ET.fromstring(svg_text)
    return [(g.get(f"{{{INKSCAPE_NS}}}label"), len(g.findall(f"{{{SVG_NS}}}path")),
             "display:none" not in (g.get("style") or ""))
            for g in root.iter(f"{{{SVG_NS}}}g") if g.get(f"{{{INKSCAPE_NS}}}groupmode") == "layer"]


def wait_for_preview(server: ServerProcess, job_id: str, timeout: float = 120.0) -> tuple[str, str]:
    """Poll the job's preview.svg until it exists (409 no_snapshot_yet until then); returns (content type, text)."""
    deadline = time.monotonic() + timeout
    while True:
        status, kind, text = fetch(server, f"/v1/jobs/{job_id}/preview.svg")
        if status == 200:
            return kind, text
        assert status == 409 and "no_snapshot_yet" in text, text
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.1)
