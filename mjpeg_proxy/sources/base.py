"""What every source offers the Camera: an async iterator of frames."""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

from mjpeg_proxy.camera.frame import Frame


class Source(ABC):
    """One upstream protocol for one camera; knows nothing about viewers.

    ``frames()`` yields complete JPEG frames for as long as the upstream gives them
    and raises a ``mjpeg_proxy.camera.errors.SourceError`` subclass when it cannot. It does
    not retry: the Camera calls ``frames()`` again after its backoff.
    """

    upstream_requests: int = 0
    """Requests this source has made to its upstream (HTTP requests; logins not included)."""
    on_held_back: Callable[[bool], None] | None = None
    """Told True when the source starts waiting for its turn at its upstream (the proxy's
    own cap on requests to a host), False when it has it: the Camera's stall watchdog
    does not count that wait."""

    @abstractmethod
    def frames(self) -> AsyncIterator[Frame]:
        """Yield frames as they arrive; raise ``SourceError`` on failure."""

    async def close(self) -> None:  # noqa: B027 - most sources hold nothing to release
        """Release what the source holds (sessions, connections)."""

    @contextlib.contextmanager
    def held_back(self) -> Iterator[None]:
        """For the block, the source waits for its turn at its upstream (``on_held_back``)."""
        if self.on_held_back is not None:
            self.on_held_back(True)
        try:
            yield
        finally:
            if self.on_held_back is not None:
                self.on_held_back(False)


class Pacer:
    """Ticks at a steady rate: ``await tick()`` returns on a grid of 1/``fps`` seconds.

    A tick whose slot has passed (because the work between ticks took too long) is
    skipped, never made up, so the rate never rises above ``fps`` and an overloaded
    upstream is never asked back-to-back. ``clock`` gives monotonic seconds and ``sleep``
    waits seconds (defaults ``time.monotonic`` and ``asyncio.sleep``).
    """

    def __init__(
        self,
        fps: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval_s = 1.0 / fps
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None
        self._last: float | None = None  # the slot of the latest tick

    def restart(self) -> None:
        """Let the next tick start a new grid after a pause (a reconnect, or waking from idle).

        It starts at once if a whole interval has passed since the last tick, instead of
        waiting for the old grid's next slot. Ticks stay an interval apart.
        """
        if self._last is not None and self._clock() - self._last >= self.interval_s:
            self._next = None

    async def tick(self) -> None:
        """Wait for the next slot of the grid (the first one is now)."""
        now = self._clock()
        if self._next is None:
            self._next = now
        elif now > self._next:
            missed = int((now - self._next) / self.interval_s) + 1
            self._next += missed * self.interval_s
        await self._sleep(self._next - now)
        self._last = self._next
        self._next += self.interval_s
