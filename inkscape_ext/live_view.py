"""Opening a sketch job's live page (``<server>/jobs/<id>``) in the designer's web browser, quietly.

Standard library only. Inkscape waits for an extension until its standard streams close and shows
anything it wrote to stderr as a dialog; inkex turns every Python warning on. So the browser is
started detached on every platform, with its standard streams closed and in a session of its own,
and nothing is left behind for Python to warn about: not ``webbrowser.open``, whose background
browsers leave a running ``Popen`` that ends in a ``ResourceWarning`` on stderr (and whose
``GenericBrowser`` waits for the browser). Windows hands the URL to the shell (``os.startfile``);
macOS runs ``open``; other systems run ``$BROWSER`` when set, else ``xdg-open`` and its relatives,
each through ``/bin/sh`` which starts it in the background and returns at once.

The page asks for the server's token itself, so the URL never holds it. A computer without a
graphical session gets no browser: a console browser would block Inkscape.
"""

import os
import shlex
import shutil
import subprocess
import sys
import urllib.parse
from typing import List, Optional

OPENERS = (["xdg-open"], ["gio", "open"], ["kde-open5"], ["kde-open"], ["gnome-open"], ["x-www-browser"])
"""Programs that open a URL in the desktop's browser on Linux and the BSDs, in the order they are tried."""
START_TIMEOUT_S = 5.0
DETACH = 'exec </dev/null >/dev/null 2>&1; "$@" &'
"""The shell line that starts a command in the background, streams closed, and returns at once."""


def live_view_url(server: str, job_id: str) -> str:
    """The live page of job job_id on the server at base URL server."""
    return f"{server.rstrip('/')}/jobs/{urllib.parse.quote(job_id, safe='')}"


def has_graphical_browser() -> bool:
    """Whether a browser window can be shown: a chosen $BROWSER, Windows, macOS, or an X11/Wayland session."""
    if os.environ.get("BROWSER") or sys.platform.startswith(("win", "darwin")):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def browser_command(url: str) -> Optional[List[str]]:
    """The command line that opens url on this (non-Windows) system, or None when there is no browser to run."""
    for choice in os.environ.get("BROWSER", "").split(os.pathsep):
        words = shlex.split(choice) if choice.strip() else []
        if words and shutil.which(words[0]):
            has_url = any("%s" in word for word in words)
            return [word.replace("%s", url) for word in words] + ([] if has_url else [url])
    if sys.platform == "darwin":
        return ["open", url]
    for opener in OPENERS:
        if shutil.which(opener[0]):
            return [*opener, url]
    return None


def start_detached(command: List[str]) -> bool:
    """Start command in the background in a session of its own, standard streams closed; False if it cannot start."""
    try:
        shell = subprocess.run(
            ["/bin/sh", "-c", DETACH, "sh", *command],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, timeout=START_TIMEOUT_S, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return shell.returncode == 0


def open_live_view(server: str, job_id: str) -> bool:
    """Open the job's live page in the browser without waiting for it; False when no browser could show it."""
    if not has_graphical_browser():
        return False
    url = live_view_url(server, job_id)
    if sys.platform == "win32":
        try:
            os.startfile(url)  # the shell opens it; no child process is left to this one
        except OSError:
            return False
        return True
    command = browser_command(url)
    return command is not None and start_detached(command)
