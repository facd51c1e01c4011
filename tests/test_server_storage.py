"""Real storage faults under a real server: a small tmpfs data directory that fills up, and a data directory
that turns read-only under the running server (a read-only bind mount over it).

Needs permission to mount (root); skipped with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server_process import (ServerProcess, png_bytes, start_server, submit_image, wait_for_progress,
                                          wait_for_status)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs mounted at a fresh directory (unmounted afterwards)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'}); run as root")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(folder: Path) -> Path:
    """Write a file into ``folder`` until the disk is full; returns it (delete it to free the space)."""
    filler = folder / "filler.bin"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (65536, 512):
            try:
                while True:
                    os.write(descriptor, b"\0" * chunk)
            except OSError as error:
                assert error.errno == errno.ENOSPC
    finally:
        os.close(descriptor)
    return filler


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make ``folder`` read-only for every path through it (files already open stay writable), then undo it."""
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True, capture_output=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True, capture_output=True)
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True, capture_output=True)


def error_of(server: ServerProcess, job_id: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status, state = server.request("GET", f"/v1/jobs/{job_id}")
        assert status == 200, state
        if state["error"]:
            return state
        assert time.monotonic() < deadline, f"job {job_id} never reported an error: {state}\n{server.output()}"
        time.sleep(0.05)


def saved_when_health_is_ok(server: ServerProcess, timeout: float = 60.0) -> None:
    """Wait until health is ok again: the finished sketch kept in memory has been written."""
    deadline = time.monotonic() + timeout
    while server.request("GET", "/v1/health")[0] != 200:
        assert time.monotonic() < deadline, server.output()[-3000:]
        time.sleep(0.1)


@pytest.mark.slow
def test_a_full_disk_is_507_and_a_finished_sketch_waits_for_space(tiny_spec, small_disk):
    data = small_disk / "data"
    with start_server(data, tiny_spec) as server:
        _, running = submit_image(server, png_bytes(40, 30, seed=1), iterations=60)
        assert wait_for_progress(server, running["id"])["status"] == "running"
        filler = fill(small_disk)

        status, body = submit_image(server, png_bytes(40, 30, seed=2))
        assert status == 507, body
        assert body["error"]["code"] == "storage_full" and str(data) in body["error"]["message"]

        state = error_of(server, running["id"])  # the job finished, but its result cannot be written
        assert state["status"] == "succeeded" and state["error"]["code"] == "storage_full", state
        status, kept = server.request("GET", f"/v1/jobs/{running['id']}/result")
        assert status == 200 and (kept["width"], kept["height"]) == (40, 30)
        status, health = server.request("GET", "/v1/health")
        assert status == 503 and health["status"] == "degraded" and health["worker"]["alive"]
        assert health["error"]["code"] == "storage_full" and str(data) in health["error"]["message"]

        filler.unlink()
        assert wait_for_status(server, running["id"])["status"] == "succeeded"
        saved_when_health_is_ok(server)
        assert server.request("GET", f"/v1/jobs/{running['id']}/result") == (200, kept)
        assert (data / "results" / f"{running['id']}.json").is_file()
        status, created = submit_image(server, png_bytes(40, 30, seed=2))
        assert status == 202 and wait_for_status(server, created["id"])["status"] == "succeeded"
        assert server.request("GET", "/v1/health")[0] == 200
        assert server.output().count("Traceback") == 0, server.output()


@pytest.mark.slow
def test_a_read_only_data_dir_is_503_and_nothing_computed_is_lost(tiny_spec, small_disk):
    data = small_disk / "data"
    with start_server(data, tiny_spec) as server:
        _, running = submit_image(server, png_bytes(40, 30, seed=3), iterations=60)
        assert wait_for_progress(server, running["id"])["status"] == "running"
        with read_only(data):
            status, body = submit_image(server, png_bytes(40, 30, seed=4))
            assert status == 503, body
            assert body["error"]["code"] == "storage_unavailable" and str(data) in body["error"]["message"]
            state = error_of(server, running["id"])
            assert state["status"] == "succeeded" and state["error"]["code"] == "storage_unavailable", state
            assert server.request("GET", f"/v1/jobs/{running['id']}/result")[0] == 200
            status, health = server.request("GET", "/v1/health")
            assert status == 503 and health["error"]["code"] == "storage_unavailable"
        assert wait_for_status(server, running["id"])["status"] == "succeeded"
        saved_when_health_is_ok(server)
        assert (data / "results" / f"{running['id']}.json").is_file()
        status, created = submit_image(server, png_bytes(40, 30, seed=4))
        assert status == 202 and wait_for_status(server, created["id"])["status"] == "succeeded"
        assert server.request("GET", "/v1/health")[0] == 200
