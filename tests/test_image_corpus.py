"""Pictures as people have them: every mode and format of a corpus made with Pillow reads as a viewer shows it.

Each picture is a 40×20 (wide) image whose left half is dark and right half light; a reader that
scales, turns or picks the wrong frame gets the size, the halves or the darkness wrong.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from clipasso_core.errors import ImageError
from clipasso_core.image import embeddable, read_image

WIDTH, HEIGHT = 40, 20
DARK, LIGHT = 40, 210


def halves(mode: str, dark: object, light: object) -> Image.Image:
    """A WIDTH×HEIGHT image of ``mode``: ``dark`` on the left half, ``light`` on the right."""
    image = Image.new(mode, (WIDTH, HEIGHT), light)  # type: ignore[arg-type]
    image.paste(dark, (0, 0, WIDTH // 2, HEIGHT))  # type: ignore[arg-type]
    return image


def grey16(dark: int, light: int) -> Image.Image:
    """A 16-bit grey ('I;16') image: ``dark`` on the left half, ``light`` on the right (0…65535)."""
    values = np.full((HEIGHT, WIDTH), light, dtype=np.uint16)
    values[:, : WIDTH // 2] = dark
    return Image.fromarray(values)


def save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def rgb(value: int) -> tuple[int, int, int]:
    return (value, value, value)


def other_frame() -> Image.Image:
    return halves("RGB", (255, 255, 255), (0, 0, 0))  # the opposite: a reader taking this frame fails


def _palette_with_transparency() -> bytes:
    image = halves("P", 1, 2)
    image.putpalette([0, 0, 0, DARK, DARK, DARK, LIGHT, LIGHT, LIGHT] + [0] * (256 * 3 - 9))
    image.paste(0, (0, 0, 4, 4))  # a transparent corner
    return save(image, "PNG", transparency=0)


CORPUS = {
    "PNG 1-bit": lambda: save(halves("1", 0, 1), "PNG"),
    "PNG grey": lambda: save(halves("L", DARK, LIGHT), "PNG"),
    "PNG grey + alpha": lambda: save(halves("LA", (DARK, 255), (LIGHT, 255)), "PNG"),
    "PNG grey with tRNS": lambda: save(halves("L", DARK, LIGHT), "PNG", transparency=7),
    "PNG 16-bit grey": lambda: save(grey16(DARK * 257, LIGHT * 257), "PNG"),
    "PNG palette": lambda: save(halves("RGB", rgb(DARK), rgb(LIGHT)).convert("P"), "PNG"),
    "PNG palette with tRNS": _palette_with_transparency,
    "PNG RGB": lambda: save(halves("RGB", rgb(DARK), rgb(LIGHT)), "PNG"),
    "PNG RGB with tRNS": lambda: save(halves("RGB", rgb(DARK), rgb(LIGHT)), "PNG", transparency=(1, 2, 3)),
    "PNG RGBA": lambda: save(halves("RGBA", (DARK,) * 3 + (255,), (LIGHT,) * 3 + (255,)), "PNG"),
    "APNG first frame": lambda: save(halves("RGB", rgb(DARK), rgb(LIGHT)), "PNG", save_all=True,
                                     append_images=[other_frame()]),
    "JPEG grey": lambda: save(halves("L", DARK, LIGHT), "JPEG", quality=95),
    "JPEG RGB": lambda: save(halves("RGB", rgb(DARK), rgb(LIGHT)), "JPEG", quality=95),
    "JPEG CMYK": lambda: save(halves("CMYK", (0, 0, 0, 255 - DARK), (0, 0, 0, 255 - LIGHT)), "JPEG", quality=95),
    "JPEG with sRGB profile": lambda: save(halves("RGB", rgb(DARK), rgb(LIGHT)), "JPEG", quality=95,
                                           icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()),
    "JPEG with a damaged profile": lambda: save(halves("RGB", rgb(DARK), rgb(LIGHT)), "JPEG", quality=95,
                                                icc_profile=b"not a colour profile"),
    "MPO (phone JPEG)": lambda: save(halves("RGB", rgb(DARK), rgb(LIGHT)), "MPO", quality=95, save_all=True,
                                     append_images=[other_frame()]),
    "WebP": lambda: save(halves("RGB", rgb(DARK), rgb(LIGHT)), "WEBP", lossless=True),
    "WebP animated": lambda: save(halves("RGBA", rgb(DARK) + (255,), rgb(LIGHT) + (255,)), "WEBP", lossless=True,
                                  save_all=True, append_images=[other_frame().convert("RGBA")]),
    "GIF animated": lambda: save(halves("RGB", rgb(DARK), rgb(LIGHT)), "GIF", save_all=True,
                                 append_images=[other_frame()]),
    "TIFF multi-page": lambda: save(halves("RGB", rgb(DARK), rgb(LIGHT)), "TIFF", save_all=True,
                                    append_images=[other_frame()]),
    "TIFF 16-bit grey": lambda: save(grey16(DARK * 257, LIGHT * 257), "TIFF"),
    "TIFF 32-bit grey (I)": lambda: save(grey16(DARK * 257, LIGHT * 257).convert("I"), "TIFF"),
    "TIFF float grey": lambda: save(halves("F", DARK / 255, LIGHT / 255), "TIFF"),
}


@pytest.mark.parametrize("make", CORPUS.values(), ids=CORPUS.keys())
def test_every_mode_and_format_reads_as_shown(make):
    picture = read_image(make())
    assert picture.mode == "RGB" and picture.size == (WIDTH, HEIGHT)
    pixels = np.asarray(picture, dtype=float)
    left, right = pixels[:, 5 : WIDTH // 2 - 2].mean(), pixels[:, WIDTH // 2 + 2 :].mean()
    if make is CORPUS["PNG 1-bit"]:
        assert left < 5 and right > 250
    else:
        assert abs(left - DARK) < 8 and abs(right - LIGHT) < 8, (left, right)


def test_transparent_palette_entries_become_white():
    picture = read_image(_palette_with_transparency())
    assert picture.getpixel((1, 1)) == (255, 255, 255)


def _turned(orientation: int, fmt: str) -> tuple[bytes, Image.Image]:
    """A picture with a distinct colour in each quadrant, stored with an EXIF orientation tag."""
    stored = Image.new("RGB", (WIDTH, HEIGHT), (255, 255, 255))
    stored.paste((255, 0, 0), (0, 0, WIDTH // 2, HEIGHT // 2))
    stored.paste((0, 0, 255), (WIDTH // 2, 0, WIDTH, HEIGHT // 2))
    stored.paste((0, 160, 0), (0, HEIGHT // 2, WIDTH // 2, HEIGHT))
    exif = Image.Exif()
    exif[0x0112] = orientation
    options = {"quality": 95} if fmt == "JPEG" else {}
    data = save(stored, fmt, exif=exif.tobytes(), **options)
    return data, ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_and_sets_the_size(orientation, fmt):
    data, shown = _turned(orientation, fmt)
    picture = read_image(data)
    expected_size = (HEIGHT, WIDTH) if orientation >= 5 else (WIDTH, HEIGHT)
    assert picture.size == shown.size == expected_size
    difference = np.abs(np.asarray(picture, dtype=float) - np.asarray(shown, dtype=float))
    assert difference.mean() < 6
    # Where the stored top-left (red) quadrant is shown, by the EXIF standard's meaning of each tag.
    red_quadrant = {1: (0, 0), 2: (0, 1), 3: (1, 1), 4: (1, 0), 5: (0, 0), 6: (0, 1), 7: (1, 1), 8: (1, 0)}
    red = np.argwhere((np.asarray(picture)[..., 0] > 200) & (np.asarray(picture)[..., 2] < 80))
    row, col = red.mean(axis=0) / np.array(picture.size[::-1])
    assert (round(row), round(col)) == red_quadrant[orientation]


def test_a_folder_is_named_as_a_folder(tmp_path):
    with pytest.raises(ImageError, match="is a folder"):
        read_image(tmp_path)


def test_embedding_keeps_plain_files_and_re_encodes_turned_or_foreign_ones():
    plain = save(halves("RGB", rgb(DARK), rgb(LIGHT)), "PNG")
    assert embeddable(plain, read_image(plain)) == (plain, "image/png")
    for data in (_turned(6, "JPEG")[0], CORPUS["GIF animated"](), CORPUS["WebP"]()):
        picture = read_image(data)
        embedded, mime = embeddable(data, picture)
        assert mime == "image/png" and Image.open(io.BytesIO(embedded)).size == picture.size
