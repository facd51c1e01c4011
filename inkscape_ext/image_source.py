"""Reading the raster file behind an SVG <image>: embedded data URI or linked file.

The bytes sent to the sketch server are the picture as Inkscape shows it. Inkscape 1.2 turns JPEG
and TIFF pictures by their EXIF orientation but not PNG ones, while the server turns every picture
by it; so a PNG's EXIF data is removed before sending.
"""

import base64
import binascii
import os
import struct
import urllib.parse
import urllib.request
from typing import Optional

import inkex

SODIPODI_ABSREF = "{http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd}absref"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"


def image_name(image: inkex.BaseElement) -> str:
    """The name a designer sees for an element: its label, else its id."""
    return image.get("inkscape:label") or image.get_id()


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FORMATS = "PNG, JPEG, WebP, GIF or TIFF"


def raster_format(data: bytes) -> Optional[str]:
    """Return "png", "jpeg", "webp", "gif" or "tiff" when the bytes are such a file, else None."""
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    return None


def without_png_exif(data: bytes) -> bytes:
    """A PNG file without its EXIF chunks (eXIf, and the "Raw profile type exif" text ones), else unchanged.

    Inkscape ignores a PNG's EXIF orientation, so the server must not see it either.
    """
    if not data.startswith(PNG_SIGNATURE):
        return data
    kept = [PNG_SIGNATURE]
    position = len(PNG_SIGNATURE)
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        end = position + 12 + length
        if end > len(data):  # damaged: leave the rest for the server to judge
            kept.append(data[position:])
            break
        body = data[position + 8:position + 8 + length]
        is_exif = kind == b"eXIf" or (
            kind in (b"tEXt", b"zTXt", b"iTXt") and body.split(b"\x00", 1)[0].lower().startswith(b"raw profile type")
        )
        if not is_exif:
            kept.append(data[position:end])
        position = end
        if kind == b"IEND":
            break
    return b"".join(kept)


def read_raster(image: inkex.BaseElement, input_file: Optional[str], document_path: Optional[str]) -> bytes:
    """Return the picture file bytes an <image> shows (as Inkscape shows it); AbortExtension if unusable.

    Relative links are looked up next to input_file (Inkscape rewrites them for the temporary copy
    it hands the extension), then next to the saved document_path ("" when never saved).
    """
    name = image_name(image)
    href = (image.get(XLINK_HREF) or image.get("href") or "").strip()
    if not href:
        raise inkex.AbortExtension(f"The image “{name}” has no picture: its link is empty.")
    if href.startswith("data:"):
        data = _decode_data_uri(href, name)
        origin = "The embedded picture of"
    else:
        path = _linked_path(image, href, input_file, document_path)
        try:
            with open(path, "rb") as stream:
                data = stream.read()
        except OSError as error:
            raise inkex.AbortExtension(
                f"The picture file {path} of “{name}” could not be read ({error.strerror})."
            ) from None
        origin = f"The file {path} linked from"
    if raster_format(data) is None:
        raise inkex.AbortExtension(
            f"{origin} “{name}” is not a {FORMATS} picture; "
            "the sketch server reads only those formats."
        )
    return without_png_exif(data)


def _decode_data_uri(href: str, name: str) -> bytes:
    header, comma, payload = href[len("data:"):].partition(",")
    if not comma:
        raise inkex.AbortExtension(f"The embedded picture of “{name}” is damaged (no data).")
    mime = header.split(";")[0].strip().lower()
    if (mime and not mime.startswith("image/")) or mime == "image/svg+xml":
        raise inkex.AbortExtension(
            f"The image “{name}” embeds {mime}, not a raster picture; "
            f"CLIPasso sketches {FORMATS} pictures."
        )
    if not header.lower().rstrip().endswith(";base64"):
        return urllib.parse.unquote_to_bytes(payload)
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raise inkex.AbortExtension(
            f"The embedded picture of “{name}” is damaged (its base64 data cannot be decoded); "
            "embed the image again."
        ) from None


def _linked_path(
    image: inkex.BaseElement, href: str, input_file: Optional[str], document_path: Optional[str]
) -> str:
    name = image_name(image)
    url = urllib.parse.urlparse(href)
    if url.scheme not in ("", "file") and len(url.scheme) > 1:  # one letter: a Windows drive
        raise inkex.AbortExtension(
            f"The image “{name}” links to {href}; download the picture and link or embed the file."
        )
    # A link is a URL (Inkscape writes "my%20photo.png"), except a bare Windows path like C:\photo.png.
    path = os.path.expanduser(href if len(url.scheme) == 1 else urllib.request.url2pathname(url.path))
    if os.path.isabs(path):
        candidates = [path]
    else:
        folders = [os.path.dirname(os.path.abspath(f)) for f in (input_file, document_path) if f]
        candidates = [os.path.join(folder, path) for folder in folders]
    absref = image.get(SODIPODI_ABSREF)
    for candidate in candidates + ([absref] if absref else []):
        if os.path.isfile(candidate):
            return candidate
    folders = [candidate for candidate in candidates if os.path.isdir(candidate)]
    if folders:
        raise inkex.AbortExtension(
            f"The image “{name}” links to the folder {folders[0]}, not a picture file; "
            "relink the image (Object Properties) or embed it."
        )
    if not os.path.isabs(path) and document_path == "":
        raise inkex.AbortExtension(
            f"The image “{name}” links to “{href}” relative to the document, which was never "
            "saved; save the document next to the picture (or embed the image) first."
        )
    where = f" ({candidates[-1]} does not exist)" if candidates else ""
    raise inkex.AbortExtension(
        f"The picture file “{href}” of “{name}” was not found{where}; "
        "relink the image (Object Properties) or embed it."
    )
