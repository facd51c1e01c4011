"""The sketch server's HTTP API, against the real server process (tiny models, loopback, temp data dir)."""

from __future__ import annotations

import base64
import http.client
import io
import json
import math
import re
import socket
import time
import urllib.parse
from collections.abc import Iterator
from importlib import metadata

import pytest
import torch
from PIL import Image

from clipasso_core.precision import resolve_precision
from tests.support.server_process import (FAST_PARAMS, ServerProcess, png_bytes, start_server, submit_image,
                                          wait_for_progress, wait_for_status)

MAX_PIXELS = 200_000
MAX_BODY_MB = 1
NUMBER = r"(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)"
PATH = re.compile(rf"^M {NUMBER} {NUMBER} C {NUMBER} {NUMBER} {NUMBER} {NUMBER} {NUMBER} {NUMBER}$")
LONG_JOB = {"strokes": [4], "seeds": 1, "iterations": 100_000, "augmentations": 0}


@pytest.fixture(scope="module")
def server(tiny_spec, tmp_path_factory) -> Iterator[ServerProcess]:
    """One server for this module, with small limits so oversized input is cheap to make."""
    extra = ["--max-pixels", str(MAX_PIXELS), "--max-body-mb", str(MAX_BODY_MB)]
    with start_server(tmp_path_factory.mktemp("api-data"), tiny_spec, extra_args=extra) as process:
        yield process


def job_started_lines(server: ServerProcess, job_id: str) -> int:
    return len(re.findall(rf"job {job_id} started", server.output()))


def assert_error(status: int, body: object, expected_status: int, code: str | None = None,
                 mentions: str | None = None) -> None:
    assert status == expected_status, body
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"] and "Traceback" not in body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    if mentions is not None:
        assert mentions in body["error"]["message"], body


def test_health_names_version_device_and_queue(server):
    status, health = server.request("GET", "/v1/health")
    assert status == 200
    assert health["version"] == metadata.version("clipasso-inkscape")
    assert health["device"] == "cpu"
    assert health["precision"] == resolve_precision("auto", torch.device("cpu")).value
    assert health["models_error"] is None
    assert isinstance(health["models_loaded"], bool)
    assert health["queue_length"] == 0
    assert health["max_body_bytes"] == MAX_BODY_MB * 1_000_000 and health["max_pixels"] == MAX_PIXELS
    assert health["canvas_size"] == 224  # a job's stroke_width is in these pixels


def test_job_reports_progress_then_strokes_in_image_pixels(server):
    width, height = 64, 48
    iterations = 60  # a few seconds: long enough to watch the progress
    status, created = submit_image(server, png_bytes(width, height), iterations=iterations)
    assert status == 202 and created["status"] in ("queued", "running")
    job_id = created["id"]

    seen = wait_for_progress(server, job_id)
    assert seen["status"] == "running", "no progress was visible while the job ran"
    assert seen["progress"]["iteration"] >= 1 and seen["progress"]["total"] == iterations
    assert set(seen["progress"]["best_loss"]) == {"2", "4"}
    assert seen["error"] is None

    done = wait_for_status(server, job_id)
    assert done["status"] == "succeeded", done
    assert done["progress"]["iteration"] == iterations
    assert done["created_at"] <= done["started_at"] <= done["finished_at"]

    status, result = server.request("GET", f"/v1/jobs/{job_id}/result")
    assert status == 200, result
    assert (result["width"], result["height"]) == (width, height)
    assert [level["strokes"] for level in result["levels"]] == [2, 4]
    for level in result["levels"]:
        assert len(level["paths"]) == level["strokes"]
        assert level["stroke_width"] == pytest.approx(3.0 * max(width, height) / 224)
        assert isinstance(level["loss"], float)
        for d in level["paths"]:
            match = PATH.match(d)
            assert match, d
            xs, ys = [float(v) for v in match.groups()[0::2]], [float(v) for v in match.groups()[1::2]]
            assert all(-0.5 * width <= x <= 1.5 * width for x in xs), d
            assert all(-0.5 * height <= y <= 1.5 * height for y in ys), d
    assert re.search(rf"job {job_id} succeeded \(ran [\d.]+ s\)", server.output())


def test_health_recommends_quick_on_a_cpu_and_times_each_preset_once_a_job_has_run(server):
    status, created = submit_image(server, png_bytes(64, 48, seed=3), iterations=60)
    assert status == 202
    assert wait_for_status(server, created["id"])["status"] == "succeeded"
    status, health = server.request("GET", "/v1/health")
    assert status == 200
    assert health["recommended_preset"] == "quick"
    times = health["preset_seconds"]
    assert set(times) == {"quick", "balanced", "paper"}
    assert 0 < times["quick"] < times["balanced"] < times["paper"], times


def test_a_job_that_optimizes_width_and_ink_returns_them_per_path(server):
    status, created = submit_image(server, png_bytes(64, 48, seed=5), iterations=6, optimize_width=True,
                                   optimize_opacity=True, width_lr=2.0, opacity_lr=0.3)
    assert status == 202
    assert wait_for_status(server, created["id"])["status"] == "succeeded"
    _, result = server.request("GET", f"/v1/jobs/{created['id']}/result")
    scale = 64 / 224
    for level in result["levels"]:
        assert len(level["widths"]) == len(level["opacities"]) == len(level["paths"])
        assert all(1.5 * scale - 1e-3 <= width <= 9.0 * scale + 1e-3 for width in level["widths"])
        assert all(0.0 <= opacity <= 1.0 for opacity in level["opacities"])
    assert any(opacity < 1.0 for level in result["levels"] for opacity in level["opacities"])
    _, svg = server.request("GET", f"/v1/jobs/{created['id']}/result.svg")
    opacities = [float(m) for m in re.findall(r"stroke-opacity:([0-9.]+)", svg)]
    assert opacities == pytest.approx([o for level in result["levels"] for o in level["opacities"]], abs=1e-3)
    _, plain = submit_image(server, png_bytes(64, 48, seed=6))
    assert wait_for_status(server, plain["id"])["status"] == "succeeded"
    _, plain_result = server.request("GET", f"/v1/jobs/{plain['id']}/result")
    assert all(level["widths"] is None and level["opacities"] is None for level in plain_result["levels"])


def test_identical_submission_returns_the_stored_result_without_running_again(server):
    image = png_bytes(40, 40, seed=3)
    status, first = submit_image(server, image)
    assert status == 202
    assert wait_for_status(server, first["id"])["status"] == "succeeded"
    _, stored = server.request("GET", f"/v1/jobs/{first['id']}/result")

    # The same image and parameters after defaults (other order, a string stroke list, explicit defaults).
    params = {**FAST_PARAMS, "strokes": "4,2", "seed": 0, "stroke_width": 3}
    started = time.monotonic()
    status, again = server.request("POST", "/v1/jobs", {"image": base64.b64encode(image).decode(), "params": params})
    assert status == 202
    assert again == {"id": first["id"], "status": "succeeded"}
    assert time.monotonic() - started < 2.0
    assert server.request("GET", f"/v1/jobs/{first['id']}/result") == (200, stored)
    assert job_started_lines(server, first["id"]) == 1

    status, other = submit_image(server, image, seed=1)
    assert status == 202 and other["id"] != first["id"]
    server.request("DELETE", f"/v1/jobs/{other['id']}")


def test_cancel_queued_job_at_once_and_running_job_within_a_step(server):
    _, running = submit_image(server, png_bytes(32, 32, seed=5), **LONG_JOB)
    assert wait_for_progress(server, running["id"])["status"] == "running"
    _, queued = submit_image(server, png_bytes(32, 32, seed=6), **LONG_JOB)
    assert queued["status"] == "queued"
    status, body = server.request("GET", f"/v1/jobs/{running['id']}/result")
    assert_error(status, body, 409, "not_finished")

    status, state = server.request("DELETE", f"/v1/jobs/{queued['id']}")
    assert status == 200 and state["status"] == "cancelled"
    assert state["error"]["code"] == "cancelled"
    assert server.request("GET", f"/v1/jobs/{queued['id']}")[1]["status"] == "cancelled"

    asked = time.monotonic()
    status, state = server.request("DELETE", f"/v1/jobs/{running['id']}")
    assert status == 200 and state["status"] == "cancelled"
    server.wait_for_output(rf"job {running['id']} cancelled \(ran", timeout=15)
    stopped_after = time.monotonic() - asked
    assert stopped_after < 5, f"the optimizer took {stopped_after:.1f} s to stop"
    assert server.request("GET", "/v1/health")[1]["queue_length"] == 0
    assert job_started_lines(server, queued["id"]) == 0
    status, body = server.request("GET", f"/v1/jobs/{running['id']}/result")
    assert_error(status, body, 409, "job_cancelled", "cancelled")
    # Cancelling a finished job changes nothing.
    assert server.request("DELETE", f"/v1/jobs/{running['id']}")[1]["status"] == "cancelled"


def _image_bytes(image_format: str, size: tuple[int, int] = (32, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (255, 255, 255)).save(buffer, format=image_format)
    return buffer.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


BAD_SUBMISSIONS = {
    "invalid base64": ({"image": "not base64!"}, 422, "invalid_base64", "base64"),
    "empty image": ({"image": ""}, 422, "invalid_base64", "empty"),
    "not an image": ({"image": _b64(b"hello, this is text")}, 415, "unsupported_image", "PNG, JPEG, WebP, GIF or TIFF"),
    "ICO": ({"image": _b64(_image_bytes("ICO"))}, 415, "unsupported_image", "ICO"),
    "BMP": ({"image": _b64(_image_bytes("BMP"))}, 415, "unsupported_image", "BMP"),
    "truncated PNG": ({"image": _b64(png_bytes(64, 64)[:200])}, 422, "invalid_image", "truncated"),
    "too many pixels": ({"image": _b64(_image_bytes("PNG", (500, 500)))}, 413, "image_too_large", f"{MAX_PIXELS:,}"),
    "missing image": ({"params": {}}, 422, "invalid_request", "image"),
    "stroke count 0": ({"image": _b64(png_bytes()), "params": {"strokes": [0]}}, 422, "invalid_params",
                       "params.strokes"),
    "unknown param": ({"image": _b64(png_bytes()), "params": {"bogus": 1}}, 422, "invalid_params", "params.bogus"),
    "iterations not a number": ({"image": _b64(png_bytes()), "params": {"iterations": "many"}}, 422,
                                "invalid_params", "params.iterations"),
    "unknown fidelity": ({"image": _b64(png_bytes()), "params": {"fidelity": "sharp"}}, 422, "invalid_params",
                         "params.fidelity"),
    "negative loss weight": ({"image": _b64(png_bytes()), "params": {"layer4_weight": -1}}, 422, "invalid_params",
                             "params.layer4_weight"),
    "empty text": ({"image": _b64(png_bytes()), "params": {"text": " "}}, 422, "invalid_params", "params.text"),
    "empty mask": ({"image": _b64(png_bytes()), "params": {"mask": ""}}, 422, "invalid_params", "params.mask"),
    "mask outside the image": ({"image": _b64(png_bytes()), "params": {"mask": "M 100 0 H 200 V 40 H 100 Z"}}, 422,
                               "invalid_mask", "outside the image (64×48 pixels)"),
    "mask across ±1e308": ({"image": _b64(png_bytes()), "params": {"mask": "M -1e308 0 L 1e308 360 L 0 360 Z"}}, 422,
                           "invalid_params", "params.mask: Path data 'M -1e308 0"),
    "mask arc of radius 1e300": ({"image": _b64(png_bytes()), "params": {"mask": "M 1 1 A 1e300 1e300 0 1 1 9 9 Z"}},
                                 422, "invalid_params", "beyond ±1,000,000"),
    "mask a number": ({"image": _b64(png_bytes()), "params": {"mask": 5}}, 422, "invalid_params",
                      "params.mask: give SVG path data as a string"),
    "mask sliver": ({"image": _b64(png_bytes()), "params": {"mask": "M 10.2 10 L 10.201 10 L 10.201 40 L 10.2 40 Z"}},
                    422, "invalid_mask", "too thin"),
    "width learning rate 0": ({"image": _b64(png_bytes()), "params": {"width_lr": 0}}, 422, "invalid_params",
                              "params.width_lr"),
    "optimize_opacity as 1": ({"image": _b64(png_bytes()), "params": {"optimize_opacity": 1}}, 422,
                              "invalid_params", "params.optimize_opacity"),
    "params not an object": ({"image": _b64(png_bytes()), "params": [4]}, 422, "invalid_params", "params"),
    "stroke count true": ({"image": _b64(png_bytes()), "params": {"strokes": [True]}}, 422, "invalid_params",
                          "params.strokes"),
    "seeds as text": ({"image": _b64(png_bytes()), "params": {"seeds": "3"}}, 422, "invalid_params", "params.seeds"),
    "loss weight too large": ({"image": _b64(png_bytes()), "params": {"fc_weight": 1e12}}, 422, "invalid_params",
                              "params.fc_weight"),
    "body not an object": ([1, 2], 422, "invalid_request", None),
}


@pytest.mark.parametrize("body, status, code, mentions", BAD_SUBMISSIONS.values(), ids=BAD_SUBMISSIONS.keys())
def test_bad_submission_is_a_json_error(server, body, status, code, mentions):
    answer_status, answer = server.request("POST", "/v1/jobs", body)
    assert_error(answer_status, answer, status, code, mentions)


def test_a_traced_outline_of_twenty_thousand_nodes_is_accepted_as_a_mask(server):
    angles = [2 * math.pi * k / 20_000 for k in range(20_000)]
    outline = "M " + " L ".join(f"{32 + 20 * math.cos(a):.3f} {24 + 20 * math.sin(a):.3f}" for a in angles) + " Z"
    status, job = server.request("POST", "/v1/jobs", {"image": _b64(png_bytes()),
                                                      "params": {**LONG_JOB, "mask": outline}})
    assert status == 202, job
    assert server.request("DELETE", f"/v1/jobs/{job['id']}")[1]["status"] == "cancelled"


@pytest.mark.parametrize("field, literal", [("fc_weight", "1e999"), ("lr", "NaN"), ("layer2_weight", "-Infinity")])
def test_non_finite_numbers_are_422_naming_the_field(server, field, literal):
    raw = f'{{"image": "{_b64(png_bytes())}", "params": {{"{field}": {literal}}}}}'.encode()
    status, body = server.request("POST", "/v1/jobs", raw=raw)
    assert_error(status, body, 422, "invalid_params", f"params.{field}")
    assert "finite" in body["error"]["message"]


def test_body_that_is_not_json_is_a_json_error(server):
    status, body = server.request("POST", "/v1/jobs", raw=b'{"image": "abc"')
    assert_error(status, body, 422, "invalid_request", "JSON")
    status, body = server.request("POST", "/v1/jobs", raw=b"\xff\xfe not utf-8")
    assert_error(status, body, 422, "invalid_request", "JSON")
    status, body = server.request("POST", "/v1/jobs", raw=b'{"image": ""}', headers={"Content-Type": "text/plain"})
    assert_error(status, body, 415, "unsupported_media_type", "application/json")


def _post_raw(server: ServerProcess, headers: dict[str, str], chunks: list[bytes]) -> tuple[int, dict]:
    """POST chunks as they come; the server may answer (and close) before reading them all."""
    url = urllib.parse.urlsplit(server.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    connection.putrequest("POST", "/v1/jobs")
    for key, value in headers.items():
        connection.putheader(key, value)
    connection.endheaders()
    try:
        for chunk in chunks:
            connection.send(chunk)
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass
    response = connection.getresponse()
    try:
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_body_larger_than_the_limit_is_413_by_content_length(server):
    size = MAX_BODY_MB * 1_000_000 + 10
    status, body = _post_raw(server, {"Content-Type": "application/json", "Content-Length": str(size)},
                             [b" " * size])
    assert_error(status, body, 413, "body_too_large", "limit")


def test_body_larger_than_the_limit_is_413_while_reading_chunks(server):
    chunk = b" " * 100_000
    count = MAX_BODY_MB * 10 + 5
    framed = [b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(count)] + [b"0\r\n\r\n"]
    status, body = _post_raw(server, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}, framed)
    assert_error(status, body, 413, "body_too_large")


@pytest.mark.parametrize("method, path, status, code", [
    ("GET", "/v1/jobs/0123456789abcdef0123456789abcdef", 404, "not_found"),
    ("GET", "/v1/jobs/0123456789abcdef0123456789abcdef/result", 404, "not_found"),
    ("DELETE", "/v1/jobs/0123456789abcdef0123456789abcdef", 404, "not_found"),
    ("GET", "/v1/jobs/..%2F..%2Fjobs.sqlite3", 404, "not_found"),
    ("GET", "/v1/jobs/%2Fetc%2Fpasswd/result", 404, "not_found"),
    ("GET", "/v1/nothing-here", 404, "not_found"),
    ("PUT", "/v1/jobs", 405, "method_not_allowed"),
    ("POST", "/v1/health", 405, "method_not_allowed"),
])
def test_unknown_jobs_routes_and_methods_are_json_errors(server, method, path, status, code):
    answer_status, answer = server.request(method, path)
    assert_error(answer_status, answer, status, code)


def test_jpeg_and_webp_are_accepted(server):
    for image_format in ("JPEG", "WEBP"):
        status, created = submit_image(server, png_bytes(24, 24, image_format=image_format), iterations=1)
        assert status == 202, created
        server.request("DELETE", f"/v1/jobs/{created['id']}")


def test_openapi_document_declares_the_json_errors(server):
    status, document = server.request("GET", "/openapi.json")
    assert status == 200
    operation = document["paths"]["/v1/jobs"]["post"]
    assert {"202", "413", "415", "422", "500"} <= set(operation["responses"])
    assert operation["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    params = document["components"]["schemas"]["SketchParams"]["properties"]
    assert {"strokes", "seeds", "iterations", "seed", "stroke_width"} <= set(params)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_server_on_the_gpu_runs_jobs_there(tiny_spec, tmp_path):
    with start_server(tmp_path, tiny_spec, extra_args=["--device", "cuda", "--preload"]) as gpu_server:
        status, health = gpu_server.request("GET", "/v1/health")
        assert status == 200 and health["device"].startswith("cuda") and health["models_loaded"]
        status, created = submit_image(gpu_server, png_bytes(), strokes=[4, 16], seeds=2, iterations=20)
        assert status == 202
        assert wait_for_status(gpu_server, created["id"])["status"] == "succeeded"
        status, result = gpu_server.request("GET", f"/v1/jobs/{created['id']}/result")
        assert status == 200 and [level["strokes"] for level in result["levels"]] == [4, 16]
        assert all(len(level["paths"]) == level["strokes"] for level in result["levels"])
