"""Watching a job on the real server: snapshots as a live preview SVG, elapsed time and ETA, the result as SVG."""

from __future__ import annotations

import io
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from PIL import Image

from clipasso_core.svg import parse_path_data, read_sketch_document
from clipasso_core.svg_xml import SVG_NS
from tests.support.job_views import fetch, layers, wait_for_preview
from tests.support.server_process import png_bytes, submit_image, wait_for_progress, wait_for_status

LONG = {"strokes": [2, 4], "seeds": 1, "iterations": 100_000, "augmentations": 0, "eval_interval": 2}


@pytest.fixture
def server(live_server):
    """The session's plain server (tests/conftest.py): these tests only submit, watch and cancel their own jobs."""
    return live_server


def test_preview_of_a_running_job_then_cancel(server):
    _, running = submit_image(server, png_bytes(64, 48, seed=1), **LONG)
    _, waiting = submit_image(server, png_bytes(64, 48, seed=2), **LONG)
    job_id = running["id"]
    wait_for_progress(server, job_id)
    status, _, text = fetch(server, f"/v1/jobs/{waiting['id']}/preview.svg")
    assert status == 409 and '"no_snapshot_yet"' in text, text

    kind, first = wait_for_preview(server, job_id)
    assert kind.startswith("image/svg+xml")
    assert layers(first) == [("2 strokes", 2, False), ("4 strokes", 4, True)]
    document = read_sketch_document(first)
    assert (document.width, document.height) == (64, 48)
    status, _, text = fetch(server, f"/v1/jobs/{job_id}/result.svg")
    assert status == 409 and '"not_finished"' in text

    _, later = wait_for_preview(server, job_id)
    deadline = time.monotonic() + 120
    while later == first:  # the strokes move while the job runs
        assert time.monotonic() < deadline
        time.sleep(0.2)
        _, later = wait_for_preview(server, job_id)

    assert server.request("DELETE", f"/v1/jobs/{job_id}")[1]["status"] == "cancelled"
    assert server.request("DELETE", f"/v1/jobs/{waiting['id']}")[1]["status"] == "cancelled"
    _, after = wait_for_preview(server, job_id)  # the best strokes so far stay viewable
    assert layers(after) == layers(first)


@pytest.mark.slow
def test_elapsed_grows_and_eta_becomes_a_number_that_shrinks(server):
    total = 400
    _, job = submit_image(server, png_bytes(64, 48, seed=6), **{**LONG, "iterations": total})
    samples = []  # (iteration, elapsed_s, eta_s) while running
    while True:
        state = server.request("GET", f"/v1/jobs/{job['id']}")[1]
        if state["status"] != "running" and state["status"] != "queued":
            break
        progress = state["progress"]
        if progress is not None:
            samples.append((progress["iteration"], progress["elapsed_s"], progress["eta_s"]))
        time.sleep(0.1)
    assert state["status"] == "succeeded" and state["progress"]["eta_s"] == 0
    known = [sample for sample in samples if sample[2] is not None]
    early = [sample for sample in known if sample[0] <= total * 0.4]
    late = [sample for sample in known if sample[0] >= total * 0.8]
    assert early and late, samples
    assert late[-1][2] < early[0][2], (early, late)
    assert all(sample[2] > 0 for sample in known if sample[0] < total)
    elapsed = [sample[1] for sample in samples]
    assert elapsed == sorted(elapsed) and elapsed[-1] > elapsed[0]


def test_result_svg_is_the_result_and_the_preview_ends_there(server):
    _, job = submit_image(server, png_bytes(50, 70, seed=3), strokes=[2, 3], iterations=12, eval_interval=5)
    done = wait_for_status(server, job["id"])
    assert done["status"] == "succeeded" and done["progress"]["eta_s"] == 0
    _, result = server.request("GET", f"/v1/jobs/{job['id']}/result")
    status, kind, text = fetch(server, f"/v1/jobs/{job['id']}/result.svg")
    assert status == 200 and kind.startswith("image/svg+xml")
    assert layers(text) == [("2 strokes", 2, False), ("3 strokes", 3, True)]
    root = ET.fromstring(text)
    assert [p.get("d") for p in root.iter(f"{{{SVG_NS}}}path")] == [d for level in result["levels"] for d in level["paths"]]
    assert (root.get("width"), root.get("height")) == ("50", "70")
    _, _, preview = fetch(server, f"/v1/jobs/{job['id']}/preview.svg")
    assert layers(preview) == layers(text)
    for seen, final in zip(read_sketch_document(preview).layers, read_sketch_document(text).layers):
        assert seen.level.paths == final.level.paths


def test_preview_and_animation_show_each_strokes_width_and_ink(server):
    _, job = submit_image(server, png_bytes(50, 50, seed=9), strokes=[3], iterations=12, eval_interval=5,
                          optimize_width=True, optimize_opacity=True, width_lr=0.5, opacity_lr=0.05)
    assert wait_for_status(server, job["id"])["status"] == "succeeded"
    (level,) = server.request("GET", f"/v1/jobs/{job['id']}/result")[1]["levels"]
    _, _, preview = fetch(server, f"/v1/jobs/{job['id']}/preview.svg")
    (layer,) = read_sketch_document(preview).layers
    assert layer.level.widths == pytest.approx(level["widths"], abs=2e-3)
    assert (layer.level.opacities or (1.0,) * 3) == pytest.approx(level["opacities"], abs=2e-3)
    _, _, animation = fetch(server, f"/v1/jobs/{job['id']}/animation.svg")
    replayed = {a.get("attributeName") for a in ET.fromstring(animation).iter(f"{{{SVG_NS}}}animate")}
    assert replayed == {"d", "stroke-width", "stroke-opacity"}


def test_result_preview_and_animation_keep_refined_paths_whole(server):
    paths = ["M 5 5 L 20 20 L 30 5", "M 10 30 C 15 35 25 35 30 30 Z"]
    _, job = submit_image(server, png_bytes(40, 40, seed=4), init_paths=paths, iterations=3, strokes=None)
    assert wait_for_status(server, job["id"])["status"] == "succeeded"
    _, result = server.request("GET", f"/v1/jobs/{job['id']}/result")
    for name in ("result.svg", "preview.svg", "animation.svg"):  # the snapshots carry each path's shape too
        _, _, text = fetch(server, f"/v1/jobs/{job['id']}/{name}")
        drawn = [p.get("d") for p in ET.fromstring(text).iter(f"{{{SVG_NS}}}path")]
        assert drawn == result["levels"][0]["paths"], name
        assert drawn[0].count("C") == 2 and drawn[1].rstrip().endswith("Z"), name


def test_animations_replay_the_run_and_end_on_the_result(server):
    _, waiting = submit_image(server, png_bytes(48, 40, seed=7), **LONG)
    _, job = submit_image(server, png_bytes(60, 40, seed=8), strokes=[2, 3], iterations=30, eval_interval=5)
    for name in ("animation.svg", "animation.gif"):  # queued behind the long job: nothing to replay yet
        status, _, text = fetch(server, f"/v1/jobs/{job['id']}/{name}")
        assert status == 409 and '"no_snapshot_yet"' in text, text
    assert server.request("DELETE", f"/v1/jobs/{waiting['id']}")[1]["status"] == "cancelled"
    assert wait_for_status(server, job["id"])["status"] == "succeeded"
    _, result = server.request("GET", f"/v1/jobs/{job['id']}/result")

    status, kind, text = fetch(server, f"/v1/jobs/{job['id']}/animation.svg")
    assert status == 200 and kind.startswith("image/svg+xml")
    root = ET.fromstring(text)
    assert root.find(f".//{{{SVG_NS}}}script") is None
    groups = root.findall(f"{{{SVG_NS}}}g")
    assert [len(g.findall(f"{{{SVG_NS}}}path")) for g in groups] == [2, 3]
    frames = {len(a.get("values").split(";")) for a in root.iter(f"{{{SVG_NS}}}animate")}
    assert len(frames) == 1 and frames.pop() >= 4  # the same replay for every stroke: snapshots + the hold
    for group, level in zip(groups, result["levels"]):
        for path, final in zip(group.findall(f"{{{SVG_NS}}}path"), level["paths"]):
            values = path.find(f"{{{SVG_NS}}}animate").get("values").split(";")
            assert values[0] != values[-1]  # the stroke moved during the run ...
            np.testing.assert_allclose(parse_path_data(values[-1]), parse_path_data(final), atol=0.0021)  # ... to the result

    status, kind, data = fetch(server, f"/v1/jobs/{job['id']}/animation.gif", binary=True)
    assert status == 200 and kind == "image/gif"
    with Image.open(io.BytesIO(data)) as gif:
        assert gif.n_frames == len(root.find(f".//{{{SVG_NS}}}animate").get("values").split(";")) - 1
        first = np.asarray(gif.convert("L"))
        gif.seek(gif.n_frames - 1)
        last = np.asarray(gif.convert("L"))
    assert (first < 128).any() and (last < 128).any() and not np.array_equal(first, last)


def test_unknown_job_files_are_404(server):
    for name in ("preview.svg", "result.svg", "animation.svg", "animation.gif"):
        status, kind, text = fetch(server, f"/v1/jobs/{'0' * 32}/{name}")
        assert status == 404 and kind == "application/json" and '"not_found"' in text

