"""The Ray backend of a studio server: the jobs of the one queue run on worker actors across a Ray cluster.

``clipasso-server --ray ADDRESS`` joins a Ray cluster; :class:`RayWorkers` starts one :class:`RayWorker`
actor per GPU (``num_gpus=1``: Ray pins the device), or ``--ray-workers N`` actors on the CPUs of a
cluster without GPUs. Each actor is a :class:`~clipasso_server.worker.SketchWorker` on its own models,
so it runs a job exactly as the in-process worker does; the server's
:class:`~clipasso_server.dispatcher.Dispatcher` drives the actors through this pool (handing out
jobs, polling progress and snapshots every :data:`POLL_INTERVAL_S`, writing everything to the store).

An actor that dies (its process killed, its machine gone) is restarted by Ray (``max_restarts=-1``)
and its job goes back to the queue. A lost head is seen within a second (:meth:`RayWorkers.problem`):
health turns degraded at once, reads keep answering, and if the head does not come back the server exits
with a sentence saying so (before Ray would end it without one). A cluster that refuses this server's Ray
token is named as such when the server starts. The actors belong to the server process, so Ray ends them when the
server dies; a restarted server finds its unfinished jobs queued again. Ray is imported only here and
only when ``--ray`` is given.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from clipasso_core.errors import ClipassoError
from clipasso_core.models import ModelSpec

from .dispatcher import WorkerLost
from .model_cache import ModelCache
from .worker import SketchWorker
from .workers import WorkerInfo

log = logging.getLogger("clipasso_server")

INSTALL_HINT = "--ray needs Ray, which is not installed; install it with: pip install 'clipasso-inkscape[ray]'."
POLL_INTERVAL_S = 0.5
"""How often a busy actor is asked for its job's progress."""
ACTOR_THREADS = 4
"""Concurrent calls an actor answers: its one job's ``run`` plus ``poll``, ``cancel`` and ``ready``."""


class RayBackendError(ClipassoError):
    """Ray is missing, the cluster cannot be reached, or it has nothing to run workers on."""

    code = "ray_unavailable"


def import_ray() -> Any:
    """The ``ray`` module, or a :class:`RayBackendError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RayBackendError(INSTALL_HINT) from None
    return ray


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail at once, with a clear message, when nothing listens at a ``HOST:PORT`` address (Ray would retry for minutes)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return  # 'auto', 'ray://…' and other forms are left to Ray
    try:
        _connect(address, timeout)
    except OSError as error:
        raise RayBackendError(f"cannot reach the Ray cluster at '{address}' ({error.strerror or error}); start it "
                              "with 'ray start --head' and pass the address it prints.") from None


TOKEN_HINT = ("a cluster started with token authentication (RAY_AUTH_MODE=token) takes only clients that have "
              "RAY_AUTH_MODE=token and its token in RAY_AUTH_TOKEN (or a file named by RAY_AUTH_TOKEN_PATH) in their "
              "environment")


@contextmanager
def ray_messages() -> Iterator[Callable[[], str]]:
    """Hold what Ray's C++ core writes to the process's stderr (descriptor 2) while the block runs; yields a function
    returning it. Ray says why it cannot join a cluster only there, line after line, while it retries."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield lambda: (held.seek(0), held.read().decode("utf-8", "replace"))[1]
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def token_problem(address: str, ray_said: str) -> str | None:
    """The sentence naming the token when Ray's own messages say the cluster refused this process's token."""
    if "InvalidAuthToken" not in ray_said and "Unauthenticated" not in ray_said:
        return None
    given = ("this server has no Ray token (RAY_AUTH_MODE=token is not set in its environment)"
             if os.environ.get("RAY_AUTH_MODE", "").lower() != "token" else
             "the Ray token this server has is not the cluster's (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or "
             "~/.ray/auth_token)")
    return (f"the Ray cluster at '{address}' refuses this server: {given}; {TOKEN_HINT}. Set them where "
            "clipasso-server starts, then start it again.")


def connect(address: str) -> float:
    """Join the Ray cluster at ``address`` (``auto``: the one started here); returns how many GPUs it has."""
    ray = import_ray()
    check_reachable(address)
    with ray_messages() as ray_said:
        try:
            ray.init(address=address, namespace="clipasso", log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as error:
            refused = token_problem(address, ray_said())
            if refused is not None:
                raise RayBackendError(refused) from None
            raise RayBackendError(f"cannot join the Ray cluster at '{address}' ({str(error).splitlines()[0]}); start "
                                  f"it first with 'ray start --head' and pass its address ({TOKEN_HINT}).") from None
        finally:
            said = ray_said()
    if said.strip():  # joined: what Ray said on the way goes to the log as it would have
        sys.stderr.write(said)
    return float(ray.cluster_resources().get("GPU", 0))


def head_problem(gcs_address: str, timeout: float = 1.0) -> str | None:
    """Why the head of the Ray cluster at ``gcs_address`` (``HOST:PORT``) cannot be reached, or ``None``."""
    try:
        _connect(gcs_address, timeout)
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        return (f"The head of the Ray cluster at '{gcs_address}' cannot be reached ({reason}): it stopped or its "
                "machine is gone, so no job runs; start it again with 'ray start --head' (the server's jobs and "
                "results still answer).")
    return None


def _connect(address: str, timeout: float) -> None:
    """Open and close a TCP connection to a ``HOST:PORT`` address (``[v6]:PORT`` too); OSError if none answers."""
    host, _, port = address.rpartition(":")
    socket.create_connection((host.strip("[]"), int(port)), timeout).close()


def worker_plan(requested: int | None, gpus: float) -> tuple[int, int]:
    """How many worker actors to start and how many GPUs each takes (1, or 0 on a cluster without GPUs)."""
    if gpus >= 1:
        return (requested or int(gpus)), 1
    if requested:
        return requested, 0
    raise RayBackendError("the Ray cluster has no GPUs; pass --ray-workers N to run N workers on its CPUs.")


class RayWorker(SketchWorker):
    """A worker actor: its own models on the device Ray gave it, loaded as it starts."""

    def __init__(self, name: str, spec: ModelSpec, device: str) -> None:
        super().__init__(name, ModelCache(spec, torch.device(device)), preload=True)


class RayWorkers:
    """The worker pool of a Ray cluster this process has joined: ``count`` actors, each with ``gpus`` GPUs (0: CPUs)."""

    poll_interval_s = POLL_INTERVAL_S

    def __init__(self, spec: ModelSpec, count: int, gpus: int) -> None:
        self.spec = spec
        self.count = count
        self.gpus = gpus
        self.device = "cuda" if gpus else "cpu"
        self.gcs_address: str | None = None

    def planned(self) -> list[tuple[WorkerInfo, bool]]:
        """``ray-0`` … ``ray-N``: their host and process are known once each is up."""
        return [(WorkerInfo(f"ray-{number}", None, None, self.device), False) for number in range(self.count)]

    def launch(self) -> list[Any]:
        """Start the actors (Ray restarts one that dies; it answers one job's run, polls and cancels at once)."""
        remote = import_ray().remote(RayWorker).options(
            num_cpus=0 if self.gpus else 1, num_gpus=self.gpus, max_restarts=-1, max_task_retries=0,
            max_concurrency=ACTOR_THREADS)
        log.info("starting %d Ray worker(s) on %s", self.count, "one GPU each" if self.gpus else "CPUs")
        self.gcs_address = import_ray().get_runtime_context().gcs_address
        return [remote.remote(info.name, self.spec, self.device) for info, _ in self.planned()]

    def call(self, worker: Any, method: str, *args: Any) -> Any:
        """Call the actor's ``method``; its object ref."""
        return getattr(worker, method).remote(*args)

    def wait(self, calls: list[Any], timeout: float) -> list[Any]:
        """The calls answered within ``timeout`` s (all that are, once one is)."""
        ray = import_ray()
        done, _ = ray.wait(calls, num_returns=1, timeout=timeout)
        if done:
            done, _ = ray.wait(calls, num_returns=len(calls), timeout=0)
        return done

    def answer(self, call: Any) -> Any:
        """The call's value; :class:`WorkerLost` when the actor died."""
        ray = import_ray()
        try:
            return ray.get(call)
        except ray.exceptions.RayActorError:
            raise WorkerLost() from None

    def close(self, timeout: float) -> bool:
        """Leave the cluster: Ray ends this server's actors."""
        import_ray().shutdown()
        return True

    def problem(self) -> str | None:
        """Why the cluster's head cannot be reached (it stopped, its machine is gone), or ``None``."""
        return None if self.gcs_address is None else head_problem(self.gcs_address)
