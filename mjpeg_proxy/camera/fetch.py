"""The fetch loop: a camera's own source, through a stall watchdog and backoff, to its sink.

``FetchLoop`` is how a camera gets its frames today (a ``feed.Feed``). It opens the
source, hands each frame to the ``feed.FrameSink`` (the Camera: state, hub, counters,
input rate), turns each failure into a state and a pause (``StateTracker``), shows the
offline picture when due during that pause (``OfflinePicture.show``), and opens the
source again.
"""

from __future__ import annotations

import asyncio
import logging

from mjpeg_proxy.camera.errors import SourceError, Stalled, UpstreamUnavailable
from mjpeg_proxy.camera.feed import FrameSink
from mjpeg_proxy.camera.offline import OfflinePicture
from mjpeg_proxy.camera.source import Source
from mjpeg_proxy.camera.state import StateTracker
from mjpeg_proxy.camera.stats import CameraStats
from mjpeg_proxy.camera.timing import Clock

log = logging.getLogger(__name__)


class FetchLoop:
    """Fetches from ``source`` into ``sink`` until cancelled, retrying after every failure.

    A source that yields no frame for ``stall_timeout_s`` seconds is stalled
    (``Stalled``) and opened again; the watchdog stops while the source waits for its
    turn at its upstream (``Source.on_held_back``). A source's iterator is always closed
    before the next is opened. An exception other than ``SourceError`` (a bug in a
    source) is logged and counted as ``UpstreamUnavailable``: it never ends the loop.
    Each error is counted in ``stats`` by its ``kind``; the pauses between attempts are
    slept on ``clock``.
    """

    def __init__(
        self,
        source: Source,
        sink: FrameSink,
        tracker: StateTracker,
        offline: OfflinePicture,
        stats: CameraStats,
        *,
        stall_timeout_s: float,
        clock: Clock,
    ) -> None:
        self.source = source
        self.stall_timeout_s = stall_timeout_s
        self._sink = sink
        self._stats = stats
        self._tracker = tracker
        self._offline = offline
        self._clock = clock
        self._watchdog: asyncio.Timeout | None = None  # the stall watchdog of the frame awaited

    @property
    def upstream_requests(self) -> int:
        """Requests made to the upstream so far (``Source.upstream_requests``)."""
        return self.source.upstream_requests

    async def close(self) -> None:
        """Close the source (``Source.close``)."""
        await self.source.close()

    async def run(self) -> None:
        """Fetch for ever, first waiting out a retry still due from before; ends only when cancelled."""
        wait = self._tracker.retry_wait_s()
        if wait:
            await self._pause(wait)
        while True:
            try:
                await self._pump()
                raise UpstreamUnavailable("the upstream ended its stream")
            except SourceError as error:
                delay = self._failed(error)
            except Exception as error:  # a bug in a source must not end the camera
                log.exception("camera %s: unexpected error in source", self._tracker.name)
                delay = self._failed(UpstreamUnavailable(f"internal error: {type(error).__name__}"))
            await self._pause(delay)

    def _failed(self, error: SourceError) -> float:
        self._stats.errors[error.kind] += 1
        self._stats.last_error = str(error)
        return self._tracker.failed(error)

    async def _pause(self, delay: float) -> None:
        """Sleep ``delay`` seconds between attempts, showing the offline picture when it is due.

        Due as ``OfflinePicture.due_in`` says: a brief reconnect keeps the last good picture
        on screen until it is ``stall_timeout_s`` old.
        """
        until_due = self._offline.due_in(self.stall_timeout_s)
        if until_due <= delay:
            if until_due:
                await self._clock.sleep(until_due)
                delay -= until_due
            await self._offline.show()
        await self._clock.sleep(delay)

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
