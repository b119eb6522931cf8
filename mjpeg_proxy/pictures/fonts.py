"""The fonts for the text the proxy draws on pictures (the offline picture, the demo camera).

Each character is drawn with the first font that has a glyph for it: the configured font
(``[server] font``), then ``DEFAULT_FONT_NAME`` found in ``FONT_DIRS``, then the fonts in
``FONT_DIRS`` that have the glyphs those lack (Chinese, Japanese and Korean, say), read in
the order of ``TextFonts``. A character no font has is drawn as the first font's
missing-glyph box; with no font at all, Pillow's built-in font draws everything (its glyphs
cover little beyond ASCII). Which characters a font has is read from its character map
(the ``cmap`` table, OpenType specification) with fontTools.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

from fontTools.ttLib import TTFont
from PIL import ImageDraw, ImageFont

log = logging.getLogger(__name__)

DEFAULT_FONT_NAME = "DejaVuSans.ttf"
"""The file name of the font preferred after the configured one: DejaVu Sans (Debian's
``fonts-dejavu-core``, also packaged by Fedora, Alpine and Arch) has glyphs for Latin,
Greek, Cyrillic, Armenian, Georgian, Hebrew and Arabic."""
FONT_DIRS = (
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "~/.local/share/fonts",
    "~/.fonts",
    "/Library/Fonts",
    "/System/Library/Fonts",
)
"""Folders searched, with their subfolders, for ``DEFAULT_FONT_NAME`` and for fonts with
the glyphs it lacks: the fontconfig defaults of Linux distributions, and macOS's."""
FONT_SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")
"""TrueType and OpenType fonts and collections (of a collection, the first face is used)."""
MIN_SIZE_PX = 6
"""The smallest text size, in pixels, a line is shrunk to."""
SHRINK_LIMIT = 0.5
"""A line too wide for the picture is drawn smaller, down to this share of its size; past
that it is cut short with ``ELLIPSIS`` instead (a 300-character name would be dots)."""
ELLIPSIS = "\u2026"
"""What ends a line cut short."""
MAX_LOADED_FONTS = 64
"""Fonts kept loaded, one per font file and size in pixels; the oldest is dropped past this."""

# Faces whose file name says they are not a plain regular sans face are tried last, so a
# fallback looks like DejaVu Sans beside it.
_STYLED_RE = re.compile(r"bold|italic|oblique|light|thin|black|heavy|condensed|mono|serif|math", re.IGNORECASE)
# Combining marks and format characters (joiners, direction marks) stay with the character
# before them: shaping needs them in the same run.
_JOINING = frozenset({"Mn", "Me", "Cf"})
# Each anchor letter as (offset from the start of the line in widths, from the baseline in
# ascents and descents): Pillow's text anchors, horizontal then vertical.
_X_ANCHORS = {"l": 0.0, "m": 0.5, "r": 1.0}
_Y_ANCHORS = {"a": (1.0, 0.0), "m": (0.5, -0.5), "s": (0.0, 0.0), "d": (0.0, -1.0)}

_CHECK_SIZE_PX = 16  # any size: a font that loads at one scales to all
_PillowFont = ImageFont.FreeTypeFont | ImageFont.ImageFont


class FontError(Exception):
    """A font file cannot be used; the message says why, in one line."""


@dataclass(frozen=True)
class FontFace:
    """A font file (of a collection, its first face) and the Unicode code points it has glyphs for."""

    path: str
    code_points: frozenset[int] = field(repr=False)

    def has(self, char: str) -> bool:
        """Whether the font has a glyph for ``char`` (one character)."""
        return ord(char) in self.code_points


def read_font(path: str) -> FontFace:
    """Read the TrueType or OpenType font (or collection) at ``path``.

    Pillow is made to load it too, so that it is known to draw at any size.

    Raises:
        FontError: the file cannot be read, is no such font, has no outlines (a
            bitmap-only font, such as a colour emoji font, which Pillow draws at one size
            only), or Pillow cannot load it.
    """
    face = _read_character_map(path)
    _check_pillow_loads(path)
    return face


def _check_pillow_loads(path: str) -> None:
    """Raise FontError if Pillow cannot load the font file at ``path``."""
    try:
        ImageFont.truetype(path, _CHECK_SIZE_PX)
    except OSError as e:
        raise FontError(f"Pillow cannot draw with it: {e}") from None


def _read_character_map(path: str) -> FontFace:
    """``read_font`` without the check with Pillow; raises FontError."""
    try:
        with TTFont(path, fontNumber=0, lazy=True) as font:
            if not any(tag in font for tag in ("glyf", "CFF ", "CFF2")):
                raise FontError("the font has no outlines (a bitmap font): choose a scalable font")
            return FontFace(path, frozenset(font.getBestCmap() or ()))
    except OSError as e:
        raise FontError(f"cannot read it: {e.strerror or e}") from None
    except FontError:
        raise
    except Exception as e:  # fontTools raises TTLibError, struct.error, KeyError... on a damaged file
        raise FontError(f"not a TrueType or OpenType font: {e}") from None


class TextFonts:
    """The fonts that draw one process's text on pictures, shared by the threads that draw.

    ``font_file``: a font to prefer to the default (``[server] font``), or None.
    ``font_dirs``: folders searched, with their subfolders, for ``DEFAULT_FONT_NAME`` and
    for fonts with the glyphs the others lack; regular faces are tried before bold,
    italic, monospaced and serif ones, then by path.

    Nothing is read until the first text is drawn or measured. A search for characters
    no chosen font has reads the files not chosen yet until it has found them all, and
    which font draws a character (or that none has it) is remembered, so a search
    happens once per new character. A configured font that cannot be used (checked already when
    the configuration is loaded) is logged and left out. Sizes are in pixels (the em
    size); positions and lengths in pixels.
    """

    def __init__(self, font_file: str | None = None, font_dirs: Sequence[str] = FONT_DIRS) -> None:
        self.font_file = font_file
        self.font_dirs = tuple(font_dirs)
        self._lock = threading.Lock()
        self._faces: list[FontFace] | None = None  # chosen, in order of preference; None: not read yet
        self._candidates: list[str] = []  # font files not chosen, in search order
        self._face_of: dict[str, int] = {}  # character -> index in _faces of the font that draws it
        self._loaded: dict[tuple[int, int], _PillowFont] = {}  # (face index, size) -> font

    def length(self, text: str, size: int) -> float:
        """How wide ``text`` (one line) is at ``size`` pixels, in pixels."""
        return sum(run[2] for run in self._layout(text, size))

    def fit(self, text: str, size: int, max_width: float) -> tuple[str, int]:
        """``text`` and a size in pixels at which it is at most ``max_width`` pixels wide.

        The size is ``size``, or smaller down to ``SHRINK_LIMIT`` of it (and
        ``MIN_SIZE_PX``); text still too wide then is cut, ending in ``ELLIPSIS``, so it
        stays readable.
        """
        width = self.length(text, size)
        if width <= max_width:
            return text, size
        smallest = max(MIN_SIZE_PX, int(size * SHRINK_LIMIT))
        fitted = max(smallest, int(size * max_width / width))
        if fitted > smallest or self.length(text, fitted) <= max_width:
            return text, fitted
        keep_low, keep_high = 0, len(text)  # how many characters to keep: binary search
        while keep_low < keep_high:
            keep = (keep_low + keep_high + 1) // 2
            if self.length(text[:keep].rstrip() + ELLIPSIS, fitted) <= max_width:
                keep_low = keep
            else:
                keep_high = keep - 1
        return text[:keep_low].rstrip() + ELLIPSIS, fitted

    def draw(
        self,
        draw: ImageDraw.ImageDraw,
        xy: tuple[float, float],
        text: str,
        size: int,
        *,
        fill: tuple[int, int, int],
        anchor: str = "la",
        stroke_width: int = 0,
        stroke_fill: tuple[int, int, int] | None = None,
    ) -> None:
        """Draw ``text`` (one line) at ``xy`` with ``draw``, ``size`` pixels tall.

        Control characters become spaces. The text is in ``fill`` colour, with an outline
        ``stroke_width`` pixels wide in ``stroke_fill`` if asked.

        ``anchor`` places the line as Pillow's text anchors do: horizontal ``l``, ``m`` or
        ``r``, then vertical ``a`` (ascender), ``m``, ``s`` (baseline) or ``d``
        (descender), from the first font's ascent and descent, so a line sits at the same
        height whatever its script. Right-to-left text (Arabic, Hebrew) is shaped by
        Pillow's libraqm layout where Pillow has it; runs of text in different fonts are
        placed right to left when the first strong character is right-to-left (rules P2
        and P3 of the Unicode Bidirectional Algorithm, UAX #9).
        """
        runs = self._layout(text, size)
        if not runs:
            return
        with self._lock:
            first = self._font(0, size)
        ascent, descent = first.getmetrics() if isinstance(first, ImageFont.FreeTypeFont) else (size, 0)
        x_share, (ascents, descents) = _X_ANCHORS[anchor[0]], _Y_ANCHORS[anchor[1]]
        x = xy[0] - x_share * sum(run[2] for run in runs)
        baseline = xy[1] + ascents * ascent + descents * descent
        for font, part, length, direction in runs:
            draw.text(
                (x, baseline),
                part,
                fill=fill,
                font=font,
                anchor="ls",
                direction=direction,
                stroke_width=stroke_width,
                stroke_fill=stroke_fill,
            )
            x += length

    def _layout(self, text: str, size: int) -> list[tuple[_PillowFont, str, float, str | None]]:
        """``text`` cut into runs of characters drawn by one font, in drawing order.

        Runs are in the order they are drawn from left to right, each as (font, run,
        length in pixels, the paragraph's direction for the fonts that Pillow lays out
        with libraqm, else None).
        """
        if not text:
            return []
        text = "".join(" " if unicodedata.category(char) == "Cc" else char for char in text)
        with self._lock:
            faces = self._chosen()
            new = set(text).difference(self._face_of)
            if new:
                self._choose(new)
            starts: list[tuple[int, int]] = []  # (face index, where the run starts in text)
            for i, char in enumerate(text):
                index = self._face_of[char]
                if starts:
                    current = starts[-1][0]
                    if (
                        index == current
                        or unicodedata.category(char) in _JOINING
                        or (char.isspace() and bool(faces) and faces[current].has(char))
                    ):
                        continue
                starts.append((index, i))
            ends = [start for _, start in starts[1:]] + [len(text)]
            runs = [(index, text[start:end]) for (index, start), end in zip(starts, ends, strict=True)]
            fonts = [(self._font(index, size), part) for index, part in runs]
        right_to_left = _is_right_to_left(text)
        if right_to_left:
            fonts.reverse()
        runs_drawn = []
        for font, part in fonts:
            # Pillow's basic layout (no libraqm, or the built-in font) refuses a direction.
            raqm = isinstance(font, ImageFont.FreeTypeFont) and font.layout_engine == ImageFont.Layout.RAQM
            direction = ("rtl" if right_to_left else "ltr") if raqm else None
            runs_drawn.append((font, part, font.getlength(part, direction=direction), direction))
        return runs_drawn

    def _chosen(self) -> list[FontFace]:
        """The chosen fonts; on first use, the configured font and the default. Call with the lock held."""
        if self._faces is None:
            faces = []
            if self.font_file is not None:
                try:
                    faces.append(read_font(self.font_file))
                except FontError as e:
                    log.error("font %s: %s; text is drawn with the other fonts", self.font_file, e)
            files = _font_files(self.font_dirs)
            default = next((path for path in files if os.path.basename(path) == DEFAULT_FONT_NAME), None)
            if default is not None:
                try:
                    faces.append(read_font(default))
                except FontError as e:
                    log.warning("font %s: %s", default, e)
            if not faces:
                log.warning(
                    "no font %s in %s: text on pictures is drawn with Pillow's built-in font, which draws "
                    "most letters beyond ASCII as boxes; install fonts-dejavu-core or set [server] font",
                    DEFAULT_FONT_NAME,
                    ", ".join(self.font_dirs),
                )
            self._faces = faces
            self._candidates = [path for path in files if path not in (default, self.font_file)]
        return self._faces

    def _choose(self, chars: set[str]) -> None:
        """Decide which font draws each of ``chars`` (not decided yet).

        A character no chosen font has is searched for in the font files not chosen yet
        (``_search_files``); one no font has is drawn with the first font, as its
        missing-glyph box. Call with the lock held.
        """
        faces = self._chosen()
        wanted = set()
        for char in chars:
            if unicodedata.category(char) == "Cf":  # joiners, direction marks: nothing to draw
                self._face_of[char] = 0
                continue
            index = next((i for i, face in enumerate(faces) if face.has(char)), None)
            if index is None:
                wanted.add(char)
            else:
                self._face_of[char] = index
        missing = self._search_files(faces, wanted)
        if missing and faces:  # with no font at all, _chosen has said so
            log.warning(
                "no font has glyphs for %r: they are drawn as boxes; install a font that has them "
                "(fonts-wqy-microhei for Chinese, Japanese and Korean) or set [server] font",
                "".join(sorted(missing)),
            )
        self._face_of.update(dict.fromkeys(missing, 0))

    def _search_files(self, faces: list[FontFace], wanted: set[str]) -> set[str]:
        """Read the candidate font files, in search order, until each of ``wanted`` is found.

        A file with glyphs for some joins ``faces`` and draws those; one that cannot be used
        leaves the candidates. Call with the lock held. Returns the characters no file has.
        """
        for path in list(self._candidates):
            if not wanted:
                break
            read = _glyphs_in(path, wanted)
            if read is not None and not read[1]:
                continue
            self._candidates.remove(path)
            if read is not None:
                face, found = read
                log.info("font %s draws %r", path, "".join(sorted(found)))
                faces.append(face)
                self._face_of.update(dict.fromkeys(found, len(faces) - 1))
                wanted = wanted - found
        return wanted

    def _font(self, index: int, size: int) -> _PillowFont:
        """The font ``index`` of the chosen ones at ``size`` pixels, loaded once.

        Pillow's built-in font stands in when no font is chosen. At most
        ``MAX_LOADED_FONTS`` stay loaded. Call with the lock held.
        """
        key = (index, size)
        font = self._loaded.get(key)
        if font is None:
            faces = self._chosen()
            font = ImageFont.truetype(faces[index].path, size) if faces else ImageFont.load_default(size)
            if len(self._loaded) >= MAX_LOADED_FONTS:
                del self._loaded[next(iter(self._loaded))]
            self._loaded[key] = font
        return font


@functools.cache
def shared_fonts(font_file: str | None = None) -> TextFonts:
    """The process's ``TextFonts`` for ``font_file`` and ``FONT_DIRS``, made once, shared by every camera."""
    return TextFonts(font_file)


def _glyphs_in(path: str, wanted: set[str]) -> tuple[FontFace, set[str]] | None:
    """The font file at ``path`` and which of ``wanted`` it has (then checked to load in Pillow).

    None, logged at debug level, if the file cannot be used.
    """
    try:
        face = _read_character_map(path)
        found = {char for char in wanted if face.has(char)}
        if found:
            _check_pillow_loads(path)
    except FontError as e:
        log.debug("font %s: %s", path, e)
        return None
    return face, found


def _font_files(font_dirs: Sequence[str]) -> list[str]:
    """The font files under ``font_dirs`` (``FONT_SUFFIXES``), each once, in search order."""
    files: dict[str, str] = {}  # real path -> path found
    for folder in font_dirs:
        for root, _, names in os.walk(os.path.expanduser(folder)):
            for name in names:
                if name.lower().endswith(FONT_SUFFIXES):
                    path = os.path.join(root, name)
                    files.setdefault(os.path.realpath(path), path)
    return sorted(files.values(), key=lambda path: (bool(_STYLED_RE.search(os.path.basename(path))), path))


def _is_right_to_left(text: str) -> bool:
    """Whether the first strong character of ``text`` is right-to-left (UAX #9, rules P2 and P3)."""
    for char in text:
        kind = unicodedata.bidirectional(char)
        if kind in ("R", "AL"):
            return True
        if kind == "L":
            return False
    return False
