"""``clipasso doctor``: one line per link of the chain a sketch needs, each ✓ or ✗ with its fix.

This package checks Python and torch. Installed packages add their own checks through the
``clipasso.doctor`` entry point group: a function that returns a list of plain dicts ``{"ok": bool,
"text": str, "fix": str, "needed": bool}`` (plain, so that the Inkscape extension's checks need nothing of
ours); the sketch server checks its settings, device, models and login service, the extension checks its
copy in Inkscape, the server it talks to and Inkscape itself. The exit status is 0 only when every check
a sketch needs passes (``needed``); the others only advise.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points

DOCTOR_GROUP = "clipasso.doctor"
"""Entry point group of functions returning check dicts."""
ORDER = ("server", "extension")
"""The order in which known packages' checks are shown: the chain from the models to Inkscape."""


@dataclass(frozen=True)
class Check:
    """One link of the chain: whether it holds, what was found, and how to fix it when it does not."""

    ok: bool
    text: str
    fix: str = ""
    needed: bool = True

    def line(self, good: str = "✓", bad: str = "✗") -> str:
        """The line ``clipasso doctor`` prints for this check."""
        if self.ok:
            return f"{good} {self.text}"
        return f"{bad} {self.text}" + (f" — {self.fix}" if self.fix else "")


def core_checks() -> list[Check]:
    """Python, and torch with the kind of build it is (CUDA or CPU only)."""
    checks = [Check(True, f"Python {platform.python_version()} ({sys.executable})")]
    try:
        import torch
    except Exception as error:  # a broken install: say so, with the reason
        return [*checks, Check(False, f"torch cannot be imported ({type(error).__name__}: {error})",
                               "reinstall it in this environment: pip install --force-reinstall torch")]
    if torch.version.cuda:
        checks.append(Check(True, f"torch {torch.__version__}, built for CUDA {torch.version.cuda}"))
    elif shutil.which("nvidia-smi"):
        checks.append(Check(False, f"torch {torch.__version__} is the CPU-only build, but this computer has an NVIDIA "
                                   "GPU", "install torch's CUDA build (pytorch.org → Get started) to sketch in seconds "
                                          "instead of minutes", needed=False))
    else:
        checks.append(Check(True, f"torch {torch.__version__}, CPU-only build (no NVIDIA GPU here)"))
    return checks


def plugin_checks() -> list[Check]:
    """The checks that installed packages add, known packages first; a package whose checks fail is a ✗ line."""
    found = sorted(entry_points(group=DOCTOR_GROUP),
                   key=lambda entry: (ORDER.index(entry.name) if entry.name in ORDER else len(ORDER), entry.name))
    checks = []
    for entry in found:
        try:
            checks += [Check(bool(item["ok"]), str(item["text"]), str(item.get("fix") or ""),
                             bool(item.get("needed", True))) for item in entry.load()()]
        except Exception as error:  # a broken plugin must not hide the other checks
            checks.append(Check(False, f"the {entry.name} checks failed ({type(error).__name__}: {error})",
                                "reinstall clipasso-inkscape in this environment"))
    return checks


def add_command(commands: argparse._SubParsersAction) -> None:
    """Add ``clipasso doctor`` (a ``clipasso.commands`` entry point)."""
    parser = commands.add_parser(
        "doctor", help="check everything a sketch from Inkscape needs, and say how to fix what is missing",
        description="Check Python and torch, the device and precision a job would use, the CLIP models, the sketch "
                    "server and its login service, the Inkscape extension and Inkscape. Exit status 0 only when a "
                    "sketch would work.")
    parser.set_defaults(run=run_command)


def run_command(args: argparse.Namespace) -> int:
    """``clipasso doctor``: print every check; 0 when all that a sketch needs pass, else 1."""
    checks = core_checks() + plugin_checks()
    good, bad = ("✓", "✗") if _can_print("✓✗—") else ("ok", "XX")
    for check in checks:
        print(check.line(good, bad) if _can_print(check.line()) else check.line(good, bad).encode(
            sys.stdout.encoding or "ascii", "replace").decode(sys.stdout.encoding or "ascii"))
    broken = [check for check in checks if check.needed and not check.ok]
    if broken:
        print(f"A sketch would not work yet: fix the {len(broken)} needed ✗ line(s) above, then run clipasso doctor "
              "again." if good == "✓" else f"A sketch would not work yet: fix the {len(broken)} needed XX line(s).")
        return 1
    print("A sketch would work: in Inkscape, select an image and use Extensions → CLIPasso → New sketch…."
          if _can_print("→…") else "A sketch would work: in Inkscape, use Extensions > CLIPasso > New sketch.")
    return 0


def _can_print(text: str) -> bool:
    """Whether standard output can encode ``text`` (a Windows console may not)."""
    try:
        text.encode(sys.stdout.encoding or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return False
    return True
