"""Writing files so that a crash or a full disk never leaves half a file where a whole one was expected.

The new file gets the permissions a plain ``open(path, "w")`` would give it: an existing file keeps its
mode, a new one follows the umask; a path that is a symbolic link is written through to its target.
An output that exists and is not a regular file (a FIFO, a character device such as ``/dev/null``, or a
link to one) is written in place, as ``cat > X`` would, and never renamed over.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def current_umask() -> int:
    """The process's umask (read from /proc where possible, so other threads never see it changed)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomically(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` via a synced temporary file beside it and a rename; readers see old or new, never half.

    ``mode`` fixes the permissions (the server's private store); by default they are those ``open()`` gives.
    """
    target = Path(os.path.realpath(path))  # through symbolic links, so the link stays a link
    if mode is None:
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except FileNotFoundError:
            mode = 0o666 & ~current_umask()
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=False) as handle:
        try:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        except BaseException:
            os.unlink(handle.name)
            raise
    os.replace(handle.name, target)


def write_output_file(path: Path, data: bytes) -> None:
    """Write an output the way a user expects: a regular (or new) file atomically, a special file in place."""
    target = Path(os.path.realpath(path))
    try:
        special = not stat.S_ISREG(os.stat(target).st_mode)
    except FileNotFoundError:
        special = False
    if not special:
        write_atomically(path, data)
        return
    with open(target, "wb") as stream:  # a FIFO or a device takes the bytes; nothing is replaced
        stream.write(data)
