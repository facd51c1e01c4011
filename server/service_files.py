"""What the login services hold: a systemd user unit, a macOS LaunchAgent, a Windows Startup-folder launcher.

Each starts the absolute path of a Python interpreter with ``-m clipasso_server`` and no other option, so
the server takes its settings from ``server.toml``; nothing is looked up on PATH. Pure functions: the
files are tested as files on any platform.
"""

from __future__ import annotations

import plistlib
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import PureWindowsPath

UNIT_NAME = "clipasso-server.service"
AGENT_LABEL = "org.clipasso.server"
LAUNCHER_NAME = "CLIPasso sketch server.vbs"
RESTART_AFTER_S = 10
DESCRIPTION = "CLIPasso sketch server (for the Inkscape extension)"


def server_command(python: str) -> list[str]:
    """The command line that starts the sketch server with the interpreter at the absolute path ``python``."""
    return [python, "-m", "clipasso_server"]


def systemd_quote(argument: str) -> str:
    """One argument as systemd's ``ExecStart=`` reads it back: quoted, with ``%``, ``$``, ``\\`` and ``"`` escaped."""
    escaped = argument.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def systemd_unit(command: Sequence[str]) -> str:
    """A systemd user unit that runs ``command`` at login and again when it fails."""
    return (
        "# Written by `clipasso-server service install`; `clipasso-server service uninstall` removes it.\n"
        "[Unit]\n"
        f"Description={DESCRIPTION}\n"
        "\n"
        "[Service]\n"
        f"ExecStart={' '.join(systemd_quote(part) for part in command)}\n"
        "Restart=on-failure\n"
        f"RestartSec={RESTART_AFTER_S}\n"
        "\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )


def launch_agent(command: Sequence[str], log_file: str) -> bytes:
    """A LaunchAgent property list that runs ``command`` at login and again when it fails, logging to ``log_file``."""
    return plistlib.dumps({
        "Label": AGENT_LABEL,
        "ProgramArguments": list(command),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},  # start again after a failure, not after a clean exit
        "ThrottleInterval": RESTART_AFTER_S,
        "ProcessType": "Interactive",
        "StandardOutPath": log_file,
        "StandardErrorPath": log_file,
    })


def windowless(python: str) -> str:
    """The console-less interpreter beside a Windows ``python.exe`` (``pythonw.exe``); other paths as they are."""
    path = PureWindowsPath(python)
    if path.name.lower() == "python.exe":
        return str(path.with_name("pythonw.exe"))
    return python


def windows_launcher(command: Sequence[str]) -> str:
    """A VBScript for the Startup folder that runs ``command`` with no window and returns at once."""
    line = subprocess.list2cmdline(list(command)).replace('"', '""')
    return (
        "' Written by `clipasso-server service install`; `clipasso-server service uninstall` removes it.\n"
        "' Starts the CLIPasso sketch server at login, without a console window.\n"
        f'CreateObject("WScript.Shell").Run "{line}", 0, False\n'
    )


def unit_command(unit: str) -> list[str]:
    """The command line of a unit's ``ExecStart=`` as systemd runs it (quotes and escapes undone)."""
    line = next((line for line in unit.splitlines() if line.startswith("ExecStart=")), "ExecStart=")
    return [part.replace("%%", "%").replace("$$", "$") for part in shlex.split(line[len("ExecStart="):])]


def agent_command(plist: bytes) -> list[str]:
    """The command line a LaunchAgent runs."""
    return [str(part) for part in plistlib.loads(plist).get("ProgramArguments", [])]


def launcher_command(script: str) -> list[str]:
    """The command line a launcher written by :func:`windows_launcher` runs, split as Windows splits it
    (double quotes group; this launcher holds no other escapes)."""
    line = next((line for line in script.splitlines() if '.Run "' in line), "")
    literal = line.split('.Run "', 1)[-1].rsplit('", 0, False', 1)[0].replace('""', '"')
    parts, current, quoted = [], "", False
    for char in literal:
        if char == '"':
            quoted = not quoted
        elif char == " " and not quoted:
            if current:
                parts.append(current)
            current = ""
        else:
            current += char
    return parts + ([current] if current else [])
