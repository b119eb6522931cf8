"""The Frame: one JPEG picture as it travels from a source to the viewers."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Frame:
    """One complete JPEG from an upstream, immutable and shared by every viewer.

    ``jpeg`` holds the whole file, SOI (``FF D8``) to EOI (``FF D9``). ``seq`` is 0 as a
    source yields the frame and is set by the FrameHub when it publishes it (1, 2, ...).
    ``received_monotonic`` is ``time.monotonic()`` seconds, for ages and intervals;
    ``received_wall`` and ``upstream_time`` are seconds since the Unix epoch, the
    latter when the upstream stamps its frames. ``placeholder`` marks the offline picture
    the proxy renders itself (``mjpeg_proxy.pictures.drawing``), not a camera's frame.
    ``trimmed`` says the upstream sent bytes after the JPEG's EOI that were cut off
    (``mjpeg_proxy.wire.jpeg.CutJpeg``); the Camera counts such frames.
    """

    jpeg: bytes
    seq: int = 0
    received_monotonic: float = field(default_factory=time.monotonic)
    received_wall: float = field(default_factory=time.time)
    upstream_time: float | None = None
    placeholder: bool = False
    trimmed: bool = False

    @property
    def timestamp(self) -> float:
        """When the picture was taken, in seconds since the epoch.

        The upstream's own time when it gave one, else the time we received it.
        """
        return self.upstream_time if self.upstream_time is not None else self.received_wall
