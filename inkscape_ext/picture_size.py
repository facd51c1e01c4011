"""The size in pixels of a picture file as the sketch server sees it, read from its header (standard library only).

The server turns a picture by its EXIF orientation, so a JPEG, WebP or TIFF whose tag says it is turned
a quarter (orientations 5 to 8) has its width and height swapped. PNG files reach the server without
their EXIF data (image_source.without_png_exif), so theirs is not read. A GIF's size is its logical
screen's, as the server reads its first frame.
"""

import struct
from typing import Optional, Tuple

from image_source import PNG_SIGNATURE

_JPEG_FRAMES = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_ORIENTATION_TAG = 0x0112
_WIDTH_TAG, _HEIGHT_TAG = 0x0100, 0x0101


def picture_size(data: bytes) -> Optional[Tuple[int, int]]:
    """(width, height) of a PNG, JPEG, WebP, GIF or TIFF file as the server turns it, or None when unreadable."""
    try:
        if data.startswith(PNG_SIGNATURE):
            return struct.unpack(">II", data[16:24])
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", data[6:10])
        if data.startswith(b"\xff\xd8"):
            size, orientation = _jpeg(data)
        elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            size, orientation = _webp(data)
        elif data[:4] in (b"II*\x00", b"MM\x00*"):
            tags = _tiff_tags(data, (_WIDTH_TAG, _HEIGHT_TAG, _ORIENTATION_TAG))
            size, orientation = (tags[_WIDTH_TAG], tags[_HEIGHT_TAG]), tags.get(_ORIENTATION_TAG, 1)
        else:
            return None
    except (struct.error, KeyError, IndexError, ValueError):
        return None
    if size is None or min(size) <= 0:
        return None
    return (size[1], size[0]) if orientation in (5, 6, 7, 8) else (size[0], size[1])


def _jpeg(data: bytes) -> Tuple[Optional[Tuple[int, int]], int]:
    """The frame size and EXIF orientation of a JPEG: walks the markers up to the first frame header."""
    position, orientation = 2, 1
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            raise ValueError("not a marker")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        length = struct.unpack(">H", data[position + 2:position + 4])[0]
        body = data[position + 4:position + 2 + length]
        if marker == 0xE1 and body.startswith(b"Exif\x00\x00"):
            orientation = _tiff_tags(body[6:], (_ORIENTATION_TAG,)).get(_ORIENTATION_TAG, orientation)
        if marker in _JPEG_FRAMES:
            height, width = struct.unpack(">HH", body[1:5])
            return (width, height), orientation
        position += 2 + length
    return None, orientation


def _webp(data: bytes) -> Tuple[Optional[Tuple[int, int]], int]:
    """The canvas size and EXIF orientation of a WebP file (lossy, lossless or extended)."""
    size, orientation, position = None, 1, 12
    while position + 8 <= len(data):
        kind, length = data[position:position + 4], struct.unpack("<I", data[position + 4:position + 8])[0]
        body = data[position + 8:position + 8 + length]
        if kind == b"VP8X" and size is None:
            width = int.from_bytes(body[4:7], "little") + 1
            height = int.from_bytes(body[7:10], "little") + 1
            size = (width, height)
        elif kind == b"VP8 " and size is None:
            width, height = struct.unpack("<HH", body[6:10])
            size = (width & 0x3FFF, height & 0x3FFF)
        elif kind == b"VP8L" and size is None:
            bits = int.from_bytes(body[1:5], "little")
            size = ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
        elif kind == b"EXIF":
            exif = body[6:] if body.startswith(b"Exif\x00\x00") else body
            orientation = _tiff_tags(exif, (_ORIENTATION_TAG,)).get(_ORIENTATION_TAG, 1)
        position += 8 + length + (length & 1)
    return size, orientation


def _tiff_tags(data: bytes, wanted: Tuple[int, ...]) -> dict:
    """The wanted whole-number tags of the first IFD of TIFF-structured data (a TIFF file or an EXIF block)."""
    order = {b"II": "<", b"MM": ">"}[data[:2]]
    offset = struct.unpack(order + "I", data[4:8])[0]
    count = struct.unpack(order + "H", data[offset:offset + 2])[0]
    tags = {}
    for entry in range(count):
        start = offset + 2 + 12 * entry
        tag, kind = struct.unpack(order + "HH", data[start:start + 4])
        if tag in wanted and kind in (3, 4):  # SHORT or LONG, stored in the entry itself
            tags[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), data[start + 8:start + (10 if kind == 3 else 12)])[0]
    return tags
