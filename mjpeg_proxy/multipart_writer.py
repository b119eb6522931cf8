"""The MJPEG wire format we send: ``multipart/x-mixed-replace`` parts of JPEGs.

Protocol only: bytes in, bytes out, nothing from aiohttp. The body of a stream is
``--<boundary>\\r\\n`` followed by parts, each of which we build once per frame and
share among all viewers::

    Content-Type: image/jpeg\\r\\n
    Content-Length: <bytes of JPEG>\\r\\n
    X-Timestamp: <seconds since the epoch>\\r\\n
    \\r\\n
    <JPEG>\\r\\n
    --<boundary>\\r\\n

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
    """Builds the bytes of an MJPEG stream for one boundary token.

    Raises:
        ValueError: the boundary is not 1-70 characters of ``[0-9A-Za-z_-]``.
    """

    def __init__(self, boundary: str) -> None:
        if not _BOUNDARY_RE.fullmatch(boundary):
            raise ValueError(f"boundary must be 1-70 characters of [0-9A-Za-z_-], got {boundary!r}")
        self.boundary = boundary
        # Some clients (older Safari, ffmpeg's mpjpeg) mis-parse a quoted or
        # space-padded parameter, so the token is plain and follows ';' directly.
        self.content_type = f"multipart/x-mixed-replace;boundary={boundary}"
        self.opening = b"--" + boundary.encode("ascii") + b"\r\n"
        self._tail = b"\r\n" + self.opening

    def part(self, jpeg: bytes, timestamp: float) -> bytes:
        """Return one whole part for ``jpeg``: headers, the JPEG, and the next delimiter.

        ``timestamp`` (seconds since the epoch) goes out as ``X-Timestamp``, as µStreamer
        sends it. The delimiter closes the part at once: browsers paint a part only when
        the next delimiter arrives, so holding it back until the next frame would show
        every picture one frame late, and a still camera's first picture never.
        """
        head = b"Content-Type: image/jpeg\r\nContent-Length: %d\r\nX-Timestamp: %.6f\r\n\r\n" % (len(jpeg), timestamp)
        return b"".join((head, jpeg, self._tail))
