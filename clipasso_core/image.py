"""Loading input images and placing them on the optimizer's square canvas.

Images are read as a photo viewer shows them: PNG (every bit depth and mode, APNG's first frame),
JPEG (also CMYK, and the first picture of a phone's MPO), WebP, GIF and TIFF (first frame), EXIF
orientation applied, colour profiles converted to sRGB, 16-bit grey scaled rather than clipped.
A source image of W×H pixels is flattened onto white, padded (never stretched) to a centred square
of side max(W, H), and resized to the 224-px canvas. :class:`CanvasFrame` maps points between the
canvas and the source image's pixel coordinates (x right, y down).
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import ExifTags, Image, ImageCms, ImageOps, UnidentifiedImageError

from .errors import ImageError, ImageTooLargeError, UnsupportedImageError
from .params import CANVAS_SIZE

DEFAULT_MAX_PIXELS = 40_000_000
"""Largest accepted image, in pixels (protects against decompression bombs)."""

READABLE_FORMATS = frozenset({"PNG", "JPEG", "MPO", "WEBP", "GIF", "TIFF"})
"""Pillow format names read (MPO: the JPEG of phones and cameras with extra pictures; its first one is used)."""

FORMAT_NAMES = "PNG, JPEG, WebP, GIF or TIFF"
ORIENTATION_TAG = ExifTags.Base.Orientation
_SRGB = ImageCms.createProfile("sRGB")


@dataclass(frozen=True)
class CanvasFrame:
    """Where a source image sits on the square canvas: ``source = canvas · scale − offset``."""

    width: int
    height: int
    size: int = CANVAS_SIZE

    @property
    def side(self) -> int:
        """Side of the padded square, in source pixels."""
        return max(self.width, self.height)

    @property
    def offset(self) -> tuple[int, int]:
        """Top-left corner of the source image inside the padded square, in source pixels."""
        return (self.side - self.width) // 2, (self.side - self.height) // 2

    @property
    def scale(self) -> float:
        """Source pixels per canvas pixel."""
        return self.side / self.size

    def to_source(self, points: torch.Tensor) -> torch.Tensor:
        """Map canvas points ``[..., 2]`` to source-image pixel coordinates ``[..., 2]``."""
        offset = torch.tensor(self.offset, dtype=points.dtype, device=points.device)
        return points * self.scale - offset

    def to_canvas(self, points: torch.Tensor) -> torch.Tensor:
        """Map source-image points ``[..., 2]`` to canvas coordinates ``[..., 2]``."""
        offset = torch.tensor(self.offset, dtype=points.dtype, device=points.device)
        return (points + offset) / self.scale

    def picture_box(self) -> tuple[float, float, float, float]:
        """The picture's rectangle on the canvas, ``(left, top, right, bottom)`` in canvas pixels."""
        left, top = self.offset
        return (left / self.scale, top / self.scale, (left + self.width) / self.scale, (top + self.height) / self.scale)

    def picture_pixels(self) -> torch.Tensor | None:
        """The canvas pixels ``[size, size]`` (bool) whose centres lie on the picture, or ``None`` for a square one."""
        if self.width == self.height:
            return None
        left, top, right, bottom = self.picture_box()
        centres = torch.arange(self.size, dtype=torch.float64) + 0.5
        columns = (centres >= left) & (centres <= right)
        rows = (centres >= top) & (centres <= bottom)
        return rows[:, None] & columns[None, :]


def read_image(source: bytes | str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode an image file (path or bytes) into the RGB picture a photo viewer shows.

    The first frame of a multi-frame file is used, the EXIF orientation is applied (so width and
    height are those of the picture as shown), deep and odd modes are scaled to 8 bits, an embedded
    colour profile is converted to sRGB, and transparent pixels are flattened onto white.
    """
    name = f"'{source}'" if isinstance(source, (str, Path)) else "the uploaded image"
    data = _file_bytes(Path(source), name) if isinstance(source, (str, Path)) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image_format = image.format
            width, height = image.size
            if image_format not in READABLE_FORMATS:
                raise UnsupportedImageError(f"{name.capitalize()} is a {image_format} file; use {FORMAT_NAMES}.")
            if width * height > max_pixels:
                raise ImageTooLargeError(
                    f"{name.capitalize()} is {width}×{height} pixels, more than the limit of "
                    f"{max_pixels / 1e6:.0f} megapixels; scale it down first."
                )
            image.load()  # the first frame only
            picture = flatten_on_white(eight_bit(upright(image)))
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLargeError(
            f"{name.capitalize()} has more pixels than the limit of {max_pixels / 1e6:.0f} megapixels."
        ) from None
    except UnidentifiedImageError:
        raise UnsupportedImageError(f"{name.capitalize()} is not a {FORMAT_NAMES} image.") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageError(f"{name.capitalize()} is damaged or truncated ({error}).") from None
    if width < 1 or height < 1:
        raise ImageError(f"{name.capitalize()} has no pixels.")
    return to_srgb(picture, image.info.get("icc_profile"))


def _file_bytes(path: Path, name: str) -> bytes:
    if path.is_dir():
        raise ImageError(f"Cannot read {name}: it is a folder, not an image file.")
    if not path.is_file():
        raise ImageError(f"Cannot read {name}: no such file.")
    try:
        return path.read_bytes()
    except OSError as error:
        raise ImageError(f"Cannot read {name}: {error.strerror or error}.") from None


def upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation tag says (unchanged without one, or when the tag is damaged)."""
    try:
        return ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, struct.error):
        return image


def eight_bit(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit grey scaled to 8-bit 'L' (65535 → 255, float 1.0 → 255); other modes unchanged."""
    if image.mode.startswith("I"):
        grey = np.asarray(image, dtype=np.float64) / 257.0
    elif image.mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64))
        grey = values * 255.0 if values.max(initial=0.0) <= 1.0 else values
    else:
        return image
    return Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8), mode="L")


def to_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """An RGB image in sRGB: converted from its embedded colour profile when it has a usable one."""
    if icc_profile and image.mode in ("RGB", "CMYK"):
        try:
            profile = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
            converted = ImageCms.profileToProfile(image, profile, _SRGB, outputMode="RGB")
            if converted is not None:
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass  # a damaged or mismatched profile: show the numbers as they are, like most viewers
    return image.convert("RGB")


def flatten_on_white(image: Image.Image) -> Image.Image:
    """Composite any transparency onto white; RGB and CMYK images pass through, other modes become RGB."""
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image if image.mode in ("RGB", "CMYK") else image.convert("RGB")


def embeddable(data: bytes, picture: Image.Image) -> tuple[bytes, str]:
    """The bytes and MIME type to embed in an SVG for ``picture`` (as read from ``data``).

    The file itself when it is a PNG or JPEG that every viewer shows the same way (no EXIF turn, one
    frame, same size), else a PNG of the picture as shown.
    """
    try:
        with Image.open(io.BytesIO(data)) as original:
            mime = {"PNG": "image/png", "JPEG": "image/jpeg"}.get(original.format or "")
            same = (original.size == picture.size and getattr(original, "n_frames", 1) == 1
                    and original.getexif().get(ORIENTATION_TAG, 1) == 1)
    except Exception:  # noqa: BLE001 - anything odd about the file: embed what was read instead
        mime, same = None, False
    if mime and same:
        return data, mime
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue(), "image/png"


def to_canvas(image: Image.Image, size: int = CANVAS_SIZE) -> tuple[torch.Tensor, CanvasFrame]:
    """Pad an RGB image to a white square and resize it: ``[3, size, size]`` in [0, 1], plus its frame."""
    frame = CanvasFrame(image.width, image.height, size)
    square = Image.new("RGB", (frame.side, frame.side), (255, 255, 255))
    square.paste(image, frame.offset)
    resized = square.resize((size, size), Image.Resampling.BICUBIC)
    pixels = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0)
    return pixels.permute(2, 0, 1).contiguous(), frame
