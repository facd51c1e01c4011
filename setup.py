"""Build hook: the wheel carries the top-level clipasso.inx inside the inkscape_ext package.

Everything else is configured in pyproject.toml. In a checkout the file stays at the top level, where
Inkscape finds it when an extensions folder points at the repository; `clipasso install-extension`
looks for it in the package first, then beside it.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MAIN_INX = Path(__file__).resolve().parent / "clipasso.inx"


class BuildWithInx(build_py):
    """The standard build_py, plus clipasso.inx copied into the built inkscape_ext package."""

    def run(self) -> None:
        """Build the packages, then add the top-level .inx to inkscape_ext."""
        super().run()
        target = Path(self.build_lib) / "inkscape_ext" / MAIN_INX.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(MAIN_INX, target)


setup(cmdclass={"build_py": BuildWithInx})
