"""No traceback on any drawing: whatever goes wrong in an extension, Inkscape shows one sentence.

Inkscape shows a Python traceback (a modal dialog full of code) for any exception an extension does not turn
into ``inkex.AbortExtension``. The checks of the extension name every problem they know in words; this mixin
catches the rest (a number beyond what floats hold, nesting deeper than Python's stack, an unreadable file),
says in one sentence what kind of problem the drawing has, and exits as an abort does, so nothing is written
and Inkscape keeps the document as it was.
"""

import sys

import inkex

ABORT_STATUS = -5
"""inkex's exit status of an aborted run (inkex.utils.ABORT_STATUS in every version)."""


def plain_words(error: BaseException) -> str:
    """One sentence for an unexpected failure, naming what kind of problem the drawing has."""
    detail = str(error).strip().rstrip(".")
    detail = detail if len(detail) <= 160 else detail[:159] + "…"
    if isinstance(error, RecursionError):
        what = "its groups nest too deeply; ungroup (Ctrl+Shift+G) the groups inside groups"
    elif isinstance(error, (ArithmeticError, ValueError)):
        what = f"a number in it (a transform, a size, an arc) is out of range ({detail})"
    else:
        what = f"{type(error).__name__}: {detail}"
    return f"CLIPasso cannot work with this drawing: {what}. The document is unchanged."


class OneSentence:
    """Mixin for an ``inkex.EffectExtension`` (list it first): an unexpected exception becomes one sentence."""

    def run(self, *args, **kwargs):
        """inkex's run, with any exception other than an abort reported as one sentence and an abort's status."""
        try:
            return super().run(*args, **kwargs)
        except Exception as error:  # the last line of defence: every other path is checked in words
            inkex.errormsg(plain_words(error))
            sys.exit(ABORT_STATUS)
