"""Copying the extension into Inkscape's user extensions directory (standard library only)."""

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Optional

EXTENSION_FOLDER = "clipasso"
NOT_INSTALLED = ("install.py", "__init__.py", "__pycache__")


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


def install_extension(dest: Optional[Path] = None) -> Path:
    """Copy the extension into <dest or default_extensions_dir()>/clipasso/, replacing an older copy.

    An explicit ``dest`` must be an existing folder; a ``clipasso`` entry there that is not an earlier
    copy of this extension is never touched.
    """
    folder = Path(dest).expanduser() if dest is not None else default_extensions_dir()
    if dest is not None and not folder.is_dir():
        raise InstallError(
            f"The folder {folder} does not exist; give Inkscape's user extensions folder "
            "(Edit → Preferences → System → User extensions)."
        )
    target = folder / EXTENSION_FOLDER
    if target.exists() or target.is_symlink():
        if target.is_symlink() or not (target / "clipasso.inx").is_file():
            raise InstallError(f"{target} already exists and is not the CLIPasso extension; move it away first.")
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".clipasso-", dir=folder))
    try:
        for source in sorted(Path(__file__).resolve().parent.iterdir()):
            if source.is_file() and source.name not in NOT_INSTALLED and source.suffix != ".pyc":
                shutil.copy2(source, staging / source.name)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target
