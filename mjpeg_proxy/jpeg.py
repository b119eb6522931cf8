"""Checks on JPEG bytes: is this one complete picture?"""

from mjpeg_proxy.errors import BadFrame

SOI = b"\xff\xd8"
"""Start Of Image marker (ITU-T T.81, Table B.1)."""
EOI = b"\xff\xd9"
"""End Of Image marker (ITU-T T.81, Table B.1)."""

# Some cameras pad a snapshot body after EOI with CR/LF or NUL bytes; they are not
# part of the picture, and browsers and ffmpeg decode the trimmed file the same.
_TRAILING_PADDING = b"\r\n\x00 \t"


def complete_jpeg(data: bytes) -> bytes:
    """Return ``data`` as one complete JPEG, trailing padding after EOI removed.

    Raises:
        BadFrame: ``data`` does not start with SOI or does not end with EOI (after
            padding), so it is not a JPEG or was cut short.
    """
    body = data.rstrip(_TRAILING_PADDING)
    if not body.startswith(SOI):
        raise BadFrame(f"not a JPEG: starts with {data[:4].hex(' ') or 'nothing'}")
    if len(body) < 4 or not body.endswith(EOI):
        raise BadFrame(f"incomplete JPEG: {len(data)} bytes with no end-of-image marker")
    return body
