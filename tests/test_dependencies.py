"""Dependencies point one way: inkscape_ext → HTTP → server → clipasso_core, never back (a scan of the imports)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports by absolute name (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def sources(package: str) -> list[Path]:
    """The Python files of a folder of the repository."""
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, package
    return files


def offenders(package: str, forbidden) -> dict[str, list[str]]:
    """File → the imports of it that ``forbidden(name)`` rejects."""
    found = {}
    for path in sources(package):
        bad = sorted(name for name in imports(path) if forbidden(name))
        if bad:
            found[str(path.relative_to(ROOT))] = bad
    return found


def top(name: str) -> str:
    return name.split(".")[0]


def test_the_scan_sees_imports():
    """The scan finds what these files are known to import (so an empty result means something)."""
    assert "clipasso_core.model_options" in imports(ROOT / "server" / "cli.py")
    assert "inkex" in imports(ROOT / "inkscape_ext" / "clipasso_sketch.py")


def test_the_core_imports_neither_the_server_nor_the_extension():
    assert offenders("clipasso_core", lambda name: top(name) in {"inkscape_ext", "server", "clipasso_server"}) == {}


def test_the_server_imports_neither_the_extension_nor_the_core_cli():
    """Shared options live in clipasso_core.model_options, not in the ``clipasso`` command's module."""
    assert offenders("server", lambda name: top(name) == "inkscape_ext" or name.startswith("clipasso_core.cli")) == {}


@pytest.mark.skipif(not hasattr(sys, "stdlib_module_names"), reason="needs Python 3.10's list of standard modules")
def test_the_extension_uses_only_the_standard_library_and_inkex():
    """Inkscape runs the scripts with its own Python: nothing of ours, no torch, only inkex and the standard library.

    lxml counts as part of inkex: inkex's documents are lxml trees and Inkscape ships it with inkex.
    """
    siblings = {path.stem for path in sources("inkscape_ext")}
    allowed = set(sys.stdlib_module_names) | {"inkex", "lxml"} | siblings
    assert offenders("inkscape_ext", lambda name: top(name) not in allowed) == {}


def test_plugins_live_in_the_package_they_belong_to_and_the_core_reaches_them_by_name_only():
    """``clipasso``'s subcommands and ``clipasso doctor``'s checks from the server and the extension are entry
    points: each names a function of its own package, which the core never imports (see the scans above)."""
    import importlib

    tomllib = importlib.import_module("tomllib" if sys.version_info >= (3, 11) else "tomli")

    groups = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["entry-points"]
    assert groups["clipasso.doctor"] == {"server": "clipasso_server.doctor_checks:checks",
                                         "extension": "inkscape_ext.doctor_checks:checks"}
    assert groups["clipasso.commands"]["install-extension"].startswith("inkscape_ext.")
    for entries in groups.values():
        for target in entries.values():
            module, function = target.split(":")
            assert callable(getattr(importlib.import_module(module), function)), target
