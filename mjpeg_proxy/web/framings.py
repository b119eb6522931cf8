"""The bytes a frame goes out as: its multipart part in each framing, built once per frame.

The hub of each camera is given ``Framings.build``; every viewer writes one of the two
byte strings of the ``StreamPart`` it gets, whichever its client reads (see
``mjpeg_proxy.wire.writer.MultipartWriter`` for why there are two).
"""

from __future__ import annotations

from typing import NamedTuple

from mjpeg_proxy.camera.frame import Frame
from mjpeg_proxy.wire.writer import MultipartWriter, new_boundary


class StreamPart(NamedTuple):
    """One frame's part in each framing, shared by all viewers of the frame."""

    player: bytes
    """For players and tools: headers with the exact Content-Length, then the JPEG."""
    browser: bytes
    """For browsers' ``<img>``: the JPEG, then the next part's headers sent ahead."""


class Framings:
    """The server's two writers, on one boundary of its own (``new_boundary``).

    ``player`` writes parts with their own headers and exact ``Content-Length``;
    ``browser`` sends the next part's headers ahead.
    """

    def __init__(self, boundary: str | None = None) -> None:
        boundary = boundary or new_boundary()
        self.player = MultipartWriter(boundary)
        self.browser = MultipartWriter(boundary, advance_headers=True)

    def build(self, frame: Frame) -> StreamPart:
        """The bytes of ``frame``'s part in both framings (``X-Timestamp`` from ``frame.timestamp``)."""
        return StreamPart(
            self.player.part(frame.jpeg, frame.timestamp),
            self.browser.part(frame.jpeg, frame.timestamp),
        )

    def writer(self, browser: bool) -> MultipartWriter:
        """The writer for a browser's ``<img>`` (``browser``) or for anything else."""
        return self.browser if browser else self.player
