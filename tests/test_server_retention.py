"""Retention: finished jobs older than --keep-days are deleted with their files, at start and periodically;
everything else (recent jobs, waiting jobs, other files) stays."""

from __future__ import annotations

import base64
import os
import sqlite3
import time
from pathlib import Path

from fastapi.testclient import TestClient

from clipasso_core.params import SketchParams
from clipasso_server import dispatcher
from clipasso_server.app import create_app
from clipasso_server.config import ServerConfig
from clipasso_server.store import JobStore
from tests.support.server_process import LOCAL, png_bytes, start_server, wait_for_status
from tests.support.waiting import wait_until

PARAMS = {"strokes": [2], "seeds": 1, "iterations": 1, "augmentations": 0}
DAY = 86400.0


def age(data: Path, job_id: str, status: str, days: float) -> None:
    """Make a job look as if it finished (or was submitted, if still queued) ``days`` ago."""
    moment = time.time() - days * DAY
    with sqlite3.connect(data / "jobs.sqlite3") as db:
        db.execute("UPDATE jobs SET status = ?, created_at = ?, finished_at = ? WHERE id = ?",
                   (status, moment, None if status == "queued" else moment, job_id))


def files_of(data: Path, job_id: str) -> list[Path]:
    return sorted(path for path in data.rglob("*") if job_id in path.name)


def folders_of(data: Path, job_id: str) -> set[str]:
    """The data folders holding a file of the job (its image, result and snapshots)."""
    return {path.parent.name for path in files_of(data, job_id)}


def test_old_finished_jobs_go_with_their_files_at_start(tiny_spec, tmp_path):
    data = tmp_path / "data"
    store = JobStore(data)
    jobs = {name: store.submit(png_bytes(30, 20, seed=i), SketchParams(**PARAMS), f"key-{name}")[0]
            for i, name in enumerate(["old succeeded", "old failed", "old cancelled", "recent", "old queued"])}
    store.close()
    for name, job in jobs.items():
        (data / "results" / f"{job.id}.json").write_text("{}")
        (data / "snapshots" / f"{job.id}.json").write_text("{}")
    age(data, jobs["old succeeded"].id, "succeeded", 3)
    age(data, jobs["old failed"].id, "failed", 1.5)
    age(data, jobs["old cancelled"].id, "cancelled", 40)
    age(data, jobs["recent"].id, "succeeded", 0.5)
    age(data, jobs["old queued"].id, "queued", 9)
    orphan = data / "images" / f"{'a' * 32}.image"  # an upload whose job row never got written
    orphan.write_bytes(b"left by a crash")
    os.utime(orphan, (time.time() - 2 * DAY,) * 2)
    fresh_orphan = data / "images" / f".{'b' * 32}.image.tmp"  # being written right now
    fresh_orphan.write_bytes(b"half")
    unrelated = data / "notes.txt"
    unrelated.write_text("the user's own file")

    with start_server(data, tiny_spec, extra_args=["--keep-days", "1"]) as server:
        for name in ("old succeeded", "old failed", "old cancelled"):
            job_id = jobs[name].id
            assert server.request("GET", f"/v1/jobs/{job_id}")[0] == 404, name
            assert files_of(data, job_id) == [], name
        assert server.request("GET", f"/v1/jobs/{jobs['recent'].id}")[0] == 200
        assert folders_of(data, jobs["recent"].id) == {"images", "results", "snapshots"}
        assert wait_for_status(server, jobs["old queued"].id)["status"] == "succeeded"
        assert (data / "images" / f"{jobs['old queued'].id}.image").is_file()
        assert not orphan.exists() and fresh_orphan.exists() and unrelated.exists()
        assert "deleted 3 finished job(s) older than 1 day(s)" in server.output()


def run_one(client: TestClient) -> str:
    image = base64.b64encode(png_bytes(30, 20)).decode()
    job_id = client.post("/v1/jobs", json={"image": image, "params": PARAMS}).json()["id"]
    deadline = time.monotonic() + 60
    while client.get(f"/v1/jobs/{job_id}").json()["status"] != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return job_id


def test_a_running_server_deletes_jobs_as_they_expire(tiny_spec, tmp_path, monkeypatch):
    monkeypatch.setattr(dispatcher, "PURGE_EVERY_S", 0.05)
    data = tmp_path / "data"
    with TestClient(create_app(ServerConfig(data_dir=data, models=tiny_spec, keep_days=2)), base_url=LOCAL) as client:
        job_id = run_one(client)
        age(data, job_id, "succeeded", 1)
        time.sleep(0.3)
        assert client.get(f"/v1/jobs/{job_id}").status_code == 200, "deleted before its time"
        age(data, job_id, "succeeded", 2.01)
        wait_until(lambda: client.get(f"/v1/jobs/{job_id}").status_code == 404, 30.0, f"job {job_id} to go")
        assert files_of(data, job_id) == []


def test_keep_days_zero_keeps_everything(tiny_spec, tmp_path, monkeypatch):
    monkeypatch.setattr(dispatcher, "PURGE_EVERY_S", 0.05)
    data = tmp_path / "data"
    with TestClient(create_app(ServerConfig(data_dir=data, models=tiny_spec, keep_days=0)), base_url=LOCAL) as client:
        job_id = run_one(client)
        age(data, job_id, "succeeded", 10_000)
        time.sleep(0.3)
        assert client.get(f"/v1/jobs/{job_id}").status_code == 200
        assert folders_of(data, job_id) == {"images", "results", "snapshots"}


class Clocks:
    """A wall clock and a monotonic clock that a test moves (the wall clock can jump, the other cannot)."""

    def __init__(self) -> None:
        self.wall, self.since_start = time.time(), 0.0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.since_start

    def wait(self, seconds: float, clock_jump: float = 0.0) -> None:
        self.since_start += seconds
        self.wall += seconds + clock_jump


def test_a_clock_set_forward_deletes_no_fresh_job(tmp_path):
    store = JobStore(tmp_path / "data")
    job, _ = store.submit(png_bytes(30, 20, seed=1), SketchParams(**PARAMS), "key")
    assert store.claim_next() is not None and store.succeed(job.id, {"width": 30, "height": 20, "levels": []}, None)
    clocks = Clocks()
    purger = dispatcher.Dispatcher(store, pool=_NoWorkers(), max_pixels=1000, keep_days=30,
                                   wall_clock=clocks.time, monotonic=clocks.monotonic)
    purger.purge_expired()
    clocks.wait(2 * 3600, clock_jump=60 * DAY)  # two hours later the wall clock says two months
    purger.purge_expired()
    assert store.get(job.id) is not None, "a job finished two hours ago was deleted as two months old"
    clocks.wait(31 * DAY)  # a month really passes
    purger.purge_expired()
    assert store.get(job.id) is None
    store.close()


class _NoWorkers:
    """A worker pool with no workers: the dispatcher is only asked to purge."""

    poll_interval_s = 1.0

    def planned(self) -> list:
        return []
