"""The live page for people (``GET /jobs/{id}``): served with a strict CSP, its files, a 404 page, and the token rule."""

from __future__ import annotations

import base64
import io
import re

from fastapi.testclient import TestClient

from tests.support.api_client import make_client
from tests.support.server_process import LOCAL, png_bytes
from tests.support.waiting import wait_until

LONG = {"strokes": [2], "seeds": 1, "iterations": 100_000, "augmentations": 0}
TOKEN = "s3cret-page-token"


def submit(client: TestClient, headers=None, seed: int = 0) -> str:
    image = base64.b64encode(png_bytes(30, 20, seed=seed)).decode()
    created = client.post("/v1/jobs", json={"image": image, "params": LONG}, headers=headers or {})
    assert created.status_code == 202, created.text
    return created.json()["id"]


def assert_strict_csp(answer) -> None:
    policy = answer.headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert directives["frame-ancestors"] == "'none'"
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_page_of_a_job_is_html_with_a_strict_csp_and_only_its_own_files(client):
    job_id = submit(client)
    page = client.get(f"/jobs/{job_id}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert_strict_csp(page)
    assert f'data-job="{job_id}"' in page.text
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, re.S)
    assert scripts and all('src="/static/live/' in attrs and not body.strip() for attrs, body in scripts)
    assert "style=" not in page.text, "inline styles would be blocked by the CSP"
    for reference in re.findall(r'(?:src|href)="([^"#]+)"', page.text):
        if reference == "data:,":
            continue  # an empty icon: no request for /favicon.ico
        assert reference.startswith("/static/live/"), reference
        assert client.get(reference).status_code == 200
    client.delete(f"/v1/jobs/{job_id}")


def test_static_files_are_served_with_their_types(client):
    script = client.get("/static/live/live.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "/v1/jobs/" in script.text and "preview.svg" in script.text and "DELETE" in script.text
    assert_strict_csp(script)
    style = client.get("/static/live/live.css")
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    assert client.get("/static/live/../app.py").status_code == 404
    assert client.get("/static/live/page.html").status_code == 404


def test_unknown_job_is_a_404_page_that_escapes_the_id(client):
    answer = client.get("/jobs/0123456789abcdef0123456789abcdef")
    assert answer.status_code == 404 and answer.headers["content-type"].startswith("text/html")
    assert "no job" in answer.text and "0123456789abcdef0123456789abcdef" in answer.text
    assert_strict_csp(answer)
    hostile = client.get("/jobs/%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E")
    assert hostile.status_code == 404
    assert "<img" not in hostile.text and "&lt;img src=x" in hostile.text


def test_the_pages_own_cancel_request_passes_the_origin_rule(client):
    job_id = submit(client)
    foreign = client.delete(f"/v1/jobs/{job_id}", headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403 and foreign.json()["error"]["code"] == "forbidden_origin"
    own = client.delete(f"/v1/jobs/{job_id}", headers={"Origin": LOCAL})
    assert own.status_code == 200 and own.json()["status"] == "cancelled"


def test_with_a_token_the_page_is_served_without_it_but_the_data_is_not(tiny_spec, tmp_path):
    with make_client(tiny_spec, tmp_path / "data", token=TOKEN) as client:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        job_id = submit(client, auth)
        page = client.get(f"/jobs/{job_id}")
        assert page.status_code == 200 and TOKEN not in page.text
        assert client.get("/static/live/live.js").status_code == 200
        for path in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/preview.svg", f"/v1/jobs/{job_id}/result.svg"):
            assert client.get(path).status_code == 401, path
        assert client.delete(f"/v1/jobs/{job_id}").status_code == 401
        assert client.delete(f"/v1/jobs/{job_id}", headers=auth).json()["status"] == "cancelled"
        script = client.get("/static/live/live.js").text
        assert "sessionStorage" in script and '"Bearer " + token' in script
        assert not re.search(r"[?&]token=", script), "the token never goes into a URL"


def test_with_a_token_the_page_does_not_tell_strangers_which_jobs_exist(tiny_spec, tmp_path):
    with make_client(tiny_spec, tmp_path / "data", token=TOKEN) as client:
        job_id = submit(client, {"Authorization": f"Bearer {TOKEN}"})
        real, unknown = client.get(f"/jobs/{job_id}"), client.get(f"/jobs/{'0' * 32}")
        assert real.status_code == unknown.status_code == 200
        assert real.text.replace(job_id, "0" * 32) == unknown.text
        assert client.get("/jobs/not-a-job-id").status_code == 404


def wait_until_running(client: TestClient, job_id: str) -> None:
    wait_until(lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] == "running", 60.0, f"job {job_id} to start")


def test_a_job_tells_its_place_in_the_queue_and_its_settings_without_path_data(client):
    first = submit(client)
    wait_until_running(client, first)
    image = base64.b64encode(png_bytes(30, 20, seed=3)).decode()
    masked = {**LONG, "preset": "balanced", "mask": "M 0 0 H 20 V 20 H 0 Z"}
    second = client.post("/v1/jobs", json={"image": image, "params": masked}).json()["id"]
    third = submit(client, seed=4)
    try:
        states = [client.get(f"/v1/jobs/{job_id}").json() for job_id in (first, second, third)]
        assert [state["queue_position"] for state in states] == [None, 0, 1]
        settings = states[1]["settings"]
        assert settings["preset"] == "balanced" and settings["strokes"] == [2] and settings["pick_seed_at"] == 250
        assert "mask" not in settings and "init_paths" not in settings
    finally:
        for job_id in (third, second, first):
            client.delete(f"/v1/jobs/{job_id}")


def test_the_jobs_picture_is_served_as_a_png_for_its_page(tiny_spec, tmp_path):
    from PIL import Image

    with make_client(tiny_spec, tmp_path / "data", token=TOKEN) as client:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        job_id = submit(client, auth)
        assert client.get(f"/v1/jobs/{job_id}/image").status_code == 401, "the picture is data: it needs the token"
        answer = client.get(f"/v1/jobs/{job_id}/image", headers=auth)
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
        picture = Image.open(io.BytesIO(answer.content))
        assert picture.size == (30, 20)
        assert picture.convert("RGB").tobytes() == Image.open(io.BytesIO(png_bytes(30, 20))).convert("RGB").tobytes()
        assert client.get(f"/v1/jobs/{'0' * 32}/image", headers=auth).status_code == 404
        client.delete(f"/v1/jobs/{job_id}", headers=auth)
