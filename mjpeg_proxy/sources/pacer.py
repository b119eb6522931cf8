"""Pacing: requests to an upstream on a steady grid of time."""

from __future__ import annotations

from mjpeg_proxy.camera.timing import Clock


class Pacer:
    """Ticks at a steady rate: ``await tick()`` returns on a grid of 1/``fps`` seconds.

    A tick whose slot has passed (because the work between ticks took too long) is
    skipped, never made up, so the rate never rises above ``fps`` and an overloaded
    upstream is never asked back-to-back. ``clock`` gives the time (its ``monotonic``
    seconds) and the waits (its ``sleep``).
    """

    def __init__(self, fps: float, clock: Clock | None = None) -> None:
        self.interval_s = 1.0 / fps
        clock = clock or Clock()
        self._clock = clock.monotonic
        self._sleep = clock.sleep
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


class RequestGap:
    """Keeps the starts of requests at least ``gap_s`` seconds apart, on ``clock``.

    For upstreams whose answer itself sets the pace (a long poll that waits for the next
    picture): the next request goes as soon as the answer is in, unless that answer came
    back within ``gap_s`` of the request (an error, a repeated picture), so a loop of such
    answers can never turn into a request flood.
    """

    def __init__(self, gap_s: float, clock: Clock | None = None) -> None:
        self.gap_s = gap_s
        self._clock = clock or Clock()
        self._last_start = -gap_s

    async def start(self) -> None:
        """Wait until ``gap_s`` has passed since the last start, then count this one as started."""
        await self._clock.sleep(self._last_start + self.gap_s - self._clock.monotonic())
        self._last_start = self._clock.monotonic()
