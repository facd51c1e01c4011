"""Starting the sketch server when Sketch, Refine or Insert find none at a loopback URL. Standard library only.

``clipasso install-extension`` records the absolute command that starts the server (the Python of the
environment that has CLIPasso, ``-m clipasso_server``) in the shared settings. The server is started
detached from Inkscape: in a session of its own (POSIX) or a new process group without a console
(Windows), reading nothing, its output appended to ``server.log`` in CLIPasso's data folder, and without
the Python variables of Inkscape's own interpreter in its environment. It listens at the extension's URL
and exits after :data:`IDLE_MINUTES` minutes without a job or a request.

Where it cannot be started (no recorded command, the interpreter gone, an Inkscape from Flatpak or Snap
that cannot start programs outside its sandbox), one clause says why and names ``clipasso-server service
install``, which starts the server at every login instead.
"""

import ipaddress
import os
import subprocess
import sys
import time
import urllib.parse
import warnings
from pathlib import Path
from typing import Callable, List, Optional, Tuple, Type, TypeVar

from extension_settings import data_dir, load_settings

IDLE_MINUTES = 30
ANSWER_WITHIN_S = 60.0
POLL_S = 0.25
LOG_NAME = "server.log"
MAX_LOG_BYTES = 5_000_000
AT_LOGIN = "clipasso-server service install (in a terminal) to start the server at every login"
WINDOWS_FLAGS = 0x00000008 | 0x00000200 | 0x08000000  # DETACHED_PROCESS, CREATE_NEW_PROCESS_GROUP, CREATE_NO_WINDOW
INKSCAPE_ONLY = ("LD_LIBRARY_PATH", "APPDIR", "APPIMAGE", "ARGV0", "OWD")
"""Variables an Inkscape AppImage sets for its own bundled libraries."""

# The started server outlives this process on purpose: its Popen object must not warn about it (inkex
# turns every warning on, and Inkscape shows anything on stderr as an error).
warnings.filterwarnings("ignore", message=r"subprocess \d+ is still running", category=ResourceWarning)

T = TypeVar("T")


class CannotStart(Exception):
    """The server cannot be started from here; ``str(error)`` is a clause saying why and what to do instead."""


def loopback_address(url: str) -> Optional[Tuple[str, int]]:
    """(host, port) of a URL that names this computer, else None (another computer's server is not ours to start)."""
    parsed = urllib.parse.urlsplit(url)
    host = parsed.hostname or ""
    try:
        loopback = host.lower() == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return None
    return host, parsed.port or (443 if parsed.scheme == "https" else 80)


def sandbox() -> Optional[str]:
    """The sandbox this Inkscape runs in (Flatpak, Snap), if any: it cannot start programs outside it."""
    if os.environ.get("FLATPAK_ID") or Path("/.flatpak-info").exists():
        return "Flatpak"
    if os.environ.get("SNAP"):
        return "Snap"
    return None


def start_command(url: str) -> List[str]:
    """The command line that starts a server for ``url`` (a loopback URL); CannotStart says why there is none."""
    where = sandbox()
    if where:
        raise CannotStart(f"an Inkscape from {where} cannot start programs outside its sandbox; run {AT_LOGIN}")
    command = load_settings().get("server_command")
    if not (isinstance(command, list) and command and all(isinstance(part, str) and part for part in command)):
        raise CannotStart("the extension does not know how to start one (clipasso install-extension records "
                          f"that); run clipasso install-extension again, or {AT_LOGIN}")
    if not Path(command[0]).is_file():
        raise CannotStart(f"the Python that starts it ({command[0]}) is gone; run clipasso install-extension again "
                          f"from the Python environment that has CLIPasso, or {AT_LOGIN}")
    address = loopback_address(url)
    assert address is not None, "only a server on this computer is started"
    host, port = address
    return [*command, "--host", host, "--port", str(port), "--exit-when-idle", str(IDLE_MINUTES)]


def server_environment(token: str) -> dict:
    """This environment without what belongs to Inkscape's own Python (and AppImage), plus the token."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("PYTHON") and name != "__PYVENV_LAUNCHER__"}
    if "APPIMAGE" in env or "APPDIR" in env:
        env = {name: value for name, value in env.items() if name not in INKSCAPE_ONLY}
    if token:
        env["CLIPASSO_SERVER_TOKEN"] = token
    return env


def log_path() -> Path:
    """Where a server started by the extension writes its output (the previous log is kept once, as .1)."""
    return data_dir() / LOG_NAME


def launch(command: List[str], token: str) -> "subprocess.Popen[bytes]":
    """Start ``command`` detached from Inkscape, output appended to :func:`log_path`; CannotStart on failure."""
    log = log_path()
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        if log.is_file() and log.stat().st_size > MAX_LOG_BYTES:
            os.replace(log, log.with_name(LOG_NAME + ".1"))
        with open(log, "ab") as output:
            output.write(f"\n--- started by the Inkscape extension at {time.ctime()}: {' '.join(command)}\n".encode())
            output.flush()
            detached = {"creationflags": WINDOWS_FLAGS} if sys.platform == "win32" else {"start_new_session": True}
            return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                    cwd=str(log.parent), env=server_environment(token), close_fds=True, **detached)
    except OSError as error:
        raise CannotStart(f"starting it failed ({error.strerror or error}); run {AT_LOGIN}") from None


def wait_for_answer(ask: Callable[[], T], process: "subprocess.Popen[bytes]", not_yet: Type[Exception],
                    within_s: float = ANSWER_WITHIN_S) -> T:
    """``ask()``'s answer once the started server gives one (``not_yet``: it does not listen yet); CannotStart
    when the process ends first or ``within_s`` seconds pass."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            return ask()
        except not_yet:
            pass
        if process.poll() is not None:
            try:
                return ask()  # another server (started by a second click) may have taken the port meanwhile
            except not_yet:
                raise CannotStart(f"the server the extension started stopped at once ({last_line(log_path())}); "
                                  f"its log is {log_path()}") from None
        if time.monotonic() > deadline:
            raise CannotStart(f"the server the extension started did not answer within {within_s:.0f} seconds (its "
                              f"log is {log_path()}); try again, or run {AT_LOGIN}")
        time.sleep(POLL_S)


def last_line(path: Path) -> str:
    """The last line of a log file that says something, or a note that there is none."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "no log"
    said = [line.strip() for line in lines if line.strip() and not line.startswith("---")]
    return said[-1][:300] if said else "it wrote nothing"
