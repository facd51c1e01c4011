"""The Inkscape extension run as Inkscape runs it, on documents written for the test, and the layers it inserts.

``run_extension(script, document, *args)`` runs a script of ``inkscape_ext/`` the way Inkscape does (cwd = the
script's folder, ``DOCUMENT_PATH`` = the saved file, the document handed over as a temporary copy whose relative
links Inkscape has rebased), with this test's Python and PyPI inkex or, where it works, the system python3 with
the inkex that ships with Inkscape (``INTERPRETERS``); ``run_inkscape`` drives the real Inkscape headless, with a
browser stand-in (``desktop_browser``; the ``browsers_ended`` fixture ends what it started).
"""

import base64
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import inkex
import pytest
from lxml import etree

ROOT = Path(__file__).resolve().parents[2]
EXT_DIR = ROOT / "inkscape_ext"
DATA = ROOT / "tests" / "data" / "extension"
PHOTO = DATA / "photo.png"  # 40 × 30 pixels
CLIPASSO_NS = "https://clipasso.org/ns/inkscape-extension"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
BUNDLED_INKEX = Path("/usr/share/inkscape/extensions")  # where Debian's Inkscape keeps its inkex


def levels(*counts: int) -> Tuple[str, ...]:
    """Dialog options that sketch exactly these stroke counts: the four ticks, and the others on the Advanced tab."""
    ticks = (4, 8, 16, 32)
    others = ",".join(str(count) for count in counts if count not in ticks)
    return (*(f"--level_{tick}={str(tick in counts).lower()}" for tick in ticks), f"--other_strokes={others}")


# Dialog options for a quick job with the tiny models (a second or two on a CPU): Quality Custom.
QUICK = ("--quality=custom", "--seeds=1", "--iterations=5", *levels(4, 8))
QUICK_PARAMS = {"strokes": [4, 8], "iterations": 5, "seeds": 1, "seed": 0}


def _bundled_inkex_works() -> bool:
    """Whether the system python3 can import the inkex that ships with the installed Inkscape."""
    if not (BUNDLED_INKEX / "inkex").is_dir() or not Path("/usr/bin/python3").is_file():
        return False
    env = {**os.environ, "PYTHONPATH": str(BUNDLED_INKEX)}
    return subprocess.run(["/usr/bin/python3", "-c", "import inkex"], env=env, capture_output=True).returncode == 0


# How the scripts are run: this test's Python with PyPI inkex, and the system python3 with the
# inkex that ships with Inkscape (1.2 on Debian 12), as Inkscape itself runs them.
INTERPRETERS = {"inkex-pypi": (sys.executable, [EXT_DIR])}
if _bundled_inkex_works():
    INTERPRETERS["inkex-bundled"] = ("/usr/bin/python3", [EXT_DIR, BUNDLED_INKEX])


def clip(name: str) -> str:
    """Qualified clipasso:<name> attribute."""
    return f"{{{CLIPASSO_NS}}}{name}"


@dataclass


class Run:
    """One extension run: exit code, output streams, and the output document when one was written."""

    returncode: int
    stdout: bytes
    stderr: str

    @property
    def svg(self) -> inkex.SvgDocumentElement:
        return inkex.load_svg(self.stdout).getroot()


def run_extension(
    script: str,
    document: Path,
    *args: str,
    document_path: Optional[str] = None,
    rebase_links: bool = True,
    interpreter: str = "inkex-pypi",
) -> Run:
    """Run a script like Inkscape does: cwd = script dir, DOCUMENT_PATH = the saved file, and the
    document handed over as a temporary copy elsewhere whose relative links Inkscape has rebased."""
    python, paths = INTERPRETERS[interpreter]
    temp_dir = document.parent / "inkscape-temp"
    temp_dir.mkdir(exist_ok=True)
    copy = temp_dir / "ink_ext_XXXXXX.svg"
    copy.write_bytes(rebased(document, temp_dir) if rebase_links else document.read_bytes())
    handed_over = copy.read_bytes()
    env = {key: value for key, value in os.environ.items() if key not in ("DOCUMENT_PATH", "PYTHONPATH")}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths)
    env["DOCUMENT_PATH"] = str(document) if document_path is None else document_path
    env["XDG_CONFIG_HOME"] = str(document.parent / "xdg-config")  # the dialogs' shared settings, this test's own
    env["BROWSER"] = browser_recorder(temp_dir, document.parent / BROWSER_LOG)
    proc = subprocess.run(
        [python, str(EXT_DIR / script), *args, str(copy)],
        cwd=EXT_DIR,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert copy.read_bytes() == handed_over, "the extension must never write its input file"
    return Run(proc.returncode, proc.stdout, proc.stderr.decode("utf-8"))


BROWSER_LOG = "browser-opened.txt"


def browser_recorder(folder: Path, log: Path) -> str:
    """A stand-in web browser for $BROWSER: it appends each URL it is asked to open to log."""
    script = folder / "record-browser"
    script.write_text(f'#!/bin/sh\necho "$1" >>"{log}"\n')
    script.chmod(0o755)
    return str(script)


def opened_urls(document: Path, expected: int = 0, including: str = "") -> List[str]:
    """The URLs the extension runs on document (run_extension; or Inkscape runs in the folder document) opened in
    the web browser; waits up to 20 s for ``expected`` of them, or for the URL ``including``: the browser starts
    in the background."""
    log = (document if document.is_dir() else document.parent) / BROWSER_LOG
    deadline = time.monotonic() + 20
    while True:
        urls = log.read_text().split() if log.exists() else []
        if (len(urls) >= expected and (not including or including in urls)) or time.monotonic() > deadline:
            return urls
        time.sleep(0.1)


def rebased(document: Path, folder: Path) -> bytes:
    """The document with relative image links rewritten relative to folder, as Inkscape saves its temp copy."""
    tree = etree.parse(str(document))
    for image in tree.iter("{http://www.w3.org/2000/svg}image"):
        href = image.get(XLINK_HREF, "")
        if href and ":" not in href and not os.path.isabs(href):
            image.set(XLINK_HREF, os.path.relpath(document.parent / href, folder))
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")


def assert_aborted(run: Run, *fragments: str) -> None:
    """The run failed with a message containing every fragment and wrote no document."""
    assert run.returncode != 0
    assert run.stdout == b"", "an aborted run must print no document, so Inkscape keeps its own"
    assert "Traceback" not in run.stderr
    assert not re.search(r"[.!?]\.(\s|$)", run.stderr), f"a doubled full stop: {run.stderr}"
    for fragment in fragments:
        assert fragment in run.stderr


def assert_silent_success(run: Run) -> None:
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    assert run.stdout


def png_data_uri(data: bytes = PHOTO.read_bytes()) -> str:
    """A data URI as Inkscape embeds it: base64 broken into 76-character lines."""
    return "data:image/png;base64," + base64.encodebytes(data).decode("ascii")


def svg_document(body: str) -> str:
    """An A4-landscape-mm Inkscape document: a background layer, the body, an empty top layer."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
     xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape"
     xmlns:sodipodi="http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd"
     width="297mm" height="210mm" viewBox="0 0 297 210" id="svg1">
  <sodipodi:namedview id="namedview1" inkscape:current-layer="layer1" inkscape:document-units="mm"/>
  <g id="layer0" inkscape:groupmode="layer" inkscape:label="Background">
    <rect id="rect1" x="0" y="0" width="297" height="210" style="fill:#eeeeee"/>
  </g>
  {body}
  <g id="layer9" inkscape:groupmode="layer" inkscape:label="Top"/>
</svg>
"""


def write_document(directory: Path, body: str, name: str = "drawing.svg") -> Path:
    path = directory / name
    path.write_text(svg_document(body), encoding="utf-8")
    return path


def sketch_layers(svg: inkex.SvgDocumentElement) -> Dict[str, inkex.BaseElement]:
    """The inserted parent layers, keyed by the id of the image they sketch."""
    layers = svg.xpath("//*[@clipasso:source]", namespaces={"clipasso": CLIPASSO_NS})
    return {layer.get(clip("source")): layer for layer in layers}


def sublayers(layer: inkex.BaseElement) -> List[inkex.BaseElement]:
    return [child for child in layer if child.get("inkscape:groupmode") == "layer"]


def assert_near(actual, expected, tolerance: float = 1e-3) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert abs(a - e) <= tolerance, f"{actual} != {expected}"


INKSCAPE = shutil.which("inkscape")
XVFB_RUN = shutil.which("xvfb-run")
needs_inkscape = pytest.mark.skipif(not (INKSCAPE and XVFB_RUN), reason="needs the inkscape and xvfb-run programs")


def first_display() -> int:
    """Where ``xvfb-run -a`` starts looking for a free X display: a range of its own per pytest-xdist worker, so
    that two workers starting Inkscape at once do not pick the same one."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return 99 + 100 * int(worker.removeprefix("gw") or 0)


def run_inkscape(tmp_path: Path, document: Path, actions: str, prefs: Dict[str, str],
                 from_checkout: bool = False) -> inkex.SvgDocumentElement:
    """Run Inkscape headless on the document with the installed extension; return the exported SVG.

    With ``from_checkout`` the profile's extensions folder holds a link to this repository instead
    of an installed copy, as a developer sets it up.

    A failing extension (or a missing linked image) makes Inkscape open a modal dialog and wait
    forever, hence the timeout; the extension's stderr goes to a file (through a wrapper
    interpreter) for the failure report.
    """
    proc, out, profile, stderr_log = _inkscape(tmp_path, document, actions, prefs, from_checkout, wait_s=90)
    if proc.returncode != 0 or not out.exists():
        logs = [profile / "extension-errors.log", stderr_log]
        details = "\n".join(f"--- {log.name}:\n{log.read_text() if log.exists() else '(none)'}" for log in logs)
        pytest.fail(f"inkscape exited {proc.returncode}\n{proc.stderr.decode()[-2000:]}\n{details}")
    assert not stderr_log.exists() or stderr_log.read_text() == "", "stderr would open a dialog in Inkscape"
    return inkex.load_svg(str(out)).getroot()


def run_inkscape_aborted(tmp_path: Path, document: Path, actions: str, prefs: Dict[str, str],
                         wait_s: int = 60) -> Tuple[str, Optional[str]]:
    """Run Inkscape headless on a document the extension must refuse: (what the extension wrote to stderr, which
    Inkscape shows in a dialog; the document Inkscape exported afterwards, or None when it exported none).

    Should Inkscape wait on its dialog for a click, it is stopped after ``wait_s`` seconds.
    """
    _, out, _, stderr_log = _inkscape(tmp_path, document, actions, prefs, False, wait_s=wait_s)
    return (stderr_log.read_text() if stderr_log.exists() else "",
            out.read_text(encoding="utf-8") if out.exists() else None)


def _inkscape(tmp_path: Path, document: Path, actions: str, prefs: Dict[str, str], from_checkout: bool,
              wait_s: int) -> Tuple[subprocess.CompletedProcess, Path, Path, Path]:
    """Inkscape run headless for at most ``wait_s`` seconds with the extension installed in a fresh profile:
    (the finished process, the export's path, the profile, the extension's stderr log)."""
    from inkscape_ext.install import install_extension

    profile = tmp_path / "profile"
    (profile / "extensions").mkdir(parents=True)  # Inkscape creates it on its first start
    if from_checkout:
        (profile / "extensions" / "clipasso-checkout").symlink_to(ROOT, target_is_directory=True)
    else:
        install_extension(profile / "extensions")
    stderr_log = tmp_path / "extension-stderr.log"
    interpreter = tmp_path / "python3-stderr-to-log"
    interpreter.write_text(f'#!/bin/sh\nexec /usr/bin/python3 "$@" 2>>"{stderr_log}"\n')
    interpreter.chmod(0o755)
    attributes = " ".join(f'{key}="{value}"' for key, value in prefs.items())
    (profile / "preferences.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
        '<inkscape xmlns:sodipodi="http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd" version="1">\n'
        f'  <group id="extensions" python-interpreter="{interpreter}" {attributes} />\n'
        "</inkscape>\n"
    )
    out = tmp_path / "out.svg"
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "DOCUMENT_PATH")}
    env["INKSCAPE_PROFILE_DIR"] = str(profile)
    for name in ("BROWSER", "XDG_CURRENT_DESKTOP", "DESKTOP_SESSION", "KDE_FULL_SESSION", "GNOME_DESKTOP_SESSION_ID"):
        env.pop(name, None)
    env.update(desktop_browser(tmp_path, tmp_path / BROWSER_LOG))
    proc = subprocess.run(
        ["timeout", "-k", "5", str(wait_s), XVFB_RUN, "-a", "-n", str(first_display()), INKSCAPE, "--with-gui",
         "--batch-process", f"--actions={actions};export-filename:{out};export-do", str(document)],
        env=env, capture_output=True, timeout=wait_s + 30,
    )  # fmt: skip
    return proc, out, profile, stderr_log


BROWSER_PIDS = "browser-pids.txt"


def desktop_browser(folder: Path, log: Path) -> Dict[str, str]:
    """Environment changes that make a browser stand-in this desktop's browser, reached as desktops reach it: the
    web handler of the freedesktop settings (mimeapps.list) that ``xdg-open`` and ``gio`` read, and ``xdg-open``
    itself where the system has none (Inkscape puts its own bin folder first on PATH, so a system ``xdg-open``
    wins). No ``$BROWSER``, no desktop name. The stand-in appends the URL it is asked to open to log and its
    process id to browser-pids.txt beside log, and stays open for a minute, like a browser that keeps running
    after the extension has ended (the browsers_ended fixture ends it)."""
    bin_dir, config, applications = folder / "desktop-bin", folder / "xdg-config", folder / "xdg-data" / "applications"
    for directory in (bin_dir, config, applications):
        directory.mkdir(parents=True, exist_ok=True)
    browser = bin_dir / "xdg-open"
    browser.write_text(f'#!/bin/sh\necho "$1" >>"{log}"\necho $$ >>"{log.parent / BROWSER_PIDS}"\nexec sleep 60\n')
    browser.chmod(0o755)
    (applications / "test-browser.desktop").write_text(
        f"[Desktop Entry]\nType=Application\nName=Test browser\nExec={browser} %u\n"
        "MimeType=x-scheme-handler/http;x-scheme-handler/https;\n")
    (config / "mimeapps.list").write_text(
        "[Default Applications]\nx-scheme-handler/http=test-browser.desktop\nx-scheme-handler/https=test-browser.desktop\n")
    return {"PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]), "XDG_CONFIG_HOME": str(config),
            "XDG_DATA_HOME": str(folder / "xdg-data")}


def open_browsers(folder: Path) -> List[int]:
    """The process ids of the desktop_browser stand-ins started in folder (or below) that are still running."""
    running = []
    for pid in (int(line) for log in folder.rglob(BROWSER_PIDS) for line in log.read_text().split()):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        running.append(pid)
    return running


def linked_project(tmp_path: Path) -> Path:
    """The committed Inkscape document with its linked photo, copied into a project folder."""
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(PHOTO, folder / "photo.png")
    shutil.copy(DATA / "linked_in_layers.svg", folder / "drawing.svg")
    return folder / "drawing.svg"
