"""Reading an upstream's MJPEG stream: ``multipart/x-mixed-replace`` parts to JPEG frames.

Protocol only: bytes in, JPEG frames out, nothing from aiohttp. Real cameras and tools
break every rule of RFC 2046 (section 5.1.1, the multipart syntax), so the reader is
liberal in what it takes and strict in what it gives:

- the boundary comes from the Content-Type parameter in any spelling (quoted or not,
  with or without a leading ``--``, any case of ``boundary``, spaces around ``=``), or,
  when the header has none, from the first line that starts with ``--``;
- a delimiter line is the token with any number of leading dashes (none included), an
  optional closing ``--``, trailing blanks, and CRLF or LF;
- a preamble or a first part with no delimiter before it, doubled delimiter lines and
  headers without a space after ``:`` are accepted;
- ``Content-Length`` is used when it is right (the body is one complete JPEG, perhaps
  with bytes appended after its EOI, but with no delimiter line among those); when it
  lies or is missing, the body ends at the next delimiter line;
- header blocks over ``max_header_bytes`` and bodies over ``max_frame_bytes`` are
  dropped without being held, and the reader resynchronises on the next delimiter;
- only complete JPEGs (SOI ``FF D8`` to EOI ``FF D9``) leave it, each cut at its real
  end (``mjpeg_proxy.wire.jpeg.cut_jpeg``: bytes a camera appends after EOI are not part of
  the picture); everything else is counted as dropped.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from mjpeg_proxy.wire.errors import BadJpeg
from mjpeg_proxy.wire.jpeg import SOI, CutJpeg, cut_jpeg

DEFAULT_MAX_HEADER_BYTES = 16 * 1024

_BOUNDARY_PARAM_RE = re.compile(r"""[;\s]boundary\s*=\s*(?:"([^"]*)"|'([^']*)'|([^;\s]+))""", re.IGNORECASE)
_CONTENT_LENGTH_RE = re.compile(rb"^content-length\s*:\s*(\d{1,12})\s*$", re.IGNORECASE)
_HEADER_RE = re.compile(rb"^[!-9;-~]+\s*:")  # a field name (visible ASCII but ':'), then ':'


def boundary_from_content_type(content_type: str) -> str | None:
    """The boundary token of a multipart Content-Type header, or None if it has none.

    Accepts ``boundary=tok``, ``boundary="tok"``, ``Boundary = tok`` and a token that
    already starts with ``--`` (which is removed: the delimiter is ``--`` + token).
    """
    match = _BOUNDARY_PARAM_RE.search(" " + content_type)
    if match is None:
        return None
    token = next(group for group in match.groups() if group is not None).strip()
    token = token.lstrip("-") if token.startswith("--") else token
    return token or None


@dataclass
class ReaderStats:
    """What went wrong in a reader's stream, in counts since it was made.

    Parts ``dropped`` (not a complete JPEG, or too large) and ``resyncs`` (framing lost
    and found again by scanning for the next delimiter).
    """

    dropped: int = 0
    resyncs: int = 0


class _State(enum.Enum):
    HEADERS = 1  # between parts: delimiter lines, headers, a blank line
    BODY = 2  # in a part's body
    AFTER_BODY = 3  # a Content-Length body was taken; a delimiter should follow
    DISCARD = 4  # lost: dropping bytes until the next delimiter line


class MultipartReader:
    """An incremental MJPEG parser: ``feed()`` bytes as they arrive, get complete JPEGs.

    Each JPEG comes as a ``CutJpeg``: the picture, and whether bytes after its end marker
    were cut off. Bytes may arrive in pieces of any size, split anywhere. Memory held is bounded by
    about ``max_frame_bytes`` + ``max_header_bytes``, whatever the upstream sends.
    ``boundary`` is the token from ``boundary_from_content_type`` (None to take it from
    the first ``--`` line of the body). ``stats`` may be shared by successive readers
    of the same upstream, to count across reconnections.
    """

    def __init__(
        self,
        boundary: str | None,
        *,
        max_frame_bytes: int,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        stats: ReaderStats | None = None,
    ) -> None:
        self._token = boundary.encode("latin-1") if boundary else None
        self._max_frame = max_frame_bytes
        self._max_header = max_header_bytes
        self._buf = bytearray()
        self._state = _State.HEADERS
        self._content_length: int | None = None
        self._seen_part_start = False  # a delimiter or a header since the last body
        self._scan_from = 0  # where the next delimiter search in the body starts
        self._header_bytes = 0  # size of the header block read so far
        self.stats = stats if stats is not None else ReaderStats()

    def feed(self, data: bytes) -> list[CutJpeg]:
        """Take the next bytes of the stream; return the JPEGs completed by them, in order."""
        self._buf += data
        frames: list[CutJpeg] = []
        while self._step(frames):
            pass
        return frames

    def close(self) -> None:
        """The stream ended: a part still in progress is counted as dropped, never given out."""
        if self._state is _State.BODY and self._buf:
            self.stats.dropped += 1
        self._buf.clear()
        self._state = _State.HEADERS

    # --- the state machine: each step consumes what it can and says whether to go on ---

    def _step(self, frames: list[CutJpeg]) -> bool:
        if self._state is _State.HEADERS:
            return self._headers_step()
        if self._state is _State.BODY:
            return self._body_step(frames)
        if self._state is _State.AFTER_BODY:
            return self._after_body_step()
        return self._discard_step()

    def _headers_step(self) -> bool:
        buf = self._buf
        if buf.startswith(SOI):
            # A body with no blank line before it (or no headers at all).
            self._start_body(None)
            return True
        end = buf.find(b"\n", 0, self._max_header + 1)
        if end < 0 or self._header_bytes + end >= self._max_header:
            if end >= 0 or len(buf) > self._max_header:
                # A header block (one line, or many) larger than any real camera sends.
                if self._seen_part_start:
                    self.stats.dropped += 1
                self._lose_sync()
                return True
            return False
        line = bytes(buf[:end]).rstrip(b"\r")
        del buf[: end + 1]
        self._header_bytes += end + 1
        self._header_line(line)
        return True

    def _header_line(self, line: bytes) -> None:
        """Take one line between parts, its line end removed.

        A delimiter, a header, the blank line before a body, or else preamble or noise,
        which is skipped.
        """
        if self._token is None and line.startswith(b"--") and len(line.strip(b"-")) > 0:
            self._token = line.strip().strip(b"-")  # no boundary declared: the first "--" line names it
        if self._is_delimiter(line):
            self._after_delimiter()
        elif not line.strip():
            if self._seen_part_start:
                self._start_body(self._content_length)
        elif _HEADER_RE.match(line):
            self._seen_part_start = True
            match = _CONTENT_LENGTH_RE.match(line)
            if match:
                self._content_length = int(match.group(1))

    def _start_body(self, content_length: int | None) -> None:
        self._state = _State.BODY
        self._content_length = content_length
        self._scan_from = 0
        self._header_bytes = 0

    def _body_step(self, frames: list[CutJpeg]) -> bool:
        buf = self._buf
        length = self._content_length
        if length is not None and length > self._max_frame:
            # Refused before a byte of it is held; what it sends is dropped as it comes.
            self.stats.dropped += 1
            self._lose_sync()
            return True
        if length is not None:
            if len(buf) < length:
                # A length that is too large would hold this frame back until the next
                # one fills it up: a delimiter after a complete JPEG ends the body too.
                return self._split_at_delimiter(frames, only_complete=True)
            jpeg = _cut_or_none(buf, length)
            if jpeg is not None and not (jpeg.trimmed and self._delimiter_may_start(len(jpeg.jpeg), length)):
                # Given out at once, without waiting for the delimiter that should follow:
                # some servers send it only with the next frame, a frame late.
                frames.append(jpeg)
                del buf[:length]
                self._state = _State.AFTER_BODY
                return True
            self._content_length = None  # the length lies: find the body's end by its delimiter
            self._scan_from = 0
        return self._split_at_delimiter(frames, only_complete=False)

    def _split_at_delimiter(self, frames: list[CutJpeg], *, only_complete: bool) -> bool:
        """End the body at the next delimiter line, if one has arrived.

        With ``only_complete``, only when the bytes before it are a complete JPEG (the
        body's length is still expected to decide otherwise).
        """
        buf = self._buf
        start, end = self._find_delimiter(self._scan_from)
        if start < 0:
            if len(buf) > self._max_frame + self._max_header:
                self.stats.dropped += 1
                self._lose_sync()
                return True
            # Search again from near the end next time; a delimiter may straddle the feeds.
            self._scan_from = max(0, len(buf) - self._max_delimiter_line())
            return False
        jpeg = _cut_or_none(buf, start) if start <= self._max_frame else None
        if jpeg is None:
            if only_complete:
                self._scan_from = end  # a delimiter-like line inside the body: look further on
                return False
            self.stats.dropped += 1
        else:
            frames.append(jpeg)
        del buf[:end]
        self._after_delimiter()
        return True

    def _after_body_step(self) -> bool:
        buf = self._buf
        stripped = buf.lstrip(b"\r\n")
        if len(stripped) != len(buf):
            del buf[: len(buf) - len(stripped)]
        if not buf:
            return False
        end = buf.find(b"\n")
        if end < 0:
            if len(buf) > self._max_delimiter_line():
                self._lose_sync()
                return True
            return False
        line = bytes(buf[:end]).rstrip(b"\r")
        if self._is_delimiter(line):
            del buf[: end + 1]
            self._after_delimiter()
        elif _HEADER_RE.match(line) or buf.startswith(SOI):
            # The next part's headers (or body) with no delimiter before them.
            self._state = _State.HEADERS
            self._seen_part_start = True
            self._content_length = None
        else:
            self._lose_sync()
        return True

    def _discard_step(self) -> bool:
        start, end = self._find_delimiter(0)
        if start < 0:
            keep = self._max_delimiter_line()
            if len(self._buf) > keep:
                del self._buf[: len(self._buf) - keep]
            return False
        del self._buf[:end]
        self._after_delimiter()
        return True

    # --- helpers ------------------------------------------------------------------------

    def _after_delimiter(self) -> None:
        self._state = _State.HEADERS
        self._seen_part_start = True
        self._content_length = None
        self._header_bytes = 0

    def _lose_sync(self) -> None:
        self.stats.resyncs += 1
        self._state = _State.DISCARD

    def _max_delimiter_line(self) -> int:
        return len(self._token or b"") + 256

    def _is_delimiter(self, line: bytes) -> bool:
        token = self._token
        if not token:
            return False
        core = line.strip()
        if core.endswith(b"--") and core[:-2].lstrip(b"-").endswith(token):
            core = core[:-2]  # a close delimiter: "--token--"
        return core.lstrip(b"-") == token

    def _delimiter_may_start(self, start: int, end: int) -> bool:
        """Whether a line in the buffer from ``start`` to ``end`` starts as a delimiter does.

        Or could, if it were not cut off at ``end``. Bytes after a JPEG's EOI within its
        Content-Length are a camera's appended data only if no such line is among them;
        otherwise the length may lie and reach into the next part, and the body ends at
        its delimiter instead.
        """
        token = self._token
        if not token:
            return False  # no delimiter can be recognised yet
        buf = self._buf
        at = buf.find(b"\n", start, end)
        while at >= 0:
            head = bytes(buf[at + 1 : min(end, at + 1 + self._max_delimiter_line())]).lstrip().lstrip(b"-")
            if token.startswith(head) or head.startswith(token):
                return True
            at = buf.find(b"\n", at + 1, end)
        return False

    def _find_delimiter(self, start: int) -> tuple[int, int]:
        """Find the next delimiter line in the buffer from ``start``.

        Returns (where the body before it ends, where the line after it starts), the first
        excluding the CRLF or LF that precedes the delimiter line; (-1, -1) if none yet.
        """
        token = self._token
        if not token:
            return -1, -1
        buf = self._buf
        at = start
        while True:
            at = buf.find(token, at)
            if at < 0:
                return -1, -1
            line_start = buf.rfind(b"\n", 0, at) + 1
            newline = buf.find(b"\n", at + len(token))
            if newline < 0:
                # The line is not complete yet: look again when more bytes come.
                return -1, -1
            if self._is_delimiter(bytes(buf[line_start:newline])):
                body_end = line_start
                if body_end and buf[body_end - 1] == 0x0A:
                    body_end -= 1
                    if body_end and buf[body_end - 1] == 0x0D:
                        body_end -= 1
                return body_end, newline + 1
            at += len(token)


def _cut_or_none(buf: bytearray, end: int) -> CutJpeg | None:
    """The JPEG that ``buf[:end]`` starts with, cut at its EOI (one copy), or None."""
    if not buf.startswith(SOI):
        return None
    try:
        return cut_jpeg(buf, end)
    except BadJpeg:
        return None
