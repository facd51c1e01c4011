"""A burst of jobs from several clients: the Ray backend's dispatch overhead against the in-process worker,
and each client's wait with several Ray workers. Everything is measured in the same run.

1. The same burst runs on the in-process worker and on ONE Ray worker (models loaded beforehand in both),
   alternately ``--rounds`` times; the fastest round of each counts (other load on the machine only
   slows a round down): ``overhead per job = (Ray wall time - in-process wall time) / jobs``, printed
   with its share of a job's run time (target: under 2 %).
2. The burst runs on ``--workers`` Ray workers: each client's wait (queued → started) and the wall time.

The burst is submitted client by client (``--burst 6,3,1``: client A's six jobs first, then B's three,
then C's one): the queue's turns are what keep B and C from waiting for all of A's jobs.

    python -m bench.studio [--ray ADDRESS] [--workers 2] [--burst 6,3,1] [--iterations 30] [--rounds 2] [--tiny]
                           [model options as clipasso-server: --device, --loss-model, --loss-weights, ...]

Without ``--ray`` a one-node Ray cluster is started for the run (``ray start --head`` on the loopback address,
CPUs only, with a token of its own, as the Ray tests do: no bare local ``ray.init``, which would write
``~/.ray/auth_token``). ``--tiny`` uses tiny random-weight models (no weights needed).
"""

from __future__ import annotations

import argparse
import io
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from clipasso_core.image import DEFAULT_MAX_PIXELS
from clipasso_core.model_options import add_model_options, model_spec
from clipasso_core.models import resolve_device
from clipasso_core.params import SketchParams
from clipasso_server.dispatcher import Dispatcher, WorkerPool
from clipasso_server.job_queue import JobQueue
from clipasso_server.model_cache import ModelCache, models_identity
from clipasso_server.ray_backend import RayWorkers, import_ray
from clipasso_server.store import JobStore
from clipasso_server.worker import LocalWorkers
from testkit.ray_cluster import local_ray_cluster, short_temp_dir
from testkit.tiny_models import make_tiny_models

TICK_S = 0.01


def picture(number: int) -> bytes:
    """A distinct small drawing per job (so no submission reuses another's result), as PNG bytes."""
    image = Image.new("RGB", (160, 120), "white")
    draw = ImageDraw.Draw(image)
    shift = number * 3 % 60
    draw.ellipse((20 + shift, 20, 90 + shift, 100), fill=(30, 30, 30))
    draw.rectangle((110, 10 + number % 40, 130, 110), fill=(60, 60, 170))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def run_burst(queue: JobQueue, burst: list[int], params: SketchParams) -> dict[str, Any]:
    """Submit the burst client by client, wait for every job; returns the wall time and the jobs as stored."""
    jobs: list[tuple[str, str]] = []
    number = 0
    started = time.monotonic()
    for index, count in enumerate(burst):
        client = chr(ord("A") + index)
        for _ in range(count):
            image = picture(number)
            job = queue.submit(image, params, queue.cache_key(image, params), client)
            jobs.append((client, job.id))
            number += 1
    while queue.store.count("queued", "running"):
        time.sleep(TICK_S)
    wall = time.monotonic() - started
    stored = [(client, queue.store.get(job_id)) for client, job_id in jobs]
    failed = [job.id for _, job in stored if job is None or job.status != "succeeded"]
    if failed:
        sys.exit(f"bench: {len(failed)} job(s) did not succeed, e.g. {failed[0]}")
    return {"wall": wall, "jobs": stored}


def make_queue(folder: Path, models: ModelCache, pool: WorkerPool) -> JobQueue:
    """A job queue in ``folder`` whose jobs run on ``pool`` (not started)."""
    store = JobStore(folder)
    return JobQueue(store, Dispatcher(store, pool, DEFAULT_MAX_PIXELS, idle_poll_s=TICK_S),
                    models_identity(models.spec, models.device))


def wait_ready(queue: JobQueue, count: int) -> None:
    """Wait until ``count`` Ray workers have loaded their models."""
    while sum(worker["status"] == "idle" for worker in queue.workers.snapshot()) < count:
        time.sleep(0.1)


def ray_burst(folder: Path, models: ModelCache, workers: int, gpus: int, burst: list[int],
              params: SketchParams, address: str) -> dict[str, Any]:
    """The burst on ``workers`` Ray workers of the cluster at ``address`` (joined, used, left)."""
    import_ray().init(address=address, namespace="clipasso", log_to_driver=False)
    queue = make_queue(folder, models, RayWorkers(models.spec, workers, gpus))
    queue.start()
    try:
        wait_ready(queue, workers)
        return run_burst(queue, burst, params)
    finally:
        queue.stop()
        queue.store.close()


@contextmanager
def cluster(address: str | None, cpus: int) -> Iterator[str]:
    """``address`` as given, or the address of a one-node CPU cluster with its own token, ended afterwards."""
    if address:
        yield address
        return
    token = secrets.token_hex(32)
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token})  # read when Ray is first imported
    with short_temp_dir("bench-ray") as folder, local_ray_cluster(folder, cpus, token) as started:
        yield started


def waits(run: dict[str, Any]) -> dict[str, list[float]]:
    """Each client's waits in the queue (submitted → started), in seconds."""
    result: dict[str, list[float]] = {}
    for client, job in run["jobs"]:
        result.setdefault(client, []).append(job.started_at - job.created_at)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ray", help="address of a running Ray cluster (default: a CPU-only one started for the run)")
    parser.add_argument("--workers", type=int, default=2,
                        help="Ray workers for the fairness run (one GPU each on a machine with GPUs; default: 2)")
    parser.add_argument("--burst", default="6,3,1", help="jobs per client, submitted client by client")
    parser.add_argument("--iterations", type=int, default=30, help="optimizer steps per job")
    parser.add_argument("--strokes", default="8", help="stroke counts per job")
    parser.add_argument("--rounds", type=int, default=2, help="alternate rounds of the overhead comparison")
    parser.add_argument("--tiny", action="store_true", help="tiny random-weight models instead of CLIP")
    add_model_options(parser)
    args = parser.parse_args()
    burst = [int(part) for part in args.burst.split(",")]
    params = SketchParams(strokes=args.strokes, seeds=1, iterations=args.iterations, augmentations=4)
    with tempfile.TemporaryDirectory(prefix="bench-studio-") as scratch, \
            cluster(args.ray, args.workers + 1) as address:
        root = Path(scratch)
        spec = make_tiny_models(root / "models") if args.tiny else model_spec(args)
        device = resolve_device(args.device)
        models = ModelCache(spec, device)
        models.get()
        gpus = 1 if device.type == "cuda" else 0
        if gpus and not args.ray:
            sys.exit("bench: the cluster started for the run has no GPUs; start one with 'ray start --head' "
                     "and pass --ray ADDRESS, or use --device cpu.")
        local_walls, ray_walls = [], []
        for number in range(args.rounds):
            local = make_queue(root / f"local-{number}", models, LocalWorkers(models))
            local.start()
            try:
                local_walls.append(run_burst(local, burst, params)["wall"])
            finally:
                local.stop()
                local.store.close()
            ray_walls.append(ray_burst(root / f"ray-1-{number}", models, 1, gpus, burst, params, address)["wall"])
        jobs = sum(burst)
        baseline, one = {"wall": min(local_walls)}, {"wall": min(ray_walls)}
        run_s = baseline["wall"] / jobs
        overhead = (one["wall"] - baseline["wall"]) / jobs
        print(f"{jobs} jobs of {args.iterations} steps ({args.strokes} strokes) on {device}"
              f"{' with tiny models' if args.tiny else ''}:")
        print(f"  in-process worker: {baseline['wall']:.2f} s, {run_s:.3f} s per job")
        print(f"  one Ray worker:    {one['wall']:.2f} s")
        print(f"  dispatch overhead: {overhead * 1000:.1f} ms per job = {overhead / run_s:.1%} of a job's run time "
              "(target < 2 %)")
        count = args.workers
        many = ray_burst(root / "ray-n", models, count, gpus, burst, params, address)
        print(f"  {count} Ray workers:     {many['wall']:.2f} s for the burst ({baseline['wall'] / many['wall']:.2f}× "
              "the in-process worker)")
        for client, seconds in waits(many).items():
            print(f"    client {client}: {len(seconds)} job(s), wait mean {statistics.mean(seconds):.2f} s, "
                  f"max {max(seconds):.2f} s")


if __name__ == "__main__":
    main()
