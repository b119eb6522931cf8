"""The Camera: one camera's parts put together, and its lifecycle.

A camera's frames enter through its feed and leave through its hub::

    feed (FetchLoop: source -> watchdog -> backoff) -> Camera.received -> Camera.publish -> FrameHub -> viewers

The parts, one job each: ``demand.Demand`` (whether to fetch: viewers, linger, always on),
``fetch.FetchLoop`` (the source's frames, stalls and retries), ``state.StateTracker``
(state, error and backoff), ``offline.OfflinePicture`` (what viewers see in an error
state), ``stats`` (counters viewers update too, the input rate), all timed by one
``timing.CameraTiming``.

The seams for cluster mode (a follower replica gets a camera's frames from the replica
that fetches it), each one spot:

- Where frames come from: the ``feed.Feed``, made in ``Camera.make_feed`` (a
  ``FetchLoop`` today). A feed calls ``opened()`` and ``received(frame)`` (the
  ``feed.FrameSink``); ``received`` makes the camera live. Everything downstream (hub,
  viewers, offline picture, counters, demand) is the same whatever the feed.
- Where pictures go: ``Camera.publish`` is the one way anything reaches the hub, camera
  frames and offline pictures (``Frame.placeholder``) alike, so an owner replica hands
  every picture on from there.
- Who wants the camera: ``Camera.interest`` (this process's viewers today), which
  ``Demand`` asks; cluster mode adds the other replicas' interest there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator

from mjpeg_proxy.camera.demand import Demand
from mjpeg_proxy.camera.feed import Feed
from mjpeg_proxy.camera.fetch import FetchLoop
from mjpeg_proxy.camera.frame import Frame
from mjpeg_proxy.camera.hub import FrameHub, Subscriber
from mjpeg_proxy.camera.offline import OfflinePicture
from mjpeg_proxy.camera.scaled import Resize, ScaledStreams
from mjpeg_proxy.camera.source import Source
from mjpeg_proxy.camera.state import CameraState, StateTracker
from mjpeg_proxy.camera.stats import CameraStats, InputRate
from mjpeg_proxy.camera.timing import CameraTiming
from mjpeg_proxy.config import CameraConfig
from mjpeg_proxy.pictures.fonts import TextFonts
from mjpeg_proxy.pictures.resize import resize_jpeg

log = logging.getLogger(__name__)

FeedWrapper = Callable[["Camera", Feed], Feed]
"""Makes a camera's feed around its own fetch loop (``Camera(wrap_feed=)``): cluster mode's."""


class Camera:
    """Runs one feed from ``source`` into ``hub``, however many viewers watch.

    On demand: the feed runs only while viewers watch (``viewer()``), and for
    ``linger_seconds`` after the last one leaves or a snapshot was asked for
    (``touch()``); the state is ``idle`` otherwise. ``always_on`` keeps it running.

    In an error state (``CameraState.is_error``) viewers get the offline picture
    (``offline``): at once after a refusal or before any frame, else once the last frame
    is ``stall_timeout_s`` old. The next frame replaces it. The state, retries and their
    backoff: ``tracker`` (a ``StateTracker``); stalls: ``feed`` (a ``FetchLoop`` unless
    ``make_feed`` says otherwise). ``timing`` holds the delays and the clock
    (default: ``CameraTiming()``); ``fonts`` draw the offline picture's text (default:
    ``fonts.shared_fonts()``). ``scaled`` holds the streams at the widths viewers ask for
    (``?width=``), resized by ``resize`` (default: ``resize_jpeg`` with its default cap).
    """

    def __init__(
        self,
        config: CameraConfig,
        source: Source,
        hub: FrameHub,
        *,
        timing: CameraTiming | None = None,
        fonts: TextFonts | None = None,
        wrap_feed: FeedWrapper | None = None,
        resize: Resize = resize_jpeg,
    ) -> None:
        self.config = config
        self.hub = hub
        self._timing = timing or CameraTiming()
        self.stats = CameraStats()
        self.scaled = ScaledStreams(config.id, hub, self.stats, resize)
        self.last_frame: Frame | None = None
        """The latest frame from the upstream (never an offline picture)."""
        self.tracker = StateTracker(config.id, self._timing)
        self.offline = OfflinePicture(
            config, hub, self.tracker, self.publish, lambda: self.last_frame, self._timing, fonts
        )
        self.demand = Demand(self.interest, always_on=config.always_on)
        self._rate = InputRate(self._timing.input_fps_window_s, self._timing.clock.monotonic)
        self.tap: Callable[[Frame], None] | None = None
        """Also told every picture ``publish`` hands to the viewers (a cluster owner's bus)."""
        self.interest_elsewhere = 0
        """Others that want the camera's frames from here (other replicas, told by a cluster feed)."""
        self.viewers_elsewhere = 0
        """Viewers of the camera on other replicas, as last told by a cluster feed."""
        self._wrap_feed = wrap_feed
        self.feed = self.make_feed(source)

    def make_feed(self, source: Source) -> Feed:
        """The feed of this camera's frames: its own ``source``, fetched, as ``wrap_feed`` wraps it (cluster mode)."""
        local = self.fetch_loop(source)
        return local if self._wrap_feed is None else self._wrap_feed(self, local)

    def fetch_loop(self, source: Source) -> FetchLoop:
        """A fetch loop of ``source``'s frames into this camera: stalls, retries, offline picture and all."""
        timing = self._timing
        return FetchLoop(
            source,
            self,
            self.tracker,
            self.offline,
            self.stats,
            stall_timeout_s=timing.stall_timeout_for(self.config),
            clock=timing.clock,
        )

    def reconfigure(self, config: CameraConfig, source: Source) -> None:
        """Take a changed configuration and its new ``source`` (a reload), while the feed is stopped.

        The hub, its viewers and the counters stay; the error and backoff state start
        afresh (the change may be the fix: a new password, a new URL).
        """
        self.config = config
        self.demand.always_on = config.always_on
        self.last_frame = None
        self.tracker.reset()
        self.offline.reconfigure(config)
        self.feed = self.make_feed(source)

    @property
    def id(self) -> str:
        """The camera's id from the configuration."""
        return self.config.id

    @property
    def state(self) -> CameraState:
        """The camera's state now."""
        return self.tracker.state

    @property
    def state_since(self) -> float:
        """When the state last changed, in seconds since the epoch."""
        return self.tracker.since

    @property
    def error_since(self) -> float:
        """When the latest error state began, in seconds since the epoch (kept across idle periods)."""
        return self.tracker.error_since

    @property
    def input_fps(self) -> float:
        """Frames received per second over the last ``CameraTiming.input_fps_window_s`` (``InputRate``)."""
        return self._rate.per_second()

    @property
    def frame_age_s(self) -> float | None:
        """Seconds since the latest frame arrived from the upstream; None before the first."""
        last = self.last_frame
        return None if last is None else self._timing.clock.monotonic() - last.received_monotonic

    @property
    def upstream_requests(self) -> int:
        """Requests made to the upstream so far (``Feed.upstream_requests``)."""
        return self.feed.upstream_requests

    @property
    def snapshot_wait_s(self) -> float:
        """Seconds a snapshot request waits for a first frame (``CameraTiming.snapshot_wait_for``)."""
        return self._timing.snapshot_wait_for(self.config)

    @contextlib.contextmanager
    def viewer(self, subscriber: Subscriber | None = None, hub: FrameHub | None = None) -> Iterator[None]:
        """Count a viewer of the camera (see ``FrameHub.viewer``) and fetch while it watches.

        ``subscriber`` is handed the parts of ``hub``: the camera's own (the default), or
        a resized stream's (``scaled.rung``), whose viewers count as the camera's.
        """
        with contextlib.ExitStack() as stack:
            if hub is None or hub is self.hub:
                stack.enter_context(self.hub.viewer(subscriber))
            else:
                stack.enter_context(self.hub.viewer())
                stack.enter_context(hub.viewer(subscriber))
            self.demand.changed()
            try:
                yield
            finally:
                self.demand.hold(self.config.linger_seconds)

    def touch(self) -> None:
        """Someone asked for a snapshot: fetch for ``linger_seconds``, and at least ``snapshot_wait_s``, from now."""
        self.demand.hold(max(self.config.linger_seconds, self.snapshot_wait_s))

    def interest(self) -> int:
        """How many want the camera's frames now (``Demand`` fetches while above zero).

        Its viewers here, and ``interest_elsewhere`` (a cluster feed sets it, and calls
        ``demand.changed()`` when it changes).
        """
        return self.hub.viewers + self.interest_elsewhere

    def opened(self) -> None:
        """The feed opened the upstream: the input rate counts from now (``FrameSink``)."""
        self._rate.opened()

    def received(self, frame: Frame) -> None:
        """Take a frame from the upstream (``FrameSink``): the camera is live; publish the frame and count it."""
        if self.tracker.state is not CameraState.LIVE:
            self.tracker.recovered()
        self.publish(frame)
        self.last_frame = frame
        self.stats.frames_received += 1
        self.stats.frames_trimmed += frame.trimmed
        self._rate.arrived(frame.received_monotonic)

    def publish(self, frame: Frame) -> None:
        """Hand ``frame`` to the viewers: the one way anything reaches the hub.

        Camera frames (from ``received``) and offline pictures (``Frame.placeholder``,
        from ``offline``) alike; ``tap``, when set, is told each too.
        """
        self.hub.publish(frame)
        if self.tap is not None:
            self.tap(frame)

    async def run(self) -> None:
        """Run the feed while wanted, for ever; ends only when cancelled."""
        while True:
            await self.demand.wait(True)
            wait = self.tracker.wake()
            if wait:
                log.info("camera %s: wanted (%d watching); next attempt in %.1f s", self.id, self.hub.viewers, wait)
            else:
                log.info("camera %s: starting (%d watching)", self.id, self.hub.viewers)
            feed = asyncio.create_task(self.feed.run(), name=f"camera {self.id} feed")
            try:
                await self.demand.wait(False)
            finally:
                tasks = [feed, *self.offline.tasks()]
                for task in tasks:
                    task.cancel()
                await asyncio.wait(tasks)  # unlike `await feed`, never swallows our own cancellation
                # Also when cancelled (a reload stops the camera): a viewer arriving later
                # must not see a picture from now, nor a status page "live".
                self.hub.forget()
                self.scaled.forget()
                self.tracker.set(CameraState.IDLE)
            log.info("camera %s: idle (no viewer for %g s); upstream closed", self.id, self.config.linger_seconds)
