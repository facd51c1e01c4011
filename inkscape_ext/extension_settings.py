"""The extension's settings shared by Sketch, Refine and Insert: the server's URL and token, and how to start it.

Standard library only. Inkscape keeps each dialog's values apart (per extension id), so what the three
dialogs must share lives in one JSON file in CLIPasso's configuration folder, the folder that also holds
the server's ``server.toml`` (``platformdirs.user_config_dir("clipasso")``, computed here without
platformdirs): ``$XDG_CONFIG_HOME/clipasso/inkscape.json`` on Linux. ``clipasso install-extension``
writes it; a dialog's Server tab may change it. Keys (all optional):

- ``server_url``: the sketch server's base URL (default ``http://127.0.0.1:8765``);
- ``token``: its bearer token (default none);
- ``server_command``: the absolute command line (a list of strings) that starts the server.

A missing or unreadable file means the defaults; it is never an error.
"""

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict

SETTINGS_FILE = "inkscape.json"
APP_NAME = "clipasso"


def config_dir() -> Path:
    """CLIPasso's configuration folder on this platform, as ``platformdirs.user_config_dir("clipasso")`` names it."""
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(local) / APP_NAME / APP_NAME
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / APP_NAME
    config = os.environ.get("XDG_CONFIG_HOME", "").strip() or str(Path.home() / ".config")
    return Path(config).expanduser() / APP_NAME


def data_dir() -> Path:
    """CLIPasso's data folder, as ``platformdirs.user_data_dir("clipasso", appauthor=False)`` names it (the server's
    default data folder, where a server the extension starts keeps its log)."""
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(local) / APP_NAME
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / APP_NAME
    data = os.environ.get("XDG_DATA_HOME", "").strip() or str(Path.home() / ".local" / "share")
    return Path(data).expanduser() / APP_NAME


def settings_path() -> Path:
    """Where the shared extension settings are kept."""
    return config_dir() / SETTINGS_FILE


def load_settings() -> Dict[str, Any]:
    """The shared settings as a dict; ``{}`` when the file is missing, unreadable or not a JSON object."""
    try:
        value = json.loads(settings_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def save_settings(**changes: Any) -> Path:
    """Merge ``changes`` into the shared settings (a ``None`` value removes its key), written whole or not at all."""
    settings = {**load_settings(), **changes}
    settings = {key: value for key, value in settings.items() if value is not None}
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".inkscape-", suffix=".json", dir=str(path.parent))
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(settings, stream, indent=2, sort_keys=True)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path
