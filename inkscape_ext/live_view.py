"""Opening a sketch job's live page (``<server>/jobs/<id>``) in the designer's web browser.

Standard library only. The page asks for the server's token itself, so the URL never holds it.
A computer without a graphical session gets no browser: a console browser would block Inkscape.
"""

import os
import sys
import urllib.parse
import webbrowser


def live_view_url(server: str, job_id: str) -> str:
    """The live page of job job_id on the server at base URL server."""
    return f"{server.rstrip('/')}/jobs/{urllib.parse.quote(job_id, safe='')}"


def has_graphical_browser() -> bool:
    """Whether a browser window can be shown: a chosen $BROWSER, Windows, macOS, or an X11/Wayland session."""
    if os.environ.get("BROWSER") or sys.platform.startswith(("win", "darwin")):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def open_live_view(server: str, job_id: str) -> bool:
    """Open the job's live page in a new browser tab; False when no browser could show it."""
    if not has_graphical_browser():
        return False
    try:
        return bool(webbrowser.open(live_view_url(server, job_id), new=2))
    except (webbrowser.Error, OSError):
        return False
