"""What every answer of the server says about itself: ``X-Content-Type-Options: nosniff`` and a
Content-Security-Policy on JSON, SVG, GIF and error answers alike (the live page keeps its own strict one),
and /docs saying plainly where Swagger UI comes from."""

from __future__ import annotations

import base64

from fastapi.testclient import TestClient

from tests.support.job_views import finished_state
from tests.support.server_process import png_bytes

PARAMS = {"strokes": [2], "seeds": 1, "iterations": 2, "augmentations": 0}


def finished_job(client: TestClient) -> str:
    image = base64.b64encode(png_bytes(30, 20, seed=3)).decode()
    job_id = client.post("/v1/jobs", json={"image": image, "params": PARAMS}).json()["id"]
    finished_state(client, job_id)
    return job_id


def test_every_answer_says_nosniff_and_forbids_scripts(client):
    job_id = finished_job(client)
    answers = {path: client.get(path) for path in (
        "/v1/health", f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/result", f"/v1/jobs/{job_id}/result.svg",
        f"/v1/jobs/{job_id}/preview.svg", f"/v1/jobs/{job_id}/animation.svg", f"/v1/jobs/{job_id}/animation.gif",
        f"/v1/jobs/{job_id}/image", "/v1/jobs/" + "0" * 32, "/nowhere", "/openapi.json")}
    answers["foreign host"] = client.get("/v1/health", headers={"host": "evil.example"})
    for what, answer in answers.items():
        assert answer.headers.get("x-content-type-options") == "nosniff", what
        policy = answer.headers.get("content-security-policy", "")
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy, (what, policy)
        assert "script-src" not in policy, (what, policy)  # styles may be inline; scripts fall to default-src
    page = client.get(f"/jobs/{job_id}")
    assert page.headers["content-security-policy"].startswith("default-src 'self'; script-src 'self'")
    assert page.headers["x-content-type-options"] == "nosniff"


def test_the_docs_page_says_where_swagger_ui_comes_from(client):
    page = client.get("/docs")
    assert page.status_code == 200
    assert "loads Swagger UI from https://cdn.jsdelivr.net" in page.text and "/openapi.json" in page.text
    policy = page.headers["content-security-policy"]
    assert "connect-src 'self'" in policy and "https://cdn.jsdelivr.net" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
