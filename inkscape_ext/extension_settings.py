"""The extension's settings shared by Sketch, Refine and Insert: the server's URL and token, and how to start it.

Standard library only. Inkscape keeps each dialog's values apart (per extension id), so what the three
dialogs must share lives in one JSON file in CLIPasso's configuration folder, the folder that also holds
the server's ``server.toml`` (``platformdirs.user_config_dir("clipasso")``, computed here without
platformdirs): ``$XDG_CONFIG_HOME/clipasso/inkscape.json`` on Linux. ``clipasso install-extension``
writes it; a dialog's Server tab may change it. Keys (all optional):

- ``server_url``: the sketch server's base URL (default ``http://127.0.0.1:8765``);
- ``token``: its bearer token (default none);
- ``server_command``: the absolute command line (a list of strings) that starts the server;
- ``dialogs``: per dialog (by extension id), the Server tab's values at its last run (the token only as
  a SHA-256 digest), so that a dialog tells a value typed into it from one Inkscape merely remembered.

A missing or unreadable file means the defaults; it is never an error.

Inkscape remembers each dialog's field values on its own, and an extension cannot change what a dialog
shows. So a dialog's Server tab counts as a change only where it differs from what that same dialog
sent at its last run (the .inx default before its first): then the typed value becomes the shared one.
Otherwise the dialog shows a value it remembered, perhaps stale since another dialog (or ``clipasso
install-extension``) changed the shared one, and the shared value is used.
"""

import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

SETTINGS_FILE = "inkscape.json"
APP_NAME = "clipasso"
DEFAULT_URL = "http://127.0.0.1:8765"
"""The sketch server's URL when none is set: the server's default address (and the dialogs' .inx default)."""


def config_dir() -> Path:
    """CLIPasso's configuration folder on this platform, as ``platformdirs.user_config_dir("clipasso")`` names it."""
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(local) / APP_NAME / APP_NAME
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / APP_NAME
    config = os.environ.get("XDG_CONFIG_HOME", "").strip() or str(Path.home() / ".config")
    return Path(config).expanduser() / APP_NAME


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


def _digest(token: str) -> str:
    return hashlib.sha256(token.strip().encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ServerChoice:
    """The server a dialog's run talks to, and what its Server tab changed of the shared settings."""

    url: str
    token: str
    dialog: str
    shown: Dict[str, str]  # the dialog's values as the file remembers them: server_url and token_sha256
    changes: Dict[str, Optional[str]]  # shared keys the dialog changed (None: remove the key)

    def remember(self) -> None:
        """Save the dialog's changes as the shared values, and what the dialog showed, for its next run."""
        settings = load_settings()
        dialogs = settings.get("dialogs") if isinstance(settings.get("dialogs"), dict) else {}
        if not self.changes and dialogs.get(self.dialog) == self.shown:
            return
        save_settings(**self.changes, dialogs={**dialogs, self.dialog: self.shown})


def server_choice(dialog: str, url: str, token: str) -> ServerChoice:
    """The shared server URL and token, with what the dialog ``dialog`` (an extension id) shows taken as a change
    where it differs from what that dialog showed at its last run; call ``remember()`` once the URL is known good."""
    settings = load_settings()
    dialogs = settings.get("dialogs") if isinstance(settings.get("dialogs"), dict) else {}
    last = dialogs.get(dialog) if isinstance(dialogs.get(dialog), dict) else {}
    shown = {"server_url": url.strip(), "token_sha256": _digest(token)}
    changes: Dict[str, Optional[str]] = {}
    if shown["server_url"] != last.get("server_url", DEFAULT_URL):
        changes["server_url"] = shown["server_url"] or None
    if shown["token_sha256"] != last.get("token_sha256", _digest("")):
        changes["token"] = token.strip() or None
    merged = {**settings, **changes}
    shared_url = merged.get("server_url") if isinstance(merged.get("server_url"), str) else None
    shared_token = merged.get("token") if isinstance(merged.get("token"), str) else None
    return ServerChoice(shared_url or DEFAULT_URL, shared_token or "", dialog, shown, changes)
