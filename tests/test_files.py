"""The atomic writer behind every output file: whole files only, with the permissions ``open()`` would give."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from clipasso_core.files import write_atomically, write_output_file


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    """Set the umask for one test and restore it after."""
    previous = os.umask(0o022)
    os.umask(previous)

    def set_umask(mask: int) -> None:
        os.umask(mask)

    yield set_umask
    os.umask(previous)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_a_new_file_follows_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    write_atomically(tmp_path / "out.svg", b"<svg/>")
    assert (tmp_path / "out.svg").read_bytes() == b"<svg/>"
    assert mode_of(tmp_path / "out.svg") == expected


def test_an_existing_file_keeps_its_mode(tmp_path, umask):
    umask(0o077)
    out = tmp_path / "shared.svg"
    out.write_bytes(b"old")
    out.chmod(0o664)
    write_atomically(out, b"new")
    assert out.read_bytes() == b"new" and mode_of(out) == 0o664


def test_a_symbolic_link_is_written_through(tmp_path):
    real = tmp_path / "real" / "sketch.svg"
    real.parent.mkdir()
    real.write_bytes(b"old")
    real.chmod(0o640)
    link = tmp_path / "link.svg"
    link.symlink_to(real)
    write_atomically(link, b"new")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_bytes() == b"new" and mode_of(real) == 0o640
    assert sorted(p.name for p in real.parent.iterdir()) == ["sketch.svg"]  # no temporary file left


def test_a_fixed_mode_wins(tmp_path, umask):
    umask(0o022)
    write_atomically(tmp_path / "private.image", b"x", mode=0o600)
    assert mode_of(tmp_path / "private.image") == 0o600


def _read_fifo(path, into: list) -> threading.Thread:
    """Read everything written to the FIFO at ``path`` in a thread (as ``cat path`` would)."""
    def read() -> None:
        with open(path, "rb") as stream:
            into.append(stream.read())
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return reader


@pytest.mark.parametrize("through_link", [False, True])
def test_a_fifo_gets_the_bytes_and_stays_a_fifo(tmp_path, through_link):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    output = fifo
    if through_link:
        output = tmp_path / "link.svg"
        output.symlink_to(fifo)
    received: list = []
    reader = _read_fifo(fifo, received)
    write_output_file(output, b"<svg/>")
    reader.join(10)
    assert received == [b"<svg/>"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert not through_link or output.is_symlink()
    assert [entry.name for entry in tmp_path.iterdir() if entry.name.startswith(".")] == []


def test_a_regular_output_is_still_replaced_whole(tmp_path):
    target = tmp_path / "out.svg"
    target.write_bytes(b"old")
    write_output_file(target, b"new")
    assert target.read_bytes() == b"new"
