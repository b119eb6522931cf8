r"""The MJPEG wire format we send: ``multipart/x-mixed-replace`` parts of JPEGs.

Protocol only: bytes in, bytes out, nothing from aiohttp. The body of a stream is
``--<boundary>\r\n`` followed by parts, each of which we build once per frame and
share among all viewers::

    Content-Type: image/jpeg\r\n
    Content-Length: <bytes of JPEG>\r\n
    X-Timestamp: <seconds since the epoch>\r\n
    \r\n
    <JPEG>\r\n
    --<boundary>\r\n

The delimiter syntax is RFC 2046 section 5.1.1; ``x-mixed-replace`` is Netscape's
server-push type, which browsers, ffmpeg's ``mpjpeg`` demuxer, VLC and OpenCV read.
"""

from __future__ import annotations

import re
import secrets

_BOUNDARY_RE = re.compile(r"[0-9A-Za-z_-]{1,70}")  # a subset of RFC 2046 bchars, no quoting needed


def new_boundary() -> str:
    """Return a fresh boundary token of our own, e.g. ``mjpegproxy-3f9a0c1b2d4e6f70``.

    Random so that it cannot occur by chance inside a JPEG read by a client that
    scans for the delimiter instead of trusting Content-Length.
    """
    return "mjpegproxy-" + secrets.token_hex(8)


class MultipartWriter:
    """Builds the bytes of an MJPEG stream for one boundary token, in one of two framings.

    For players and tools (ffmpeg, VLC, OpenCV, curl; ``advance_headers=False``) each part
    carries its own headers with an exact ``Content-Length`` (ffmpeg's demuxer splits
    wrongly without one) and the next delimiter follows the JPEG at once.

    For browsers (``advance_headers=True``) the next part's headers are sent ahead, right
    after the delimiter: Chromium paints a part only once the *next* part's header block
    is complete, so without them a still camera's picture would never show, and every
    picture would show one frame late (µStreamer's ``--advance-headers``). Those headers
    cannot hold the next JPEG's length, which browsers do not need.

    Raises:
        ValueError: the boundary is not 1-70 characters of ``[0-9A-Za-z_-]``.
    """

    def __init__(self, boundary: str, *, advance_headers: bool = False) -> None:
        if not _BOUNDARY_RE.fullmatch(boundary):
            raise ValueError(f"boundary must be 1-70 characters of [0-9A-Za-z_-], got {boundary!r}")
        self.boundary = boundary
        self.advance_headers = advance_headers
        # Some clients (older Safari, ffmpeg's mpjpeg) mis-parse a quoted or
        # space-padded parameter, so the token is plain and follows ';' directly.
        self.content_type = f"multipart/x-mixed-replace;boundary={boundary}"
        delimiter = b"--" + boundary.encode("ascii")
        self._after_delimiter = b"\r\n" + (b"Content-Type: image/jpeg\r\n\r\n" if advance_headers else b"")
        self.opening = delimiter + self._after_delimiter
        """The first bytes of the body."""
        self._tail = b"\r\n" + delimiter + self._after_delimiter

    def part(self, jpeg: bytes, timestamp: float) -> bytes:
        """Return one whole part for ``jpeg``: headers, JPEG, and at once the next delimiter.

        The headers are left out when they were sent ahead (``advance_headers``).
        ``timestamp`` (seconds since the epoch) goes out as ``X-Timestamp``, as µStreamer
        sends it. The delimiter is not held back until the next frame: browsers paint a
        part only when it arrives, so every picture would show a frame late, and a still
        camera's first picture never.
        """
        if self.advance_headers:
            return b"".join((jpeg, self._tail))
        head = b"Content-Type: image/jpeg\r\nContent-Length: %d\r\nX-Timestamp: %.6f\r\n\r\n" % (len(jpeg), timestamp)
        return b"".join((head, jpeg, self._tail))

    def closing(self, part: bytes) -> bytes:
        r"""Return ``part`` (from ``part()``) ending with the close delimiter instead.

        The close delimiter ``\r\n--<boundary>--\r\n`` takes the place of the next part's
        delimiter: the last part of a stream that ends on purpose, so players see a
        finished stream rather than a broken one (RFC 2046, 5.1.1).
        """
        return part[: len(part) - len(self._after_delimiter)] + b"--\r\n"
