"""Dependencies point one way (a scan of the imports).

inkscape_ext → HTTP → server → clipasso_core, never back; tests and bench → testkit, never to each other.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CORE_LAYERS = [
    # (what the layer holds, its modules), lowest first. A module of clipasso_core may import modules of its own
    # layer and of earlier layers, never of a later one. A new module goes into the earliest layer that comes
    # after (or is) the layer of every core module it imports.
    ("errors, files, precision", ["errors", "files", "precision"]),
    ("paths and SVG documents", ["svg_xml", "path_data", "level", "joined_paths", "svg", "svg_transform", "snapshot",
                                 "refine_svg", "tidy", "animation"]),
    ("the parameter object and its checks", ["params", "prompt"]),
    ("pictures and masks", ["image", "mask", "mask_svg"]),
    ("differentiable drawing", ["raster", "augment", "graphed_step"]),
    ("the CLIP networks and the loss", ["frozen", "weights", "models", "model_options", "saliency", "loss"]),
    ("optimisation and scoring", ["optimize", "score"]),
    ("one job end to end", ["sketch", "preview"]),
    ("the command line and its subcommands", ["cli", "download_command", "doctor"]),
]


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


def core_module(path: Path) -> str:
    """The module (or subpackage) of clipasso_core that ``path`` belongs to: ``clipasso_core/svg.py`` → ``svg``."""
    return path.relative_to(ROOT / "clipasso_core").with_suffix("").parts[0]


def core_imports(path: Path) -> set[str]:
    """The clipasso_core modules a file of clipasso_core imports, relative imports resolved.

    Importing the package itself (``from clipasso_core import x`` where x is no module) counts as ``__init__``.
    """
    known = {core_module(source) for source in sources("clipasso_core")}
    package = list(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names = [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "clipasso_core":
                found.add(parts[1] if len(parts) > 1 and parts[1] in known else "__init__")
    return found


def test_the_scan_sees_imports():
    """The scan finds what these files are known to import (so an empty result means something)."""
    assert "clipasso_core.model_options" in imports(ROOT / "server" / "cli.py")
    assert "inkex" in imports(ROOT / "inkscape_ext" / "clipasso_sketch.py")


def test_the_core_scan_resolves_relative_imports():
    assert {"raster", "graphed_step", "params"} <= core_imports(ROOT / "clipasso_core" / "optimize.py")


def test_every_core_module_is_in_one_layer():
    listed = [module for _, modules in CORE_LAYERS for module in modules]
    assert len(listed) == len(set(listed)), "a module is in two layers of CORE_LAYERS"
    present = {core_module(path) for path in sources("clipasso_core")} - {"__init__"}
    unlisted = [f"clipasso_core/{module} is in no layer: add it to CORE_LAYERS in tests/test_dependencies.py, in "
                f"the earliest layer that is not before the layer of any core module it imports"
                for module in sorted(present - set(listed))]
    gone = [f"CORE_LAYERS lists {module!r}, which is no module of clipasso_core: remove it"
            for module in sorted(set(listed) - present)]
    assert not unlisted + gone, "\n".join(unlisted + gone)


def test_no_core_module_imports_one_from_a_later_layer():
    """The layers of CORE_LAYERS, lowest first; the package's ``__init__`` counts as above them all."""
    layer = {module: number for number, (_, modules) in enumerate(CORE_LAYERS) for module in modules}
    layer["__init__"] = len(CORE_LAYERS)
    names = [name for name, _ in CORE_LAYERS] + ["the package's __init__"]
    wrong = []
    for path in sources("clipasso_core"):
        module = core_module(path)
        if module == "__init__" or module not in layer:
            continue  # the package's face may import anything; an unlisted module fails the test above
        for imported in sorted(core_imports(path)):
            if layer.get(imported, -1) > layer[module]:
                wrong.append(f"{path.relative_to(ROOT)} (layer {names[layer[module]]!r}) imports clipasso_core."
                             f"{imported} from the later layer {names[layer[imported]]!r}")
    assert not wrong, "\n".join(wrong)


def test_the_core_has_no_import_cycles():
    """Modules of one layer may import each other, but never round in a circle."""
    graph = {core_module(path): set() for path in sources("clipasso_core")}
    for path in sources("clipasso_core"):
        graph[core_module(path)] |= core_imports(path) - {core_module(path)}
    done: set[str] = set()

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            cycle = " → ".join(trail[trail.index(module):] + [module])
            pytest.fail(f"clipasso_core imports round in a circle: {cycle}")
        if module not in done:
            for imported in sorted(graph.get(module, ())):
                visit(imported, [*trail, module])
            done.add(module)

    for module in sorted(graph):
        visit(module, [])


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
    with_fixtures = [str(path.relative_to(ROOT)) for path in helpers
                     if "pytest.fixture" in path.read_text(encoding="utf-8")]
    assert with_fixtures == []
