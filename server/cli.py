"""The ``clipasso-server`` command: serve the sketch API (v1) with FastAPI on uvicorn.

Its options may also be set in ``server.toml`` (see :mod:`settings_file`); ``clipasso-server service
install|uninstall|status`` starts it at login instead (see :mod:`service`).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from clipasso_core.model_options import OPTION_NAMES, add_model_options, long_option, model_spec
from clipasso_core.image import DEFAULT_MAX_PIXELS
from clipasso_core.weights import OfflineWay

from .config import (DEFAULT_HOST, DEFAULT_KEEP_DAYS, DEFAULT_MAX_BODY_MB, DEFAULT_MAX_CONNECTIONS,
                     DEFAULT_MAX_REQUESTS, DEFAULT_PORT, DEFAULT_READ_TIMEOUT_S, DEFAULT_UNLOAD_AFTER_MIN,
                     default_data_dir)
from .log_limit import RepeatLimitFilter
from .settings_file import SettingsError, describe, from_environment, settings_in_force, settings_path

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
FORCED_EXIT_S = 15.0
"""Seconds a stop for lost workers may take before the process ends anyway."""
TOKEN_ENV = "CLIPASSO_SERVER_TOKEN"
ENVIRONMENT = {"token": TOKEN_ENV}
"""Settings an environment variable may give, by option."""

log = logging.getLogger("clipasso_server")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``clipasso-server``."""
    parser = argparse.ArgumentParser(
        prog="clipasso-server",
        description="Serve the CLIPasso sketch API (used by the Inkscape extension). Jobs run one at a time on "
                    "the device; jobs and results are kept in the data directory across restarts. Every option can "
                    f"also be set in {settings_path()} (e.g. port = 9000); the command line wins.",
        epilog="clipasso-server service install | uninstall | status: start the server at login (no administrator "
               "rights needed), with the settings of server.toml.")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default: {DEFAULT_HOST}, this computer only; any other "
                             "address needs --token)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"TCP port (default: {DEFAULT_PORT}; 0 picks a free one and prints the URL)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help=f"where jobs, images and results are kept (default: {default_data_dir()})")
    parser.add_argument("--token", default=os.environ.get(TOKEN_ENV) or None,
                        help=f"require 'Authorization: Bearer TOKEN' on every request (default: ${TOKEN_ENV}, "
                             "else no token)")
    parser.add_argument("--preload", action="store_true",
                        help="load the CLIP models before serving (default: at the first job)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help=f"largest accepted image in pixels (default: {DEFAULT_MAX_PIXELS:,})")
    parser.add_argument("--max-body-mb", type=float, default=DEFAULT_MAX_BODY_MB,
                        help=f"largest accepted request body in megabytes (default: {DEFAULT_MAX_BODY_MB:g})")
    parser.add_argument("--max-requests", type=int, default=DEFAULT_MAX_REQUESTS,
                        help=f"requests answered at once; more get 503 busy (default: {DEFAULT_MAX_REQUESTS})")
    parser.add_argument("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS,
                        help="connections kept open at once, fewer where the system lets the server open fewer "
                             "files; beyond it the oldest idle connection is closed "
                             f"(default: {DEFAULT_MAX_CONNECTIONS})")
    parser.add_argument("--read-timeout", type=float, default=DEFAULT_READ_TIMEOUT_S,
                        help="close a connection whose request stalls this many seconds "
                             f"(default: {DEFAULT_READ_TIMEOUT_S:g})")
    parser.add_argument("--keep-days", type=float, default=DEFAULT_KEEP_DAYS,
                        help=f"delete finished jobs, their images and results this many days after they finished "
                             f"(default: {DEFAULT_KEEP_DAYS:g}; 0 keeps them forever)")
    parser.add_argument("--unload-after", metavar="MINUTES", type=float, default=DEFAULT_UNLOAD_AFTER_MIN,
                        help="free the CLIP models (and their GPU memory) after this many minutes without a job; the "
                             f"next job loads them again (default: {DEFAULT_UNLOAD_AFTER_MIN:g}; 0 keeps them loaded)")
    parser.add_argument("--exit-when-idle", metavar="MINUTES", type=float, default=0.0,
                        help="exit after this many minutes without a job or a request (default: 0, never; the "
                             "Inkscape extension starts the server with 30)")
    parser.add_argument("--access-log", action="store_true", help="log every HTTP request")
    parser.add_argument("--log-file", type=Path, metavar="FILE", default=None,
                        help="append the log to FILE instead of writing it to the terminal")
    parser.add_argument("--print-config", action="store_true",
                        help="print the settings in force and where each comes from, then exit")
    parser.add_argument("--ray", metavar="ADDRESS", default=None,
                        help="run jobs on the workers of a Ray cluster instead of in this process: 'auto' for the "
                             "cluster started on this machine with 'ray start --head', or its address HOST:PORT "
                             "(needs pip install 'clipasso-inkscape[ray]')")
    parser.add_argument("--ray-workers", metavar="N", type=int, default=None,
                        help="with --ray: how many workers (default: one per GPU of the cluster; a cluster "
                             "without GPUs needs this, and runs N workers on its CPUs)")
    add_model_options(parser)
    return parser


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) only reaches this computer."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    if host.lower() == "localhost":
        return True
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free port chosen by the system)."""
    infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        if os.name != "nt":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(32)  # protocol.ACCEPT_BACKLOG: uvicorn listens again with it
        sock.set_inheritable(True)
    except BaseException:
        sock.close()
        raise
    return sock


def server_url(sock: socket.socket) -> str:
    """The base URL clients use for a bound socket."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = socket.gethostname()
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def setup_logging(access_log: bool) -> None:
    """One line per event on stderr; uvicorn only for warnings (and requests with --access-log)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RepeatLimitFilter())  # a storm of one warning never floods the log
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("clipasso_server").setLevel(logging.INFO)
    logging.getLogger("uvicorn").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.INFO if access_log else logging.WARNING)


def offline_way() -> OfflineWay:
    """How a designer gives the CLIP weights as files to this server: the keys of its settings file."""
    return OfflineWay("loss_weights", "saliency_weights", f" in {settings_path()}")


def fail(message: str, status: int = EXIT_ERROR) -> int:
    """Print ``clipasso-server: error: message`` to stderr and return ``status``."""
    print(f"clipasso-server: error: {message}", file=sys.stderr, flush=True)
    return status


def check_options(args: argparse.Namespace, name: Callable[[str], str] | None = None) -> str | None:
    """The problem with the options, as one sentence, or ``None``; ``name(dest)`` says how to call an option
    (default ``--dest-with-dashes``; a setting from server.toml is named as the file's key)."""
    name = name or long_option
    port, max_pixels, max_body_mb, max_requests, read_timeout, keep_days, ray_workers, ray, token, unload, idle = map(
        name, ("port", "max_pixels", "max_body_mb", "max_requests", "read_timeout", "keep_days", "ray_workers", "ray",
               "token", "unload_after", "exit_when_idle"))
    max_connections = name("max_connections")
    if not 0 <= args.port <= 65535:
        return f"{port} must be between 0 and 65535, got {args.port}."
    if args.max_pixels < 1:
        return f"{max_pixels} must be a positive number of pixels, got {args.max_pixels}."
    if not 0 < args.max_body_mb <= 10_000:
        return f"{max_body_mb} must be more than 0 and at most 10000, got {args.max_body_mb:g}."
    if not 1 <= args.max_requests <= 100_000:
        return f"{max_requests} must be between 1 and 100000, got {args.max_requests}."
    if not 8 <= args.max_connections <= 1_000_000:
        return f"{max_connections} must be between 8 and 1000000, got {args.max_connections}."
    if not 0 < args.read_timeout <= 3600:
        return f"{read_timeout} must be more than 0 and at most 3600 seconds, got {args.read_timeout:g}."
    if not 0 <= args.keep_days <= 100_000:  # also refuses NaN
        return f"{keep_days} must be a number of days from 0 (keep forever) to 100000, got {args.keep_days:g}."
    if not 0 <= args.unload_after <= 1_000_000:
        return (f"{unload} must be a number of minutes from 0 (keep the models loaded) to 1000000, "
                f"got {args.unload_after:g}.")
    if not 0 <= args.exit_when_idle <= 1_000_000:
        return f"{idle} must be a number of minutes from 0 (never exit) to 1000000, got {args.exit_when_idle:g}."
    if args.ray_workers is not None and args.ray is None:
        return f"{ray_workers} needs {ray} ADDRESS."
    if args.ray_workers is not None and not 1 <= args.ray_workers <= 1024:
        return f"{ray_workers} must be between 1 and 1024, got {args.ray_workers}."
    if args.ray is not None and not args.ray.strip():
        return f"{ray} needs the address of a Ray cluster, or 'auto'."
    if args.token is not None and not args.token.strip():
        return f"{token} must not be empty."
    if args.token is not None and any(c.isspace() or not c.isprintable() for c in args.token):
        return f"{token} must not contain spaces or control characters."
    if args.token is not None and not args.token.isascii():
        return f"{token} must be ASCII letters, digits and punctuation: an HTTP header cannot carry other characters."
    if not args.token and not is_loopback(args.host):
        return (f"refusing to listen on {args.host} without a token: anyone who can reach this computer could "
                f"use it. Pass --token SECRET (clients send 'Authorization: Bearer SECRET'), or use "
                f"--host {DEFAULT_HOST}.")
    return None


@dataclass(frozen=True)
class ServerSettings:
    """The options in force, where each came from, the settings file they were read with, and their problem."""

    args: argparse.Namespace
    sources: dict[str, str]
    path: Path
    problem: str | None
    """The first problem with the options as one sentence naming the setting where it was given, or None."""


def server_settings(argv: Sequence[str] = ()) -> ServerSettings:
    """The settings for ``argv``: the command line, then the environment, then server.toml, then the defaults.

    argparse exits on a bad command line; a bad settings file raises :class:`SettingsError`.
    """
    path = settings_path()
    args, sources = settings_in_force(build_parser, argv, path, os.environ, ENVIRONMENT)
    return ServerSettings(args, sources, path, check_options(args, lambda dest: setting_name(dest, sources, path)))


def setting_name(dest: str, sources: Mapping[str, str], path: Path) -> str:
    """How to name the option ``dest`` where its value came from: a key of ``path``, a variable, or ``--dest``."""
    source = sources.get(dest)
    if source == str(path):
        return f"{dest} in {path}"
    if dest in ENVIRONMENT and source == from_environment(ENVIRONMENT[dest]):
        return ENVIRONMENT[dest]
    return long_option(dest)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``clipasso-server``; returns the process exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["service"]:
        from .service import main as service_main

        return service_main(argv[1:])
    try:
        settings = server_settings(argv)
    except SettingsError as error:
        return fail(str(error), EXIT_USAGE)
    if settings.problem is not None:
        return fail(settings.problem, EXIT_USAGE)
    args = settings.args
    if args.print_config:
        print(describe(args, settings.sources, build_parser(), settings.path))
        return 0
    if args.log_file is not None:
        try:
            log_to_file(args.log_file)
        except OSError as error:
            return fail(f"cannot write the log file {args.log_file}: {error.strerror or error}.")
    setup_logging(args.access_log)
    try:
        return serve(args)
    except KeyboardInterrupt:
        print("clipasso-server: interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED


def exit_after(seconds: float, message: str) -> None:
    """Say ``message`` and end the process with an error after ``seconds`` (a stop that hangs on lost workers)."""
    time.sleep(seconds)
    fail(message)
    os._exit(EXIT_ERROR)


def log_to_file(path: Path) -> None:
    """Send everything this process prints (the log included) to the end of ``path``, line by line."""
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    stream = open(path, "a", encoding="utf-8", errors="replace", buffering=1)  # noqa: SIM115 - open until exit
    sys.stdout = sys.stderr = stream


def serve(args: argparse.Namespace) -> int:
    """Open the store, bind the socket, optionally load the models, then serve until stopped."""
    import sqlite3

    import uvicorn
    from PIL import Image

    from clipasso_core.errors import ClipassoError
    from clipasso_core.models import resolve_device

    from .app import create_app
    from .config import ServerConfig
    from .model_cache import ModelCache
    from .protocol import ACCEPT_BACKLOG, guarded_protocol, raise_descriptor_limit
    from .store import DataDirInUseError

    try:
        device = resolve_device(args.device)
    except ClipassoError as error:
        return fail(str(error.worded(OPTION_NAMES)), EXIT_USAGE)
    data_dir = (args.data_dir or default_data_dir()).expanduser()
    ray_workers, ray_gpus = 0, 0
    if args.ray is not None:
        from .ray_backend import connect, worker_plan

        try:
            ray_workers, ray_gpus = worker_plan(args.ray_workers, connect(args.ray))
        except ClipassoError as error:
            return fail(str(error))
    config = ServerConfig(
        data_dir=data_dir, models=model_spec(args), device=device, token=args.token,
        max_pixels=args.max_pixels, max_body_bytes=int(args.max_body_mb * 1_000_000), max_requests=args.max_requests,
        read_timeout_s=args.read_timeout, max_connections=args.max_connections, keep_days=args.keep_days,
        ray_workers=ray_workers, ray_gpus_per_worker=ray_gpus,
        unload_after_s=args.unload_after * 60, exit_when_idle_s=args.exit_when_idle * 60,
    )
    Image.MAX_IMAGE_PIXELS = max(args.max_pixels, Image.MAX_IMAGE_PIXELS or 0)
    raise_descriptor_limit()
    models = ModelCache(config.models, device, offline_way())
    try:
        app = create_app(config, models)
    except DataDirInUseError as error:
        return fail(f"{error}.")
    except (OSError, sqlite3.Error) as error:
        return fail(f"cannot use the data directory '{data_dir}': {getattr(error, 'strerror', None) or error}.")
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as error:
        return fail(f"cannot listen on {args.host}:{args.port}: {error.strerror or error}.")
    if args.preload and not ray_workers:  # Ray workers load their models as they start
        try:
            models.get()
        except ClipassoError as error:
            sock.close()
            return fail(str(error))
    url = server_url(sock)
    log.info("sketch server %s on %s (%s), data in %s", url, device, models.precision, data_dir)
    print(f"clipasso-server: listening on {url}", flush=True)
    server = uvicorn.Server(uvicorn.Config(
        app, log_config=None, access_log=args.access_log, lifespan="on", timeout_graceful_shutdown=5,
        server_header=False, timeout_keep_alive=int(config.idle_timeout_s), backlog=ACCEPT_BACKLOG,
        http=guarded_protocol(args.read_timeout, config.idle_timeout_s, args.max_connections),
    ))
    def request_exit() -> None:
        """Stop serving; when the server stops because its workers are lost, end the process within
        FORCED_EXIT_S even if stopping them hangs."""
        server.should_exit = True
        if app.state.exit_message is not None:
            threading.Thread(target=exit_after, args=(FORCED_EXIT_S, app.state.exit_message), daemon=True).start()

    app.state.idle_watch.request_exit = request_exit
    server.run(sockets=[sock])
    if app.state.exit_message is not None:
        return fail(app.state.exit_message)
    return 0 if server.started else EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
