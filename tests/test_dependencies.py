"""Dependencies point one way (a scan of the imports).

inkscape_ext → HTTP → server → clipasso_core, never back; tests and bench → testkit, never to each other.
"""

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


def test_nothing_of_ours_imports_the_tests_the_benchmarks_or_their_kit():
    """The installed packages stand alone: ``tests/``, ``bench/`` and ``testkit/`` are not shipped."""
    for package in ("clipasso_core", "server", "inkscape_ext"):
        assert offenders(package, lambda name: top(name) in {"tests", "bench", "testkit"}) == {}, package


def test_the_benchmarks_use_testkit_not_the_tests():
    assert offenders("bench", lambda name: top(name) == "tests") == {}


def test_testkit_imports_neither_the_tests_the_benchmarks_nor_pytest():
    assert offenders("testkit", lambda name: top(name) in {"tests", "bench", "pytest"}) == {}


def test_no_test_module_imports_another():
    """Shared helpers live in tests/support/ (imported as ``tests.support.…``), shared fixtures in tests/conftest.py."""
    test_modules = {path.stem for path in sources("tests") if path.stem.startswith("test_")}

    def a_test_module(name: str) -> bool:
        parts = name.split(".")
        return parts[0] in test_modules or (parts[0] == "tests" and len(parts) > 1 and parts[1] in test_modules)

    assert offenders("tests", a_test_module) == {}


def test_fixtures_are_defined_in_conftest_or_test_modules_only():
    """A fixture in a helper module would have to be imported by name, which hides where it comes from."""
    helpers = [path for folder in ("tests", "testkit") for path in sources(folder)
               if not path.stem.startswith("test_") and path.name != "conftest.py"]
    with_fixtures = [str(path.relative_to(ROOT)) for path in helpers if "pytest.fixture" in path.read_text(encoding="utf-8")]
    assert with_fixtures == []
