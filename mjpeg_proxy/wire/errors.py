"""What the wire code raises when bytes break the protocol.

Standard library only, like the rest of ``wire/``: a project that lifts the package
catches ``WireError``; mjpeg-proxy's sources turn it into their own ``BadFrame``.
"""


class WireError(ValueError):
    """Bytes that do not follow the protocol the wire code reads; the message says how."""


class BadJpeg(WireError):
    """Bytes that are not one complete JPEG.

    The message starts with what is wrong: "not a JPEG" (no start-of-image marker first),
    "corrupt JPEG" (a second start-of-image marker, a segment length under 2), or
    "incomplete JPEG" (the bytes end before the end-of-image marker).
    """
