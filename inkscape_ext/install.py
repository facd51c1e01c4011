"""Copying the extension into Inkscape's user extensions directory, and ``clipasso install-extension``.

Standard library only. The installed folder mirrors a checkout, so the same .inx files work in both:
``clipasso/clipasso.inx`` (the Sketch dialog, at the repository's top level) runs
``inkscape_ext/clipasso_sketch.py``, and ``clipasso/inkscape_ext/`` holds the scripts and the other
.inx files. In a checkout (or an editable install) the top-level .inx lies beside this package; a
wheel carries it inside the package (``setup.py`` puts it there). ``--server-url`` and ``--token`` set
the server every dialog uses, in the settings the dialogs share (extension_settings.py).

``clipasso install-extension`` also records there the absolute command that starts this sketch server
(the Python running it, ``-m clipasso_server``), so that the extension can start the server when it
finds none.
"""

import argparse
import os
import shutil
import sys
import tempfile
import urllib.parse
from pathlib import Path
from typing import List, Optional

from .extension_settings import DEFAULT_URL, load_settings, save_settings

EXTENSION_FOLDER = "clipasso"
PACKAGE_FOLDER = "inkscape_ext"
MAIN_INX = "clipasso.inx"
NOT_INSTALLED = ("install.py", "doctor_checks.py", "__init__.py", "__pycache__", MAIN_INX)
"""Files of this package that are not part of the extension Inkscape runs."""


def package_files() -> List[Path]:
    """The files of this package that :func:`install_extension` copies, by name."""
    return sorted(path for path in Path(__file__).resolve().parent.iterdir()
                  if path.is_file() and path.name not in NOT_INSTALLED and path.suffix != ".pyc")


def default_extensions_dir() -> Path:
    """Inkscape's user extensions directory on this platform (honours INKSCAPE_PROFILE_DIR)."""
    profile = os.environ.get("INKSCAPE_PROFILE_DIR")
    if profile:
        return Path(profile).expanduser() / "extensions"
    if sys.platform == "win32":
        appdata = os.environ.get("APPDATA") or str(Path.home() / "AppData" / "Roaming")
        return Path(appdata) / "inkscape" / "extensions"
    if sys.platform == "darwin":
        support = Path.home() / "Library" / "Application Support"
        return support / "org.inkscape.Inkscape" / "config" / "inkscape" / "extensions"
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config).expanduser() / "inkscape" / "extensions"


class InstallError(Exception):
    """The extension cannot be installed where asked; the message says why and what to do."""


def main_inx() -> Path:
    """The top-level clipasso.inx: inside this package in a wheel, beside it in a checkout."""
    package = Path(__file__).resolve().parent
    for candidate in (package / MAIN_INX, package.parent / MAIN_INX):
        if candidate.is_file():
            return candidate
    raise InstallError(f"This installation lacks {MAIN_INX}; reinstall the clipasso-inkscape package.")


def install_extension(dest: Optional[Path] = None) -> Path:
    """Copy the extension into <dest or default_extensions_dir()>/clipasso/ as a checkout lays it out, replacing an older copy.

    An explicit ``dest`` must be an existing folder; a ``clipasso`` entry there that is not an earlier
    copy of this extension is never touched.
    """
    folder = Path(dest).expanduser() if dest is not None else default_extensions_dir()
    if dest is not None and not folder.is_dir():
        raise InstallError(
            f"The folder {folder} does not exist; give Inkscape's user extensions folder "
            "(Edit → Preferences → System → User extensions)."
        )
    inx = main_inx()
    target = folder / EXTENSION_FOLDER
    if target.exists() or target.is_symlink():
        if target.is_symlink() or not (target / MAIN_INX).is_file():
            raise InstallError(f"{target} already exists and is not the CLIPasso extension; move it away first.")
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".clipasso-", dir=folder))
    try:
        shutil.copy2(inx, staging / MAIN_INX)
        (staging / PACKAGE_FOLDER).mkdir()
        for source in package_files():
            shutil.copy2(source, staging / PACKAGE_FOLDER / source.name)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target


def add_command(commands: "argparse._SubParsersAction") -> None:
    """Add ``clipasso install-extension`` (the ``clipasso.commands`` entry point of this package)."""
    parser = commands.add_parser("install-extension", help="copy the Inkscape extension into Inkscape's extensions folder")
    parser.add_argument("--dest", type=Path, help="extensions folder to install into (default: your Inkscape's user folder)")
    parser.add_argument("--server-url", help="the sketch server every dialog talks to (default: the one set before, "
                                             f"else {DEFAULT_URL})")
    parser.add_argument("--token", help="the server's token, for every dialog (an empty one removes it)")
    parser.set_defaults(run=run_command)


def check_server_url(url: str) -> str:
    """The URL without blanks and trailing slash; InstallError when it is not an http(s) address with a host."""
    text = url.strip().rstrip("/")
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018  (raises on a port that is not a number from 0 to 65535)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise InstallError(f"The server URL “{url[:200]}” is not a web address like {DEFAULT_URL}.")
    return text


def save_server(url: Optional[str], token: Optional[str]) -> Path:
    """Write the server URL every dialog uses (url, checked, else the one set before, else the default) and,
    when given, its token (an empty one removes it) into the extension's shared settings."""
    changes = {"server_url": url or load_settings().get("server_url") or DEFAULT_URL}
    if token is not None:
        changes["token"] = token.strip() or None
    return save_settings(**changes)


def run_command(args: argparse.Namespace) -> int:
    """``clipasso install-extension``: copy the extension, set its server, say where; one sentence on failure."""
    try:
        url = check_server_url(args.server_url) if args.server_url is not None else None
        where = install_extension(args.dest)
        settings = save_server(url, args.token)
        save_settings(server_command=server_command())
    except InstallError as error:
        return _fail(str(error))
    except OSError as error:
        return _fail(f"Cannot install the extension: {error.strerror or error}.")
    server = load_settings().get("server_url")
    print(f"Installed the CLIPasso extension into {where}; its dialogs use the sketch server at {server} "
          f"(set in {settings}) and start it when it is not running ({' '.join(server_command())}). Restart "
          "Inkscape, then use Extensions → CLIPasso → New sketch….")
    return 0


def server_command() -> List[str]:
    """The absolute command that starts this sketch server: the Python running this command, never a name on PATH."""
    return [sys.executable, "-m", "clipasso_server"]


def _fail(message: str) -> int:
    print(f"clipasso: error: {message}", file=sys.stderr)
    return 1
