"""The camera core's timing: its delays and limits in one settings object, and its clock.

Tests give ``create_app`` a ``CameraTiming`` with short delays, or a ``Clock`` whose
``sleep`` records what it was asked for, instead of patching modules.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from mjpeg_proxy.config import CameraConfig

BACKOFF_S = (1.0, 60.0)
"""First and largest step, in seconds, of the retry delay after an upstream error."""
AUTH_BACKOFF_S = (120.0, 600.0)
"""The same after refused credentials: many upstreams lock an account after a handful of
failed logins."""


@dataclass(frozen=True, slots=True)
class Clock:
    """Where the camera core reads the time and waits.

    ``monotonic`` must count like ``time.monotonic`` (the clock of ``Frame.received_monotonic``
    and of asyncio's event loop), since it is compared with both.
    """

    wall: Callable[[], float] = time.time
    """Seconds since the Unix epoch: when a state began, the offline picture's "since"."""
    monotonic: Callable[[], float] = time.monotonic
    """Seconds on a clock that never jumps: frame ages, frame rates, retry times."""
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    """Waits the given seconds: the pauses between attempts after an error."""


@dataclass(frozen=True, slots=True)
class CameraTiming:
    """Delays and limits every camera uses, in seconds, and the ``clock`` it reads."""

    backoff_s: tuple[float, float] = BACKOFF_S
    """First and largest step of the retry delay after an error (``Backoff``)."""
    auth_backoff_s: tuple[float, float] = AUTH_BACKOFF_S
    """The same after refused credentials."""
    min_stall_timeout_s: float = 10.0
    """A camera is stalled after this long without a frame (or three frame intervals, if
    longer), unless its ``stall_timeout`` says otherwise."""
    snapshot_wait_s: float = 5.0
    """How long a snapshot request waits for a frame from a camera that has none yet (two
    frame intervals for a slower camera: ``snapshot_wait_for``)."""
    offline_refresh_s: float = 10.0
    """How often the offline picture is drawn again (its "since ... ago" moves on) during a
    long pause between attempts."""
    input_fps_window_s: float = 10.0
    """The window over which the input frame rate is measured."""
    clock: Clock = field(default_factory=Clock)
    """Where the time is read and the pauses are slept."""

    def stall_timeout_for(self, config: CameraConfig) -> float:
        """Seconds without a frame after which ``config``'s camera is stalled.

        Its ``stall_timeout``, else the larger of ``min_stall_timeout_s`` and three frame intervals.
        """
        return config.stall_timeout or max(self.min_stall_timeout_s, 3.0 / config.fps)

    def snapshot_wait_for(self, config: CameraConfig) -> float:
        """Seconds a snapshot request waits for a first frame of ``config``'s camera.

        ``snapshot_wait_s``, or two frame intervals for a slower camera (a 0.1 fps camera
        may be 10 s from its next request slot).
        """
        return max(self.snapshot_wait_s, 2.0 / config.fps)
