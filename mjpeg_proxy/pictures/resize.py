"""A frame made narrower: JPEG bytes in, JPEG bytes out (Pillow, libjpeg's scaled decoding).

``resize_jpeg`` reads the header first (``announced_size``) and refuses what it must not
decode (a picture of more pixels than the cap, something that is no JPEG); it then lets libjpeg decode at
1/2, 1/4 or 1/8 of the size when that is still at least the target (``Image.draft``: the
inverse DCT at a smaller size, a fraction of the work), resizes the rest of the way and
encodes a baseline JPEG. It is slow work for an event loop (milliseconds to tens of
milliseconds): call it in a thread.
"""

from __future__ import annotations

import io
import struct

from PIL import ExifTags, Image

MAX_PIXELS_LIMIT = 89_478_485
"""The largest cap (``[server] max_resize_pixels``) allowed: Pillow's own limit
(``Image.MAX_IMAGE_PIXELS``), past which it warns of a decompression bomb."""
DEFAULT_MAX_PIXELS = 40_000_000
"""The default cap on a frame's pixels: an 8K frame (7680x4320) is 33 MP. Decoding needs
about 3 bytes a pixel, and a progressive JPEG keeps all its coefficients (2 bytes a
sample) in memory however small it is decoded, so 40 MP is some 120 MB for one
frame, and up to 240 MB for a progressive one without colour subsampling (4:4:4)."""
QUALITY = 80
"""The JPEG quality of a resized frame: a small picture for a phone or a tile, where the
artefacts of quality 80 do not show; about two thirds of the bytes of quality 90."""
RESAMPLING = Image.Resampling.BICUBIC
"""The filter for what the scaled decoding leaves (a factor from 1 to 2). Measured on real
frames (bench/RESULTS.md): within 41-53 dB PSNR of Lanczos at 0.8-0.95 of its cost, where
bilinear is visibly softer (36-45 dB) at 0.6-0.8. Pillow's ``thumbnail`` uses it too."""
REDUCING_GAP = 3.0
"""Past 3 times the target after the scaled decoding (a frame wider than 24 times the
target), Pillow first averages whole blocks of pixels, then resamples; Pillow's documentation
calls the result of 3 indistinguishable from resampling the whole way."""
_ORIENTATION = ExifTags.Base.Orientation
_SOI = b"\xff\xd8"
_SOS = 0xDA
# The frame headers (T.81, Table B.1): SOF0-SOF15 but DHT, JPG and DAC.
_SOF_CODES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, with no length (T.81 B.1.1.3): TEM, RST0-RST7, SOI, EOI; and
# FF 00, no marker, which libjpeg and Pillow step over too. Read as a length, the next
# marker's bytes would skip a reader past the frame header Pillow reads.
_LONE_CODES = frozenset({0x00, 0x01, *range(0xD0, 0xDA)})
_TURNED = range(2, 9)
"""The EXIF orientations of a turned picture (a SHORT, 1 to 8, TIFF 6.0 and Exif); 1 is
upright, and another value or type is a firmware's error, left out."""


class ResizeError(Exception):
    """A frame that cannot be resized; the message says why, in words for a log line."""


class NotAJpeg(ResizeError):
    """The bytes are not a JPEG Pillow can read."""


class TooManyPixels(ResizeError):
    """The JPEG's header announces more pixels than the cap: it is never decoded."""


class BrokenJpeg(ResizeError):
    """The JPEG's header is readable but its picture is not (truncated or corrupt data)."""


def scaled_size(size: tuple[int, int], width: int) -> tuple[int, int]:
    """``size`` (width, height in pixels) at ``width``: the height follows the aspect (rounded, at least 1)."""
    return width, max(1, round(size[1] * width / size[0]))


def announced_size(jpeg: bytes) -> tuple[int, int] | None:
    """(width, height) in pixels that a JPEG's frame header (SOFn, T.81 B.2.2) announces.

    None when ``jpeg`` does not start with SOI or has no frame header before its first
    scan. Nothing is decoded: this is what a cap is checked on before Pillow opens
    anything (which would warn, or refuse, past its own limit).
    """
    if not jpeg.startswith(_SOI):
        return None
    at = 2
    while at + 9 <= len(jpeg) and jpeg[at] == 0xFF:
        code = jpeg[at + 1]
        if code == 0xFF:
            at += 1  # a fill byte (T.81 B.1.1.2)
        elif code in _LONE_CODES:
            at += 2
        elif code in _SOF_CODES:
            height, width = struct.unpack_from(">HH", jpeg, at + 5)
            return width, height
        elif code == _SOS:
            return None
        else:
            at += 2 + struct.unpack_from(">H", jpeg, at + 2)[0]
    return None


def resize_jpeg(jpeg: bytes, width: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes:
    """``jpeg`` at ``width`` pixels wide (``scaled_size``), or ``jpeg`` itself if it is no wider.

    The result is a baseline JPEG of quality ``QUALITY`` in RGB (greyscale stays
    greyscale; CMYK and other modes become RGB), without the original's metadata
    (EXIF, comments, ICC profile) but its EXIF orientation, when it has a valid one: the picture
    is not turned, so browsers, which turn by that tag, show it as they show the
    original, and players, which ignore it, too.

    Raises:
        NotAJpeg: ``jpeg`` is not a JPEG.
        TooManyPixels: its header announces more than ``max_pixels`` pixels (nothing decoded).
        BrokenJpeg: its data cannot be decoded (truncated, corrupt).
    """
    original = announced_size(jpeg)
    if original is None:
        raise NotAJpeg("not a JPEG (no frame header before its first scan)")
    if original[0] * original[1] > max_pixels:
        raise TooManyPixels(
            f"its header says {original[0]}x{original[1]}, {original[0] * original[1]:,} pixels, over"
            f" max_resize_pixels ({max_pixels:,}); not decoded"
        )
    if original[0] <= width:
        return jpeg
    try:
        image = Image.open(io.BytesIO(jpeg), formats=("JPEG",))  # lazy: the header only
    except (OSError, ValueError, Image.DecompressionBombError):
        raise NotAJpeg("not a JPEG (its header cannot be read)") from None
    with image:
        target = scaled_size(original, width)
        try:
            orientation = image.getexif().get(_ORIENTATION)
            _, box = image.draft("RGB", target) or (None, None)
            resized = image.resize(target, RESAMPLING, box=box, reducing_gap=REDUCING_GAP)
            if resized.mode not in ("RGB", "L"):
                resized = resized.convert("RGB")  # CMYK: RGB is what every browser and player shows
            resized.info.pop("comment", None)  # Pillow would copy the original's COM segment
        # Pillow decodes what a camera (or an attacker) sends: truncated data is an OSError,
        # but a malformed segment can raise any of several; none may end the stream.
        except Exception as e:  # noqa: BLE001
            raise BrokenJpeg(f"the picture cannot be decoded ({type(e).__name__}: {e})") from None
    out = io.BytesIO()
    options = {}
    if type(orientation) is int and orientation in _TURNED:
        exif = Image.Exif()
        exif[_ORIENTATION] = orientation
        options["exif"] = exif
    resized.save(out, "JPEG", quality=QUALITY, **options)
    return out.getvalue()
