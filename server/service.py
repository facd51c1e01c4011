"""``clipasso-server service install | uninstall | status``: start the sketch server at login, per user.

Linux: a systemd user unit in ``$XDG_CONFIG_HOME/systemd/user/``, enabled and started with ``systemctl
--user`` where that works (without a user session bus it does not: the unit is written and the command
says the one line that enables it). macOS: a LaunchAgent in ``~/Library/LaunchAgents/``, loaded with
``launchctl``. Windows: a launcher in the user's Startup folder. No administrator rights anywhere. Each
starts the interpreter running this command (``sys.executable -m clipasso_server``), with the settings
of ``server.toml``. ``install`` twice is harmless; ``uninstall`` leaves nothing behind.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .config import default_data_dir
from .service_files import (AGENT_LABEL, LAUNCHER_NAME, UNIT_NAME, agent_command, launch_agent, launcher_command,
                            server_command, systemd_unit, unit_command, windowless, windows_launcher)

Runner = Callable[[Sequence[str]], "tuple[int, str]"]
"""Runs a command; returns its exit status and its output (stdout and stderr)."""
LOG_NAME = "server.log"
NOT_FOUND = 127


def run_command(command: Sequence[str]) -> tuple[int, str]:
    """Run ``command`` (found on PATH: these are the system's own tools) and return (status, output)."""
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return NOT_FOUND, f"{command[0]} is not installed"
    except subprocess.TimeoutExpired:
        return 1, f"{' '.join(command)} did not finish within a minute"
    return done.returncode, (done.stdout + done.stderr).strip()


def first_line(text: str) -> str:
    """The first non-empty line of a tool's output."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "no output")


@dataclass
class LoginFile:
    """A login service's file in ``folder``; ``run`` runs the system's tools that manage it."""

    folder: Path
    run: Runner = run_command
    kind = "login service"
    file_name = ""

    @property
    def path(self) -> Path:
        """The file that makes the server start at login."""
        return self.folder / self.file_name


@dataclass
class SystemdUnit(LoginFile):
    """A systemd user unit; ``folder`` is ``$XDG_CONFIG_HOME/systemd/user``."""

    kind = "systemd user unit"
    file_name = UNIT_NAME

    def content(self, python: str, log_file: Path) -> bytes:
        """The unit that starts the server with ``python`` (systemd keeps its log in the journal)."""
        return systemd_unit(server_command(python)).encode()

    def activate(self) -> str | None:
        """Enable the unit at login and (re)start it now; ``None``, or the one line saying how to do it by hand."""
        by_hand = f"systemctl --user enable --now {UNIT_NAME}"
        status, output = self.run(["systemctl", "--user", "daemon-reload"])
        if status != 0:
            return (f"systemctl --user does not work here ({first_line(output)}); in your desktop session, run: "
                    f"{by_hand}")
        for action in (["enable", UNIT_NAME], ["restart", UNIT_NAME]):
            status, output = self.run(["systemctl", "--user", *action])
            if status != 0:
                return f"systemctl --user {action[0]} failed ({first_line(output)}); run: {by_hand}"
        return None

    def deactivate(self) -> None:
        """Stop and disable the unit (where systemctl works), and remove its link in default.target.wants."""
        self.run(["systemctl", "--user", "disable", "--now", UNIT_NAME])
        wants = self.folder / "default.target.wants" / UNIT_NAME
        if wants.is_symlink():
            wants.unlink()

    def after_removal(self) -> None:
        """Let systemd forget the removed unit."""
        self.run(["systemctl", "--user", "daemon-reload"])

    def started(self) -> str:
        """Whether systemd runs the unit now, in words."""
        status, output = self.run(["systemctl", "--user", "is-active", UNIT_NAME])
        if status == 0:
            return "systemd runs it"
        if "bus" in output.lower() or status == NOT_FOUND:
            return f"systemctl --user does not work here ({first_line(output)})"
        return f"systemd does not run it now ({first_line(output)})"


@dataclass
class LaunchAgent(LoginFile):
    """A macOS LaunchAgent; ``folder`` is ``~/Library/LaunchAgents``; ``uid`` names the user's session."""

    uid: int = 0
    kind = "LaunchAgent"
    file_name = f"{AGENT_LABEL}.plist"

    @property
    def target(self) -> str:
        """launchctl's name for the agent in this user's session."""
        return f"gui/{self.uid}/{AGENT_LABEL}"

    def content(self, python: str, log_file: Path) -> bytes:
        """The agent that starts the server with ``python``, its output appended to ``log_file``."""
        return launch_agent(server_command(python), str(log_file))

    def activate(self) -> str | None:
        """Load the agent (again) into this session, which starts it; ``None``, or how to do it by hand."""
        self.run(["launchctl", "bootout", self.target])  # an older copy may be loaded; not loaded is fine
        status, output = self.run(["launchctl", "bootstrap", f"gui/{self.uid}", str(self.path)])
        if status != 0:
            return f"launchctl could not load it ({first_line(output)}); log out and in again to start it"
        return None

    def deactivate(self) -> None:
        """Unload the agent, which stops the server it started."""
        self.run(["launchctl", "bootout", self.target])

    def after_removal(self) -> None:
        """Nothing more to tell launchd."""

    def started(self) -> str:
        """Whether launchd has the agent loaded, in words."""
        status, _ = self.run(["launchctl", "print", self.target])
        return "launchd has it loaded" if status == 0 else "launchd does not have it loaded"


@dataclass
class StartupLauncher(LoginFile):
    """A script in the Windows Startup folder (``shell:startup``), run at every login."""

    kind = "Startup folder launcher"
    file_name = LAUNCHER_NAME

    def content(self, python: str, log_file: Path) -> bytes:
        """The launcher that starts the server with the console-less ``pythonw.exe``, logging to ``log_file``."""
        return windows_launcher([*server_command(windowless(python)), "--log-file", str(log_file)]).encode("utf-8")

    def activate(self) -> str | None:
        """Run the launcher now, as the next login will; ``None``, or what went wrong."""
        status, output = self.run(["wscript.exe", str(self.path)])
        if status != 0:
            return f"it could not be started now ({first_line(output)}); it starts at the next login"
        return None

    def deactivate(self) -> None:
        """Nothing to stop: the server it started ends when you log out."""

    def after_removal(self) -> None:
        """Nothing more to do."""

    def started(self) -> str:
        """Windows keeps no state for Startup-folder launchers."""
        return "it starts at every login"


LoginService = SystemdUnit | LaunchAgent | StartupLauncher


def login_service(platform: str = sys.platform, run: Runner = run_command) -> LoginService:
    """The user-level login service of this platform."""
    if platform == "win32":
        appdata = os.environ.get("APPDATA") or str(Path.home() / "AppData" / "Roaming")
        return StartupLauncher(Path(appdata) / "Microsoft" / "Windows" / "Start Menu" / "Programs" / "Startup", run)
    if platform == "darwin":
        return LaunchAgent(Path.home() / "Library" / "LaunchAgents", run, os.getuid())
    config = os.environ.get("XDG_CONFIG_HOME", "").strip() or str(Path.home() / ".config")
    return SystemdUnit(Path(config).expanduser() / "systemd" / "user", run)


def recorded_command(service: LoginService) -> list[str]:
    """The command line an installed service runs (empty when its file is missing or damaged)."""
    try:
        content = service.path.read_bytes()
        if isinstance(service, LaunchAgent):
            return agent_command(content)
        text = content.decode("utf-8")
        return unit_command(text) if isinstance(service, SystemdUnit) else launcher_command(text)
    except Exception:  # unreadable or damaged: reported as such
        return []


def program_exists(command: list[str]) -> bool:
    """Whether a recorded command names a program file that is still there."""
    return bool(command) and Path(command[0]).is_file()


def install(service: LoginService, python: str, log_file: Path) -> list[str]:
    """Write the service's file (unless it already says the same) and activate it; the lines to print."""
    content = service.content(python, log_file)
    lines = []
    try:
        unchanged = service.path.read_bytes() == content
    except OSError:
        unchanged = False
    if unchanged:
        lines.append(f"The {service.kind} {service.path} is already installed and up to date.")
    else:
        write_file(service.path, content)
        lines.append(f"Installed the {service.kind} {service.path}: it starts {python} -m clipasso_server at login.")
    problem = service.activate()
    lines.append("The server runs now and starts at every login." if problem is None
                 else f"Not started now: {problem}.")
    return lines


def uninstall(service: LoginService) -> list[str]:
    """Stop and remove the service; the lines to print."""
    if not service.path.exists():
        service.deactivate()
        return [f"No {service.kind} was installed ({service.path} does not exist)."]
    service.deactivate()
    service.path.unlink()
    service.after_removal()
    return [f"Removed the {service.kind} {service.path}; the server no longer starts at login."]


def status_lines(service: LoginService, url: str, token: str | None) -> list[str]:
    """Installed or not (and what it starts), started or not, and whether a server answers at ``url``."""
    if service.path.exists():
        command = recorded_command(service)
        gone = "" if program_exists(command) else " (that program is gone: run clipasso-server service install again)"
        lines = [f"Installed: the {service.kind} {service.path} starts {' '.join(command) or 'nothing readable'}"
                 f"{gone}; {service.started()}."]
    else:
        lines = [f"Not installed: no {service.kind} ({service.path}); clipasso-server service install adds it."]
    version = server_version(url, token)
    lines.append(f"Running: a sketch server answers at {url} (version {version})." if version
                 else f"Not running: no sketch server answers at {url}.")
    return lines


def server_version(url: str, token: str | None, timeout: float = 3.0) -> str | None:
    """The version of the sketch server answering at ``url`` (``"?"`` when it answers oddly), or ``None``."""
    request = urllib.request.Request(url.rstrip("/") + "/v1/health")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            payload = response.read()
    except urllib.error.HTTPError as error:  # 503 degraded still carries the health body; 401 has none
        payload = error.read()
    except (OSError, ValueError):
        return None
    try:
        return str(json.loads(payload)["version"])
    except (ValueError, KeyError, TypeError):
        return "?"


def write_file(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` whole or not at all, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def local_url(host: str, port: int) -> str:
    """The URL a client on this computer uses for a server listening on ``host:port``."""
    if host in ("0.0.0.0", "", "*"):
        host = "127.0.0.1"
    elif host in ("::", "[::]"):
        host = "::1"
    return f"http://[{host.strip('[]')}]:{port}" if ":" in host else f"http://{host}:{port}"


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``clipasso-server service``."""
    parser = argparse.ArgumentParser(
        prog="clipasso-server service",
        description="Start the sketch server at login (for you only; no administrator rights needed). It takes its "
                    "settings from server.toml.")
    parser.add_argument("action", choices=("install", "uninstall", "status"),
                        help="install: start it at login (and now); uninstall: stop that and remove it; status: say "
                             "whether it is installed and running")
    return parser


def main(argv: Sequence[str]) -> int:
    """Run ``clipasso-server service ACTION``; returns the exit status."""
    from . import cli
    from .settings_file import SettingsError

    args = build_parser().parse_args(argv)
    service = login_service()
    if args.action == "uninstall":
        print("\n".join(uninstall(service)))
        return 0
    try:
        in_force = cli.server_settings()
    except SettingsError as error:
        return cli.fail(str(error), cli.EXIT_USAGE)
    if in_force.problem is not None and args.action == "install":
        return cli.fail(f"{in_force.problem} The service would not start; fix it first.", cli.EXIT_USAGE)
    settings = in_force.args
    if args.action == "install":
        data_dir = (settings.data_dir or default_data_dir()).expanduser()
        print("\n".join(install(service, sys.executable, settings.log_file or data_dir / LOG_NAME)))
        return 0
    print("\n".join(status_lines(service, local_url(settings.host, settings.port), settings.token)))
    return 0 if service.path.exists() else 3
