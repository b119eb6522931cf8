"""On-demand fetching: whether a camera's upstream should be open, and waiting for that to change."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable


class Demand:
    """Says whether a camera is wanted, and waits for that to change.

    Wanted: always (``always_on``), while ``interest()`` is above zero, or until a hold
    runs out (``hold(seconds)``: the linger after the last viewer, or a snapshot request).
    ``interest`` counts who watches (``Camera.interest``); whoever changes that count
    calls ``changed()``.

    ``wait(wanted)`` returns once that answer is ``wanted``. It sleeps on an event, with a
    deadline only while a hold is running out, so a camera nobody watches costs no CPU:
    no wait ever re-checks in a loop. Times are the running event loop's clock (seconds).
    """

    def __init__(self, interest: Callable[[], int], *, always_on: bool = False) -> None:
        self.always_on = always_on
        self._interest = interest
        self._until = 0.0  # loop time until which a hold keeps the camera wanted
        self._changed = asyncio.Event()

    def changed(self) -> None:
        """Something that decides demand changed (a viewer came or went): re-check it."""
        self._changed.set()

    def hold(self, seconds: float) -> None:
        """Keep the camera wanted for at least ``seconds`` from now, viewers or not."""
        self._until = max(self._until, asyncio.get_running_loop().time() + seconds)
        self._changed.set()

    def wanted(self) -> bool:
        """True while the camera should fetch from its upstream."""
        return self.always_on or self._interest() > 0 or asyncio.get_running_loop().time() < self._until

    async def wait(self, wanted: bool) -> None:
        """Return once ``wanted()`` is ``wanted``."""
        while self.wanted() is not wanted:
            self._changed.clear()
            # Only a hold running out changes demand without an event; its end is in the
            # future here (the hold is what keeps the camera wanted).
            holding = not wanted and not self.always_on and not self._interest()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(self._until if holding else None):
                    await self._changed.wait()
