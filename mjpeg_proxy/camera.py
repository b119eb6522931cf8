"""The Camera: one source, one hub, and the single fetch loop between them."""

from __future__ import annotations

import asyncio
import collections
import enum
import logging

from mjpeg_proxy.backoff import Backoff
from mjpeg_proxy.config import CameraConfig
from mjpeg_proxy.errors import AuthError, SourceError, Stalled, UpstreamUnavailable
from mjpeg_proxy.hub import FrameHub
from mjpeg_proxy.sources.base import Source

log = logging.getLogger(__name__)

BACKOFF_S = (1.0, 60.0)
"""First and largest step of the retry delay after an error, in seconds."""
AUTH_BACKOFF_S = (120.0, 600.0)
"""The same after refused credentials: many upstreams lock an account after a handful
of failed logins."""
MIN_STALL_TIMEOUT_S = 10.0
"""A camera is stalled after this many seconds without a frame (or three frame
intervals, if longer)."""


class CameraState(enum.StrEnum):
    """What a status page says about a camera."""

    STARTING = "starting"  # no frame yet
    LIVE = "live"  # frames arriving
    STALLED = "stalled"  # connected, but no complete frame within the stall timeout
    OFFLINE = "offline"  # upstream unreachable, erroring, or sending bad data
    AUTH_FAILED = "auth_failed"  # upstream refused the credentials
    FORBIDDEN = "forbidden"  # credentials lack rights to this camera
    NOT_FOUND = "not_found"  # upstream does not know this camera


_STATE_BY_ERROR = {
    "auth_failed": CameraState.AUTH_FAILED,
    "forbidden": CameraState.FORBIDDEN,
    "not_found": CameraState.NOT_FOUND,
    "stalled": CameraState.STALLED,
}


class Camera:
    """Runs one fetch loop from ``source`` into ``hub``, however many viewers watch.

    Errors (``SourceError``) back off exponentially with jitter in steps of 1 s doubling
    up to 60 s, each delay drawn from the upper half of its step (so 0.5-1 s first);
    after an ``AuthError`` the steps go from 120 s to 10 min (so at least a minute
    between failed logins). A source that yields no frame for
    ``stall_timeout_s`` seconds (default: the larger of 10 s and three frame intervals)
    is stalled and restarted the same way. Each burst of errors is logged once when it
    starts and once when it ends.
    """

    def __init__(
        self,
        config: CameraConfig,
        source: Source,
        hub: FrameHub,
        *,
        stall_timeout_s: float | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self.hub = hub
        self.stall_timeout_s = stall_timeout_s or config.stall_timeout or max(MIN_STALL_TIMEOUT_S, 3.0 / config.fps)
        self.state = CameraState.STARTING
        self.frames_received = 0
        self.errors: collections.Counter[str] = collections.Counter()
        self.last_error: str | None = None
        self.viewers_timed_out = 0
        """Viewers closed because their connection took no data for ``write_timeout`` seconds."""
        self._backoff = backoff or Backoff(*BACKOFF_S)
        self._auth_backoff = Backoff(*AUTH_BACKOFF_S)
        self._failures_in_burst = 0

    @property
    def id(self) -> str:
        """The camera's id from the configuration."""
        return self.config.id

    async def run(self) -> None:
        """Fetch for ever: frames go to the hub, errors to backoff. Ends only when cancelled."""
        while True:
            try:
                await self._pump()
                raise UpstreamUnavailable("the upstream ended its stream")
            except SourceError as error:
                delay = self._failed(error)
            except Exception as error:  # a bug in a source must not end the camera
                log.exception("camera %s: unexpected error in source", self.id)
                delay = self._failed(UpstreamUnavailable(f"internal error: {type(error).__name__}"))
            await asyncio.sleep(delay)

    async def _pump(self) -> None:
        frames = self.source.frames()
        try:
            while True:
                try:
                    async with asyncio.timeout(self.stall_timeout_s):
                        frame = await anext(frames)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise Stalled(f"no complete frame for {self.stall_timeout_s:g} s") from None
                self.hub.publish(frame)
                self.frames_received += 1
                if self.state is not CameraState.LIVE:
                    self._recovered()
        finally:
            aclose = getattr(frames, "aclose", None)  # async generators hold resources until closed
            if aclose is not None:
                await aclose()

    def _failed(self, error: SourceError) -> float:
        self.errors[error.kind] += 1
        self.last_error = str(error)
        previous, self.state = self.state, _STATE_BY_ERROR.get(error.kind, CameraState.OFFLINE)
        if isinstance(error, Stalled):
            # The stall itself took stall_timeout_s: reconnect at once, and keep the error
            # backoff as it was, so a camera that comes back is seen without delay.
            delay = 0.0
        elif isinstance(error, AuthError):
            delay = error.retry_after_s if error.retry_after_s is not None else self._auth_backoff.next_delay()
        else:
            self._auth_backoff.reset()
            delay = self._backoff.next_delay()
        self._failures_in_burst += 1
        # One line when a burst starts or the state changes; the rest of a burst at debug level.
        level = logging.WARNING if self._failures_in_burst == 1 or self.state != previous else logging.DEBUG
        retry = f"retrying in {delay:.1f} s" if delay else "reconnecting"
        log.log(level, "camera %s: %s [%s]; %s", self.id, error, self.state, retry)
        return delay

    def _recovered(self) -> None:
        if self._failures_in_burst:
            log.info("camera %s: live again after %d failed attempts", self.id, self._failures_in_burst)
        else:
            log.info("camera %s: live", self.id)
        self.state = CameraState.LIVE
        self._failures_in_burst = 0
        self._backoff.reset()
        self._auth_backoff.reset()
