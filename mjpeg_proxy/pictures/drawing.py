"""Pictures of text: the offline picture and the lines of any other (an error's).

The offline picture tells viewers why a camera shows nothing live; ``render_lines`` draws
the centred lines of text it and the error pictures show.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence

from PIL import Image, ImageDraw

from mjpeg_proxy.pictures.fonts import TextFonts, shared_fonts

BACKGROUND = (32, 32, 36)
TITLE_COLOUR = (240, 240, 240)
TEXT_COLOUR = (200, 200, 200)
LINES_PER_HEIGHT = 12
"""A line of scale 1 is ``1 / LINES_PER_HEIGHT`` of the picture's height."""
MIN_TEXT_PX = 8
"""The smallest size, in pixels, of a line of scale 1, however small the picture."""
TEXT_WIDTH_SHARE = 0.92
"""The share of the picture's width a line may take; a wider one is drawn smaller."""
LINE_SPACING = 1.5
"""A line's height, in multiples of its text size."""
JPEG_QUALITY = 80


def jpeg_size(jpeg: bytes) -> tuple[int, int] | None:
    """(width, height) in pixels of a JPEG, read from its header; None if Pillow cannot tell."""
    try:
        with Image.open(io.BytesIO(jpeg)) as image:  # lazy: reads the header, not the pixels
            return image.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def utc_text(wall: float) -> str:
    """``wall`` (seconds since the epoch) as people read it: ``2026-11-29 12:51:31 UTC``."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(wall))


def render_placeholder(
    camera_name: str,
    reason: str,
    since_wall: float,
    size: tuple[int, int],
    now_wall: float,
    *,
    fonts: TextFonts | None = None,
) -> bytes:
    """The offline picture: a baseline JPEG of ``size`` (width, height in pixels).

    It shows ``camera_name``, ``reason`` (one line of plain words) and since when
    (``since_wall``, seconds since the epoch, shown as UTC with the time elapsed up to
    ``now_wall``, seconds since the epoch), drawn with ``fonts`` (see ``render_lines``).
    """
    lines = [
        (camera_name, TITLE_COLOUR, 1.0),
        (reason, TEXT_COLOUR, 0.7),
        (f"since {utc_text(since_wall)} "
         f"({ago_text(now_wall - since_wall)})", TEXT_COLOUR, 0.55),
    ]  # fmt: skip
    return render_lines(lines, size, fonts)


def render_lines(
    lines: Sequence[tuple[str, tuple[int, int, int], float]], size: tuple[int, int], fonts: TextFonts | None = None
) -> bytes:
    """A baseline JPEG of ``size`` (width, height in pixels) showing ``lines`` centred.

    Each line is ``(text, RGB colour, scale)``: a scale of 1 is ``1 / LINES_PER_HEIGHT`` of
    the height (at least ``MIN_TEXT_PX``), and a line wider than ``TEXT_WIDTH_SHARE`` of the
    picture is drawn smaller (``TextFonts.fit``). The text is drawn with ``fonts``
    (default: ``fonts.shared_fonts()``).
    """
    width, height = size
    fonts = fonts or shared_fonts()
    image = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(image)
    base = max(MIN_TEXT_PX, height // LINES_PER_HEIGHT)
    fitted = [fonts.fit(text, int(base * scale), width * TEXT_WIDTH_SHARE) for text, _, scale in lines]
    heights = [text_size * LINE_SPACING for _, text_size in fitted]
    y = (height - sum(heights)) / 2
    for (_, colour, _), (text, text_size), line_height in zip(lines, fitted, heights, strict=True):
        fonts.draw(draw, (width / 2, y + line_height / 2), text, text_size, fill=colour, anchor="mm")
        y += line_height
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def ago_text(seconds: float) -> str:
    """How long ago, as the offline picture says it: ``42 s ago``, ``5 min ago``, ``3 h ago``, ``2 days ago``."""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"
