"""The Camera: one source, one hub, and the single fetch loop between them."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
import time
from collections.abc import Iterator

from mjpeg_proxy.camera.backoff import Backoff
from mjpeg_proxy.camera.demand import Demand
from mjpeg_proxy.camera.errors import AuthError, SourceError, Stalled, UpstreamUnavailable
from mjpeg_proxy.camera.frame import Frame
from mjpeg_proxy.camera.hub import FrameHub, Subscriber
from mjpeg_proxy.camera.stats import CameraStats
from mjpeg_proxy.config import CameraConfig
from mjpeg_proxy.pictures.drawing import ago_text, jpeg_size, render_placeholder
from mjpeg_proxy.pictures.fonts import TextFonts
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
SNAPSHOT_WAIT_S = 5.0
"""How long, in seconds, a snapshot request waits for a frame from a camera that has
none yet (longer for a camera slower than one frame in 2.5 s; see ``snapshot_wait_s``)."""
INPUT_FPS_WINDOW_S = 10.0
"""The window, in seconds, over which the input frame rate is measured."""
OFFLINE_REFRESH_S = 10.0
"""How often the offline picture is drawn again (its "since ... ago" moves on) during a
long pause between attempts, in seconds."""


class CameraState(enum.StrEnum):
    """What a status page says about a camera."""

    IDLE = "idle"  # nobody watching: the upstream is closed (on-demand fetching)
    STARTING = "starting"  # no frame yet
    LIVE = "live"  # frames arriving
    STALLED = "stalled"  # connected, but no complete frame within the stall timeout
    OFFLINE = "offline"  # upstream unreachable, erroring, or sending bad data
    AUTH_FAILED = "auth_failed"  # upstream refused the credentials
    FORBIDDEN = "forbidden"  # credentials lack rights to this camera
    NOT_FOUND = "not_found"  # upstream does not know this camera


ERROR_STATES = frozenset({"stalled", "offline", "auth_failed", "forbidden", "not_found"})
"""States in which viewers see the offline picture, once the last frame is
``stall_timeout`` old (at once in FINAL_STATES), and snapshots then answer 503."""
FINAL_STATES = frozenset({"auth_failed", "forbidden", "not_found"})
"""Error states that a retry is unlikely to clear soon."""

REASONS = {
    "stalled": "The camera sends no pictures",
    "offline": "The camera cannot be reached",
    "auth_failed": "The camera refused the proxy's login",
    "forbidden": "The proxy's account may not view this camera",
    "not_found": "The camera is unknown to its upstream",
}
"""Each error state in plain words, for the offline picture and for snapshots' 503."""

_STATE_BY_ERROR = {
    "auth_failed": CameraState.AUTH_FAILED,
    "forbidden": CameraState.FORBIDDEN,
    "not_found": CameraState.NOT_FOUND,
    "stalled": CameraState.STALLED,
}


class Camera:
    """Runs one fetch loop from ``source`` into ``hub``, however many viewers watch.

    On demand: the loop runs only while viewers watch (``viewer()``), and for
    ``linger_seconds`` after the last one leaves or a snapshot was asked for
    (``touch()``); the state is ``idle`` otherwise. ``always_on`` keeps it running.

    In an error state (``ERROR_STATES``) viewers get the offline picture, rendered at the
    size of the last frame, saying why and since when: at once after a refusal or before
    any frame, else once the last frame is ``stall_timeout`` old. The next frame replaces it.

    Errors (``SourceError``) back off exponentially with jitter in steps of 1 s doubling
    up to 60 s, each delay drawn from the upper half of its step (so 0.5-1 s first);
    after an ``AuthError`` the steps go from 120 s to 10 min (so at least a minute
    between failed logins). A source that yields no frame for
    ``stall_timeout_s`` seconds (default: the larger of 10 s and three frame intervals)
    is stalled and restarted the same way. Each burst of errors is logged once when it
    starts and once when it ends. ``fonts`` draw the offline picture's text (default:
    ``fonts.shared_fonts()``). An error that names its wait
    (``retry_after_s``, such as the upstream's ``Retry-After``) waits that long instead, plus
    up to a tenth more.
    """

    def __init__(
        self,
        config: CameraConfig,
        source: Source,
        hub: FrameHub,
        *,
        stall_timeout_s: float | None = None,
        backoff: Backoff | None = None,
        fonts: TextFonts | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self.hub = hub
        self.stall_timeout_s = stall_timeout_s or config.stall_timeout or max(MIN_STALL_TIMEOUT_S, 3.0 / config.fps)
        self.state = CameraState.IDLE
        self.state_since = time.time()
        """When the state last changed, in seconds since the epoch."""
        self.stats = CameraStats()
        self.last_frame: Frame | None = None
        """The latest frame from the upstream (never an offline picture)."""
        self._backoff = backoff or Backoff(*BACKOFF_S)
        self._fonts = fonts
        self._auth_backoff = Backoff(*AUTH_BACKOFF_S)
        self._failures_in_burst = 0
        self._arrivals: collections.deque[float] = collections.deque()
        # The current error and the next attempt outlive an idle period, so a viewer
        # arriving cannot cut short the wait after a refused login (account lockouts).
        self._error_state: CameraState | None = None
        self.error_since = 0.0
        """When the latest error state began, in seconds since the epoch (kept across idle periods)."""
        self._retry_at = 0.0  # loop time of the next attempt after an error
        self._watchdog: asyncio.Timeout | None = None  # the stall watchdog of the frame awaited
        self._upstream_opened = 0.0  # monotonic time the upstream was last opened (each reconnection too)
        self._redraw: asyncio.Task[None] | None = None
        self._offline: tuple[tuple[object, ...], Frame] | None = None  # (what it says, the picture)
        self._drawing: asyncio.Task[Frame] | None = None
        self.demand = Demand(lambda: self.hub.viewers, always_on=config.always_on)

    def reconfigure(self, config: CameraConfig, source: Source) -> None:
        """Take a changed configuration and its new ``source`` (a reload), while the fetch
        loop is stopped. The hub, its viewers and the counters stay; the error and backoff
        state start afresh (the change may be the fix: a new password, a new URL).
        """
        self.config, self.source = config, source
        self.stall_timeout_s = config.stall_timeout or max(MIN_STALL_TIMEOUT_S, 3.0 / config.fps)
        self.demand.always_on = config.always_on
        self.last_frame = None
        self._error_state = None
        self._retry_at = 0.0
        self._failures_in_burst = 0
        self._backoff.reset()
        self._auth_backoff.reset()
        self._offline = None

    @property
    def id(self) -> str:
        """The camera's id from the configuration."""
        return self.config.id

    @property
    def input_fps(self) -> float:
        """Frames received per second over the last ``INPUT_FPS_WINDOW_S`` seconds, or
        since the upstream was opened when that is more recent (at least 1 s).
        """
        now = time.monotonic()
        self._forget_arrivals(now)
        if not self._arrivals:
            return 0.0
        return len(self._arrivals) / min(INPUT_FPS_WINDOW_S, max(1.0, now - self._upstream_opened))

    @property
    def frame_age_s(self) -> float | None:
        """Seconds since the latest frame arrived from the upstream; None before the first."""
        return None if self.last_frame is None else time.monotonic() - self.last_frame.received_monotonic

    @property
    def upstream_requests(self) -> int:
        """Requests made to the upstream so far (see ``Source.upstream_requests``)."""
        return self.source.upstream_requests

    @contextlib.contextmanager
    def viewer(self, subscriber: Subscriber | None = None) -> Iterator[None]:
        """Count a viewer of the hub (see ``FrameHub.viewer``) and fetch while it watches."""
        with self.hub.viewer(subscriber):
            self.demand.changed()
            try:
                yield
            finally:
                self.demand.hold(self.config.linger_seconds)

    @property
    def snapshot_wait_s(self) -> float:
        """Seconds a snapshot request waits for a first frame: ``SNAPSHOT_WAIT_S``, or two
        frame intervals for a slower camera (a 0.1 fps camera may be 10 s from its next
        request slot).
        """
        return max(SNAPSHOT_WAIT_S, 2.0 / self.config.fps)

    def touch(self) -> None:
        """Someone asked for a snapshot: fetch for ``linger_seconds``, and at least for
        ``snapshot_wait_s``, from now.
        """
        self.demand.hold(max(self.config.linger_seconds, self.snapshot_wait_s))

    async def run(self) -> None:
        """Fetch while wanted, for ever: frames go to the hub, errors to backoff. Ends
        only when cancelled.
        """
        while True:
            await self.demand.wait(True)
            wait = self._retry_wait_s()
            if wait and self._error_state is not None:
                self._set_state(self._error_state)
                log.info("camera %s: wanted (%d watching); next attempt in %.1f s", self.id, self.hub.viewers, wait)
            else:
                self._set_state(CameraState.STARTING)
                log.info("camera %s: starting (%d watching)", self.id, self.hub.viewers)
            fetch = asyncio.create_task(self._fetch(), name=f"camera {self.id} fetch")
            try:
                await self.demand.wait(False)
            finally:
                tasks = [task for task in (fetch, self._redraw, self._drawing) if task is not None]
                for task in tasks:
                    task.cancel()
                await asyncio.wait(tasks)  # unlike `await fetch`, never swallows our own cancellation
                # Also when cancelled (a reload stops the camera): a viewer arriving later
                # must not see a picture from now, nor a status page "live".
                self.hub.forget()
                self._set_state(CameraState.IDLE)
            log.info("camera %s: idle (no viewer for %g s); upstream closed", self.id, self.config.linger_seconds)

    async def _fetch(self) -> None:
        wait = self._retry_wait_s()
        if wait:
            await self._offline_pause(wait)
        while True:
            try:
                await self._pump()
                raise UpstreamUnavailable("the upstream ended its stream")
            except SourceError as error:
                delay = self._failed(error)
            except Exception as error:  # a bug in a source must not end the camera
                log.exception("camera %s: unexpected error in source", self.id)
                delay = self._failed(UpstreamUnavailable(f"internal error: {type(error).__name__}"))
            await self._offline_pause(delay)

    def _retry_wait_s(self) -> float:
        """Seconds until the attempt after the latest error is due; 0 when none is pending."""
        if self._error_state is None:
            return 0.0
        return max(0.0, self._retry_at - asyncio.get_running_loop().time())

    async def _offline_pause(self, delay: float) -> None:
        """Sleep ``delay`` seconds between attempts, showing the offline picture when due:
        at once after a refusal (auth_failed, forbidden, not_found) or while viewers have
        no camera picture (none yet, or the offline picture already); else once the
        picture they have is ``stall_timeout`` old, so a brief reconnect keeps the last
        good picture on screen.
        """
        latest = self.hub.latest
        if self.state in FINAL_STATES or latest is None or latest.frame.placeholder:
            await self.show_offline()
        else:
            until_due = self.stall_timeout_s - (time.monotonic() - latest.frame.received_monotonic)
            if until_due <= delay:
                await asyncio.sleep(until_due)
                delay -= until_due
                await self.show_offline()
        await asyncio.sleep(delay)

    def redraw_offline(self) -> None:
        """Draw the offline picture again if viewers have had it for ``OFFLINE_REFRESH_S``
        seconds, so its "since ... ago" moves on during a long pause between attempts.
        Called periodically (``streaming.keep_streams``); the drawing runs in a task.
        """
        latest = self.hub.latest
        if (
            self.hub.viewers
            and self.state in ERROR_STATES
            and latest is not None
            and latest.frame.placeholder
            and time.monotonic() - latest.frame.received_monotonic >= OFFLINE_REFRESH_S
            and (self._redraw is None or self._redraw.done())
        ):
            self._redraw = asyncio.create_task(
                self.show_offline(over_frames=False), name=f"camera {self.id} offline picture"
            )

    async def offline_picture(self) -> Frame | None:
        """The offline picture as it reads now: the camera's name, the current error state in
        plain words (``REASONS``) and since when, at the last frame's size. None when the
        camera is not in an error state.

        Drawn (in a thread) only when its text has changed since the last drawing; callers
        that come while it is being drawn share that drawing.
        """
        if self.state not in ERROR_STATES:
            return None
        now = time.time()
        text = (self.config.display_name, REASONS[self.state], self.error_since, ago_text(now - self.error_since))
        if self._offline is not None and self._offline[0] == text:
            return self._offline[1]
        if self._drawing is None or self._drawing.done():
            self._drawing = asyncio.create_task(self._draw_offline(text, now), name=f"camera {self.id} drawing")
        return await asyncio.shield(self._drawing)

    async def _draw_offline(self, text: tuple[str, str, float, str], now: float) -> Frame:
        name, reason, since, _ = text
        size = (jpeg_size(self.last_frame.jpeg) if self.last_frame else None) or self.config.picture_size
        jpeg = await asyncio.to_thread(render_placeholder, name, reason, since, size, now, fonts=self._fonts)
        frame = Frame(jpeg, placeholder=True)
        self._offline = (text, frame)
        return frame

    async def show_offline(self, *, over_frames: bool = True) -> None:
        """Publish the offline picture as it reads now (``offline_picture``) unless viewers
        have that very picture already; with ``over_frames=False`` only where viewers have
        no camera frame (a frame may come while the picture is drawn). A new viewer of an
        offline camera calls this first, so its first picture does not say "5 s ago" when
        it has been an hour.
        """
        frame = await self.offline_picture()
        latest = self.hub.latest
        if frame is None or self.state not in ERROR_STATES:
            return
        if latest is not None and (latest.frame.jpeg is frame.jpeg or not (over_frames or latest.frame.placeholder)):
            return
        self.hub.publish(frame)

    async def _pump(self) -> None:
        self._upstream_opened = time.monotonic()
        self._arrivals.clear()  # the rate is of this connection's frames
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
                if self.state is not CameraState.LIVE:
                    self._recovered()
                self.hub.publish(frame)
                self.last_frame = frame
                self.stats.frames_received += 1
                self.stats.frames_trimmed += frame.trimmed
                self._arrivals.append(frame.received_monotonic)
                self._forget_arrivals(frame.received_monotonic)
        finally:
            aclose = getattr(frames, "aclose", None)  # async generators hold resources until closed
            if aclose is not None:
                await aclose()

    def _held_back(self, held: bool) -> None:
        """The source waits for its turn at its upstream (``held``), or has it: the stall
        watchdog stops for the wait, and starts again in full.
        """
        watchdog = self._watchdog
        if watchdog is not None and not watchdog.expired():
            watchdog.reschedule(None if held else asyncio.get_running_loop().time() + self.stall_timeout_s)

    def _forget_arrivals(self, now: float) -> None:
        while self._arrivals and self._arrivals[0] < now - INPUT_FPS_WINDOW_S:
            self._arrivals.popleft()

    def _set_state(self, state: CameraState) -> None:
        if state is not self.state:
            self.state, self.state_since = state, time.time()

    def _failed(self, error: SourceError) -> float:
        self.stats.errors[error.kind] += 1
        self.stats.last_error = str(error)
        previous = self.state
        self._set_state(_STATE_BY_ERROR.get(error.kind, CameraState.OFFLINE))
        if self.state is not self._error_state:
            self._error_state, self.error_since = self.state, self.state_since
        if isinstance(error, Stalled):
            # The stall itself took stall_timeout_s: reconnect at once, and keep the error
            # backoff as it was, so a camera that comes back is seen without delay.
            delay = 0.0
        else:
            if isinstance(error, AuthError):
                backoff = self._auth_backoff
            else:
                backoff = self._backoff
                self._auth_backoff.reset()
            # A wait the upstream named (Retry-After, a throttled shared login) replaces the step.
            delay = backoff.next_delay() if error.retry_after_s is None else backoff.at_least(error.retry_after_s)
        self._failures_in_burst += 1
        # One line when a burst starts or the state changes; the rest of a burst at debug level.
        level = logging.WARNING if self._failures_in_burst == 1 or self.state != previous else logging.DEBUG
        retry = f"retrying in {delay:.1f} s" if delay else "reconnecting"
        log.log(level, "camera %s: %s [%s]; %s", self.id, error, self.state, retry)
        self._retry_at = asyncio.get_running_loop().time() + delay
        return delay

    def _recovered(self) -> None:
        if self._failures_in_burst:
            log.info("camera %s: live again after %d failed attempts", self.id, self._failures_in_burst)
        else:
            log.info("camera %s: live", self.id)
        self._set_state(CameraState.LIVE)
        self._error_state = None
        self._failures_in_burst = 0
        self._backoff.reset()
        self._auth_backoff.reset()
