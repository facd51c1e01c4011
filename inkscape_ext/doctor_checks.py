"""The Inkscape extension's part of ``clipasso doctor`` (a ``clipasso.doctor`` entry point). Standard library only.

It checks the extension's copy in Inkscape's extensions folder (where, for which Inkscape, whether it is
this version's), the server command ``clipasso install-extension`` recorded, the server at the URL the
dialogs use (its version and API, or that Inkscape can start it), and Inkscape itself. Run by
``clipasso`` in the package's environment, never by Inkscape (it is not copied into Inkscape's folder).
"""

import json
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .extension_settings import DEFAULT_URL, load_settings, settings_path
from .install import EXTENSION_FOLDER, MAIN_INX, PACKAGE_FOLDER, default_extensions_dir, main_inx, package_files
from .server_api import NEEDED_API_VERSION, api_problem, models_state

# The extension's scripts import each other by plain name, as Inkscape runs them from their folder.
sys.path.append(str(Path(__file__).resolve().parent))
from server_start import CannotStart, loopback_address, start_command  # noqa: E402

OLDEST_INKSCAPE = (1, 2)
FLATPAK_ID = "org.inkscape.Inkscape"


def check(ok: bool, text: str, fix: str = "", needed: bool = True) -> Dict[str, Any]:
    """One line of ``clipasso doctor``."""
    return {"ok": ok, "text": text, "fix": fix, "needed": needed}


def checks() -> List[Dict[str, Any]]:
    """The extension's copy, its server command, its server, and Inkscape."""
    return [installed_check(), command_check(), server_check(), inkscape_check()]


def extension_folders() -> List[Tuple[str, Path]]:
    """Where each kind of Inkscape looks for user extensions: (which Inkscape, folder)."""
    home = Path.home()
    return [
        ("Inkscape", default_extensions_dir()),
        ("Inkscape from Flatpak", home / ".var" / "app" / FLATPAK_ID / "config" / "inkscape" / "extensions"),
        ("Inkscape from Snap", home / "snap" / "inkscape" / "current" / ".config" / "inkscape" / "extensions"),
    ]


def installed_check() -> Dict[str, Any]:
    """Whether the extension is in an Inkscape's extensions folder, and whether that copy is this version's."""
    found = [(kind, folder / EXTENSION_FOLDER) for kind, folder in extension_folders()
             if (folder / EXTENSION_FOLDER / MAIN_INX).is_file()]
    if not found:
        return check(False, f"Inkscape extension: not installed (looked in {default_extensions_dir()})",
                     "run clipasso install-extension")
    kind, where = found[0]
    stale = [source.name for source in package_files() if not _same_file(source, where / PACKAGE_FOLDER / source.name)]
    if not _same_file(main_inx(), where / MAIN_INX):
        stale.append(MAIN_INX)
    if stale:
        return check(False, f"Inkscape extension: the copy in {where} (for {kind}) is not this version's",
                     "run clipasso install-extension, then restart Inkscape")
    return check(True, f"Inkscape extension: installed in {where} (for {kind})")


def _same_file(one: Path, other: Path) -> bool:
    try:
        return one.read_bytes() == other.read_bytes()
    except OSError:
        return False


def command_check() -> Dict[str, Any]:
    """Whether the extension knows how to start the server, and that command's program still exists."""
    command = load_settings().get("server_command")
    if not isinstance(command, list) or not command:
        return check(False, f"server command: none recorded in {settings_path()}",
                     "run clipasso install-extension (it records how to start the server)", needed=False)
    if not Path(str(command[0])).is_file():
        return check(False, f"server command: {' '.join(map(str, command))} — that program is gone",
                     "run clipasso install-extension again from the environment that has CLIPasso", needed=False)
    return check(True, f"server command: Inkscape can start the server with {' '.join(map(str, command))}")


def server_check() -> Dict[str, Any]:
    """The server at the dialogs' URL: its version and API revision, or whether Inkscape would start one."""
    settings = load_settings()
    url = str(settings.get("server_url") or DEFAULT_URL).rstrip("/")
    token = str(settings.get("token") or "")
    status, health = _health(url, token)
    if status == 401:
        return check(False, f"sketch server at {url}: refuses the extension's token",
                     f"set the server's token in a dialog's Server tab (kept in {settings_path()})")
    if health is None:
        return _not_running(url)
    problem = api_problem(health, url)
    if problem is not None:
        return check(False, problem, "update CLIPasso where the server runs")
    version = health.get("version", "?")
    state = models_state(health)
    error = health.get("error") if isinstance(health.get("error"), dict) else {}
    if health.get("status") == "degraded" and state != "downloading":
        return check(False, f"sketch server at {url} (version {version}) cannot sketch: {error.get('message')}",
                     "see its log; restart it once fixed")
    models = f", models {state}" if state else ""
    return check(True, f"sketch server at {url}: version {version}, API revision "
                       f"{health.get('api_version', 1)} (the extension needs {NEEDED_API_VERSION}){models}")


def _health(url: str, token: str) -> Tuple[Optional[int], Optional[dict]]:
    """(HTTP status, health body) of the server at ``url``; (None, None) when nothing answers."""
    request = urllib.request.Request(url + "/v1/health")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, payload = error.code, error.read()
    except (OSError, ValueError):
        return None, None
    try:
        body = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        body = None
    return status, body if isinstance(body, dict) else {}


def _not_running(url: str) -> Dict[str, Any]:
    """No server answers: fine when Inkscape can start one at that URL, else how to get one."""
    if loopback_address(url) is None:
        return check(False, f"sketch server at {url}: does not answer",
                     "start it on that computer, or set this computer's URL in a dialog's Server tab")
    try:
        start_command(url)
    except CannotStart as why:
        return check(False, f"sketch server at {url}: not running, and {why}")
    return check(True, f"sketch server at {url}: not running now; Inkscape starts it when a dialog needs it")


def inkscape_check() -> Dict[str, Any]:
    """Whether Inkscape is installed here, and a version the extension works with."""
    found = _inkscape_version()
    if found is None:
        return check(False, "Inkscape: not found", "install Inkscape 1.2 or later (inkscape.org)")
    where, version = found
    numbers = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
    ok = numbers >= OLDEST_INKSCAPE
    return check(ok, f"Inkscape {version} ({where})", "install Inkscape 1.2 or later (inkscape.org)")


def _inkscape_version() -> Optional[Tuple[str, str]]:
    """(where, version) of the Inkscape found: on PATH or where installers put it, else a Flatpak one."""
    candidates = [shutil.which("inkscape"),
                  "/Applications/Inkscape.app/Contents/MacOS/inkscape",
                  r"C:\Program Files\Inkscape\bin\inkscape.exe"]
    for program in filter(None, candidates):
        if Path(program).is_file():
            output = _output([program, "--version"])
            found = re.search(r"Inkscape (\d+\.\d+[\w.\-]*)", output)
            if found:
                return program, found.group(1)
    if shutil.which("flatpak"):
        output = _output(["flatpak", "info", FLATPAK_ID])
        found = re.search(r"Version:\s*(\S+)", output)
        if found:
            return f"Flatpak {FLATPAK_ID}: its sandbox cannot start the server, so start it at login", found.group(1)
    return None


def _output(command: List[str]) -> str:
    """What ``command`` prints (stdout and stderr), or nothing when it cannot run."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout + done.stderr
