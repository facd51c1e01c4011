"""Copying the extension into Inkscape's user extensions directory (standard library only)."""

import os
import shutil
import sys
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


def install_extension(dest: Optional[Path] = None) -> Path:
    """Copy the extension into <dest or default_extensions_dir()>/clipasso/, replacing an older copy."""
    target = Path(dest if dest is not None else default_extensions_dir()).expanduser() / EXTENSION_FOLDER
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for source in sorted(Path(__file__).resolve().parent.iterdir()):
        if source.is_file() and source.name not in NOT_INSTALLED and source.suffix != ".pyc":
            shutil.copy2(source, target / source.name)
    return target
