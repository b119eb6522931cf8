"""The seam between a camera and where its frames come from: the ``Feed`` and its ``FrameSink``.

A feed brings one camera's frames and hands each to the camera (the ``FrameSink``);
everything downstream (hub, viewers, offline picture, counters, state) is the same
whatever the feed. Today's one feed is ``fetch.FetchLoop`` (the camera's own source); a
feed of frames from elsewhere (cluster mode: another replica's frames) is another
object with these few members.
"""

from __future__ import annotations

from typing import Protocol

from mjpeg_proxy.camera.frame import Frame


class FrameSink(Protocol):
    """Where a feed hands a camera's frames: the Camera."""

    def opened(self) -> None:
        """Frames start anew (the upstream was opened): rates count from now."""

    def received(self, frame: Frame) -> None:
        """Take one frame from the upstream: the camera is live; publish the frame, count it."""


class Feed(Protocol):
    """What a camera runs to get its frames, and all that it and ``CameraSet`` ask of it."""

    @property
    def upstream_requests(self) -> int:
        """Requests made to the upstream so far (0 for a feed that makes none)."""

    async def run(self) -> None:
        """Hand frames to the sink until cancelled; never ends otherwise (failures are retried)."""

    async def close(self) -> None:
        """Release what the feed holds (the source's sessions, connections); it is not run again."""
