"""The dispatcher's logic on workers in this process, standing in for Ray actors: several workers at once, a worker
lost mid-job, a cancel that reaches a worker before its run; and :func:`run_job`'s outcome for each fault."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from clipasso_core.params import SketchParams
from clipasso_server.dispatcher import Dispatcher, WorkerLost
from clipasso_server.job_queue import JobQueue
from clipasso_server.job_status import JobStatus
from clipasso_server.model_cache import ModelCache, models_identity
from clipasso_server.runner import JobInput, run_job
from clipasso_server.store import Job, JobStore
from clipasso_server.worker import LocalWorkers, Report, SketchWorker
from tests.support.server_process import png_bytes

QUICK = SketchParams(strokes=[2], seeds=1, iterations=1, augmentations=0)
ENDLESS = SketchParams(strokes=[2], seeds=1, iterations=100_000, augmentations=0)
MAX_PIXELS = 10_000_000


@pytest.fixture
def models(tiny_spec) -> ModelCache:
    return ModelCache(tiny_spec, torch.device("cpu"))


@pytest.fixture
def make_queue(tmp_path: Path) -> Iterator[Callable[[LocalWorkers], JobQueue]]:
    """A started job queue in a fresh data directory on the given pool; stopped afterwards."""
    queues: list[JobQueue] = []

    def make(pool: LocalWorkers) -> JobQueue:
        store = JobStore(tmp_path / f"data-{len(queues)}")
        queue = JobQueue(store, Dispatcher(store, pool, MAX_PIXELS, idle_poll_s=0.05),
                         models_identity(pool.models.spec, pool.models.device))
        queues.append(queue)
        queue.start()
        return queue

    yield make
    for queue in queues:
        queue.stop()
        queue.store.close()


def submit(queue: JobQueue, params: SketchParams, seed: int, client: str = "local") -> str:
    image = png_bytes(30, 20, seed=seed)
    params = params.model_copy(update={"seed": seed})
    return queue.submit(image, params, queue.cache_key(image, params), client).id


def wait_for(queue: JobQueue, job_id: str, check: Callable[[Job], bool], timeout: float = 60.0) -> Job:
    deadline = time.monotonic() + timeout
    while not check(job := queue.store.get(job_id)):
        assert time.monotonic() < deadline, f"job {job_id} is still {job.status}"
        time.sleep(0.02)
    return job


def finished(queue: JobQueue, job_id: str) -> Job:
    return wait_for(queue, job_id, lambda job: job.status not in (JobStatus.QUEUED, JobStatus.RUNNING))


def test_two_workers_run_two_jobs_at_once_and_each_stops_its_own(models, make_queue):
    queue = make_queue(LocalWorkers(models, count=2))
    assert [worker["name"] for worker in queue.workers.snapshot()] == ["local-0", "local-1"]
    jobs = [submit(queue, ENDLESS, seed) for seed in (1, 2)]
    running = [wait_for(queue, job, lambda job: job.status == JobStatus.RUNNING) for job in jobs]
    assert {job.worker["name"] for job in running} == {"local-0", "local-1"}
    deadline = time.monotonic() + 60
    while not all(queue.view(job).progress for job in running):  # both report progress at the same time
        assert time.monotonic() < deadline, "no progress from both workers"
        time.sleep(0.02)
    assert {worker["status"] for worker in queue.workers.snapshot()} == {"busy"}

    queue.cancel(jobs[0])
    assert finished(queue, jobs[0]).status == JobStatus.CANCELLED
    assert queue.store.get(jobs[1]).status == JobStatus.RUNNING, "the other worker's job runs on"
    third = submit(queue, QUICK, seed=3)  # runs on the freed worker while the second job still runs
    assert finished(queue, third).status == JobStatus.SUCCEEDED
    assert queue.store.get(jobs[1]).status == JobStatus.RUNNING
    queue.cancel(jobs[1])
    assert finished(queue, jobs[1]).status == JobStatus.CANCELLED


class LosingWorkers(LocalWorkers):
    """Workers in this process of which the first to end a run is lost instead, as a Ray actor whose process was
    killed: its answer never comes."""

    def __init__(self, models: ModelCache) -> None:
        super().__init__(models)
        self.readied = 0
        self.lost = False

    def call(self, worker: Any, method: str, *args: Any) -> Any:
        self.readied += method == "ready"
        return super().call(worker, method, *args)

    def answer(self, call: Any) -> Any:
        value = super().answer(call)
        if isinstance(value, Report) and not self.lost:
            self.lost = True
            raise WorkerLost()
        return value


def test_a_lost_workers_job_goes_back_to_the_queue_and_runs_once_more(models, make_queue, caplog):
    pool = LosingWorkers(models)
    with caplog.at_level(logging.INFO, logger="clipasso_server"):
        queue = make_queue(pool)
        job_id = submit(queue, QUICK, seed=4)
        job = finished(queue, job_id)
        deadline = time.monotonic() + 10  # the board and the log follow just after the store
        while queue.workers.snapshot()[0]["status"] != "idle":
            assert time.monotonic() < deadline, queue.workers.snapshot()
            time.sleep(0.02)
    assert job.status == JobStatus.SUCCEEDED and job.runs == 2
    assert f"worker local was lost while running job {job_id}; the job is queued again" in caplog.text
    assert pool.readied == 1, "the dispatcher waited for the worker to be up again"
    assert caplog.text.count(f"job {job_id} succeeded") == 1
    assert queue.workers.snapshot()[0]["jobs_done"] == 1


def test_a_job_cancelled_before_its_run_begins_on_the_worker_makes_no_step(models):
    worker = SketchWorker("local", models)
    job_id = "a" * 32
    assert worker.cancel(job_id) is False  # the cancel came first: the job is not running here yet
    report = worker.run(JobInput(job_id, png_bytes(30, 20), QUICK.model_copy(update={"iterations": 50}), MAX_PIXELS))
    assert report.outcome.status == JobStatus.CANCELLED and report.outcome.iterations == 0
    assert worker.poll().job is None and worker.poll().phase == "idle"
    other = worker.run(JobInput("c" * 32, png_bytes(30, 20), QUICK, MAX_PIXELS))
    assert other.outcome.status == JobStatus.SUCCEEDED, "the cancel was for that job only"


@pytest.mark.parametrize("fault, image, params, code", [
    ("gone", None, QUICK, "image_missing"),
    ("not an image any more", b"GIF89a but not really", QUICK, "image_missing"),
    ("truncated", png_bytes(30, 20)[:40], QUICK, "image_missing"),
    ("parameters of another version", png_bytes(30, 20), None, "invalid_stored_job"),
    ("over a lower pixel limit", png_bytes(300, 200), QUICK, "image_too_large"),
])
def test_each_fault_of_a_jobs_input_is_one_outcome(models, fault, image, params, code):
    job = JobInput("b" * 32, image, params, 10_000, params_error="strokes: must be positive")
    outcome = run_job(job, models)
    assert outcome.status == JobStatus.FAILED and outcome.code == code, outcome
    assert outcome.message and "Traceback" not in outcome.message and outcome.details is None
    if code == "invalid_stored_job":
        assert "strokes: must be positive" in outcome.message
