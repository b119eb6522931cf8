"""The fetch loop: a camera's own source, through a stall watchdog and backoff, to its sink.

``FetchLoop`` is how a camera gets its frames today. It opens the source, hands each frame
to the ``FrameSink`` (the Camera: hub, counters, input rate), turns each failure into a
state and a pause (``StateTracker``, ``OfflinePicture.pause``), and opens the source again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from mjpeg_proxy.camera.errors import SourceError, Stalled, UpstreamUnavailable
from mjpeg_proxy.camera.frame import Frame
from mjpeg_proxy.camera.offline import OfflinePicture
from mjpeg_proxy.camera.source import Source
from mjpeg_proxy.camera.state import CameraState, StateTracker
from mjpeg_proxy.camera.stats import CameraStats

log = logging.getLogger(__name__)


class FrameSink(Protocol):
    """Where a camera's frames go, whatever brings them: the Camera."""

    def opened(self) -> None:
        """Frames start anew (the upstream was opened): rates count from now."""

    def received(self, frame: Frame) -> None:
        """Take one frame from the upstream: publish it, count it."""


class FetchLoop:
    """Fetches from ``source`` into ``sink`` until cancelled, retrying after every failure.

    A source that yields no frame for ``stall_timeout_s`` seconds is stalled
    (``Stalled``) and opened again; the watchdog stops while the source waits for its
    turn at its upstream (``Source.on_held_back``). A source's iterator is always closed
    before the next is opened. An exception other than ``SourceError`` (a bug in a
    source) is logged and counted as ``UpstreamUnavailable``: it never ends the loop.
    Each error is counted in ``stats`` by its ``kind``.
    """

    def __init__(
        self,
        source: Source,
        sink: FrameSink,
        states: StateTracker,
        offline: OfflinePicture,
        stats: CameraStats,
        stall_timeout_s: float,
    ) -> None:
        self.source = source
        self.stall_timeout_s = stall_timeout_s
        self._sink = sink
        self._stats = stats
        self._states = states
        self._offline = offline
        self._watchdog: asyncio.Timeout | None = None  # the stall watchdog of the frame awaited

    async def run(self) -> None:
        """Fetch for ever, first waiting out a retry still due from before; ends only when cancelled."""
        wait = self._states.retry_wait_s()
        if wait:
            await self._offline.pause(wait, self.stall_timeout_s)
        while True:
            try:
                await self._pump()
                raise UpstreamUnavailable("the upstream ended its stream")
            except SourceError as error:
                delay = self._failed(error)
            except Exception as error:  # a bug in a source must not end the camera
                log.exception("camera %s: unexpected error in source", self._states.name)
                delay = self._failed(UpstreamUnavailable(f"internal error: {type(error).__name__}"))
            await self._offline.pause(delay, self.stall_timeout_s)

    def _failed(self, error: SourceError) -> float:
        self._stats.errors[error.kind] += 1
        self._stats.last_error = str(error)
        return self._states.failed(error)

    async def _pump(self) -> None:
        self._sink.opened()
        frames = self.source.frames()
        self.source.on_held_back = self._held_back
        try:
            while True:
                try:
                    async with asyncio.timeout(self.stall_timeout_s) as self._watchdog:
                        frame = await anext(frames)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise Stalled(f"no complete frame for {self.stall_timeout_s:g} s") from None
                finally:
                    self._watchdog = None
                if self._states.state is not CameraState.LIVE:
                    self._states.recovered()
                self._sink.received(frame)
        finally:
            aclose = getattr(frames, "aclose", None)  # async generators hold resources until closed
            if aclose is not None:
                await aclose()

    def _held_back(self, held: bool) -> None:
        """Stop the stall watchdog while the source waits for its turn (``held``), and start it again in full."""
        watchdog = self._watchdog
        if watchdog is not None and not watchdog.expired():
            watchdog.reschedule(None if held else asyncio.get_running_loop().time() + self.stall_timeout_s)
