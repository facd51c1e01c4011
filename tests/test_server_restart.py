"""A sketch server killed with SIGKILL mid-job loses nothing: results and snapshots stay, unfinished jobs run again."""

from __future__ import annotations

import re

import pytest

from tests.support.job_views import wait_for_preview
from tests.support.server_process import png_bytes, start_server, submit_image, wait_for_progress, wait_for_status

WATCHED = {"strokes": [2, 4], "seeds": 1, "iterations": 100_000, "augmentations": 0, "eval_interval": 2}
"""A job that runs until cancelled and takes a snapshot every other step."""


@pytest.mark.slow
def test_restart_after_sigkill_or_sigterm_mid_job_loses_nothing(tiny_spec, tmp_path):
    server = start_server(tmp_path / "data", tiny_spec)
    try:
        _, finished = submit_image(server, png_bytes(40, 30, seed=1), iterations=1)
        assert wait_for_status(server, finished["id"])["status"] == "succeeded"
        _, result_before = server.request("GET", f"/v1/jobs/{finished['id']}/result")
        _, watched = submit_image(server, png_bytes(40, 40, seed=5), **WATCHED)
        wait_for_preview(server, watched["id"])
        server.request("DELETE", f"/v1/jobs/{watched['id']}")
        server.wait_for_output(rf"job {watched['id']} cancelled \(ran")  # no snapshot comes after this line
        _, preview_before = wait_for_preview(server, watched["id"])

        _, interrupted = submit_image(server, png_bytes(40, 30, seed=2), iterations=60)
        _, waiting = submit_image(server, png_bytes(40, 30, seed=3), iterations=1)
        assert wait_for_progress(server, interrupted["id"])["status"] == "running"
        server.kill()

        server = server.restart()
        assert server.request("GET", f"/v1/jobs/{finished['id']}/result") == (200, result_before)
        assert server.request("GET", f"/v1/jobs/{finished['id']}")[1]["status"] == "succeeded"
        assert wait_for_preview(server, watched["id"], timeout=0)[1] == preview_before, "the snapshots survive"
        for job in (interrupted, waiting):
            state = wait_for_status(server, job["id"])
            assert state["status"] == "succeeded", state
            status, result = server.request("GET", f"/v1/jobs/{job['id']}/result")
            assert status == 200 and (result["width"], result["height"]) == (40, 30)
        assert re.search(rf"job {interrupted['id']} started .*run 2\)", server.output())
        assert "will run again" in server.output()
        # The finished job is still the stored answer for the same submission.
        status, again = submit_image(server, png_bytes(40, 30, seed=1), iterations=1)
        assert status == 202 and again == {"id": finished["id"], "status": "succeeded"}

        # A graceful stop (SIGTERM) mid-job puts the job back in the queue for the next start.
        _, long_job = submit_image(server, png_bytes(32, 32, seed=4), iterations=100_000, strokes=[2])
        assert wait_for_progress(server, long_job["id"])["status"] == "running"
        server.stop()  # uvicorn shuts down gracefully, then exits by the same signal
        assert f"job {long_job['id']} interrupted by shutdown" in server.output(), server.output()
        server = server.restart()
        assert wait_for_progress(server, long_job["id"])["status"] == "running"
        assert server.request("DELETE", f"/v1/jobs/{long_job['id']}")[1]["status"] == "cancelled"
    finally:
        server.kill()
