"""Camera: the fetch loop between a (scripted) source and the hub."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from mjpeg_proxy.camera.camera import Camera
from mjpeg_proxy.camera.errors import AuthError, BadFrame, ForbiddenError, NotFoundError, UpstreamUnavailable
from mjpeg_proxy.camera.frame import Frame
from mjpeg_proxy.camera.hub import FrameHub
from mjpeg_proxy.camera.source import Source
from mjpeg_proxy.camera.timing import CameraTiming, Clock
from mjpeg_proxy.config import CameraConfig
from mjpeg_proxy.sources.demo import DemoConfig

FRAMES_DIR = Path(__file__).parent / "data" / "frames" / "opencv-vtest-pets2009"
F1, F2, F3, F4 = ((FRAMES_DIR / f"frame_00{i}.jpg").read_bytes() for i in (1, 2, 3, 4))

HANG = object()
"""Script step: wait for ever (until cancelled), as an upstream that sends nothing."""

WAIT_S = 5.0
"""Upper bound on waiting for a condition; only reached when a test is failing."""


class ScriptedSource(Source):
    """A source whose n-th ``frames()`` call plays the n-th episode of its script.

    An episode is a list of steps: JPEG bytes are yielded as a Frame, an exception is
    raised, HANG waits for ever; running off the end of an episode ends the iterator.
    Calls beyond the script hang. ``log`` records the camera's state at the start of
    each call (``("call", state)``) and each time the camera asks for the next frame
    after one was yielded (``("next", state)``).
    """

    def __init__(self, *episodes: list) -> None:
        self.episodes = list(episodes)
        self.calls = 0
        self.started = 0
        self.closed = 0
        self.log: list[tuple[str, str]] = []
        self.probe: Callable[[], str] = lambda: "?"
        self._changed = asyncio.Event()

    def frames(self) -> AsyncIterator[Frame]:
        self.calls += 1
        episode = self.episodes[self.calls - 1] if self.calls <= len(self.episodes) else [HANG]
        self._notify()
        return self._play(episode)

    async def _play(self, episode: list) -> AsyncIterator[Frame]:
        self.started += 1
        self._record("call")
        try:
            for step in episode:
                if step is HANG:
                    await asyncio.Event().wait()
                elif isinstance(step, BaseException):
                    raise step
                else:
                    yield Frame(step)
                    self._record("next")
        finally:
            self.closed += 1
            self._notify()

    def _record(self, what: str) -> None:
        self.log.append((what, str(self.probe())))
        self._notify()

    def _notify(self) -> None:
        woken, self._changed = self._changed, asyncio.Event()
        woken.set()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT_S):
            while not predicate():
                await self._changed.wait()


class Published:
    """build_part for the hub that remembers every published camera frame as (seq, jpeg),
    and the offline pictures apart."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, bytes]] = []
        self.placeholders: list[Frame] = []

    def __call__(self, frame: Frame) -> tuple[bytes, bytes]:
        if frame.placeholder:
            self.placeholders.append(frame)
        else:
            self.frames.append((frame.seq, frame.jpeg))
        return frame.jpeg, frame.jpeg


ALWAYS_ON = CameraConfig(id="cam", source=DemoConfig(), fps=10, always_on=True)
FAST = CameraTiming(backoff_s=(0.001, 0.01))


class RecordedSleeps(list[float]):
    """A clock's ``sleep`` that records each delay asked for and returns at once."""

    async def __call__(self, delay: float) -> None:
        self.append(delay)
        await asyncio.sleep(0)


def make_camera(
    source: ScriptedSource,
    *,
    stall_timeout: float | None = None,
    backoff_s: tuple[float, float] = FAST.backoff_s,
    sleeps: RecordedSleeps | None = None,
) -> tuple[Camera, FrameHub, Published]:
    """A camera of ``source`` with the given stall timeout (seconds), first backoff steps,
    and a clock whose sleeps are recorded in ``sleeps`` (real sleeps if None)."""
    published = Published()
    hub = FrameHub(published)
    clock = Clock() if sleeps is None else Clock(sleep=sleeps)
    timing = dataclasses.replace(FAST, backoff_s=backoff_s, clock=clock)
    camera = Camera(dataclasses.replace(ALWAYS_ON, stall_timeout=stall_timeout), source, hub, timing=timing)
    source.probe = lambda: camera.state
    return camera, hub, published


@contextlib.asynccontextmanager
async def running(camera: Camera):
    """Run the camera's loop for the block, then cancel it; it must end only by that cancel."""
    task = asyncio.create_task(camera.run())
    try:
        yield task
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def next_part(hub: FrameHub, after_seq: int):
    """The next camera frame's part after ``after_seq`` (offline pictures are passed over)."""
    while True:
        part = await hub.next_part(after_seq, timeout_s=WAIT_S)
        assert part is not None, f"no frame after seq {after_seq} within {WAIT_S} s"
        if not part.frame.placeholder:
            return part
        after_seq = part.frame.seq


@pytest.fixture
def backoff_sleeps() -> RecordedSleeps:
    """The Camera's backoff sleeps (give it to ``make_camera``), which return at once instead of waiting."""
    return RecordedSleeps()


def camera_records(caplog, level: int) -> list[logging.LogRecord]:
    """The log records at ``level`` of the camera's fetching (not its on-demand start and stop lines)."""
    return [r for r in caplog.records if r.name in FETCH_LOGGERS and r.levelno == level]


FETCH_LOGGERS = ("mjpeg_proxy.camera.state", "mjpeg_proxy.camera.fetch")
"""The loggers of a camera's states and of its fetch loop."""


# --- frames ----------------------------------------------------------------------------


async def test_frames_reach_the_hub_in_order_and_camera_goes_live():
    source = ScriptedSource([F1, F2, F3, HANG])
    camera, hub, published = make_camera(source)
    assert camera.state == "idle"

    async with running(camera):
        part = await next_part(hub, 2)

        assert part.frame.seq == 3
        assert part.frame.jpeg == F3
        assert published.frames == [(1, F1), (2, F2), (3, F3)]
        assert camera.state == "live"
        assert camera.stats.frames_received == 3
        assert source.calls == 1
    assert source.log[0] == ("call", "starting")
    assert source.log[1:] == [("next", "live")] * 3


async def test_frames_are_published_unchanged():
    source = ScriptedSource([F1, HANG])
    camera, hub, _ = make_camera(source)

    async with running(camera):
        part = await next_part(hub, 0)

    assert part.frame.jpeg == F1


# --- retries and states ------------------------------------------------------------------


async def test_camera_retries_after_upstream_unavailable_and_is_offline_in_between():
    source = ScriptedSource([F1, UpstreamUnavailable("connection refused")], [F2, HANG])
    camera, hub, published = make_camera(source)

    async with running(camera):
        part = await next_part(hub, 1)

        assert part.frame.jpeg == F2
        assert camera.state == "live"
    assert source.calls == 2
    assert source.log == [("call", "starting"), ("next", "live"), ("call", "offline"), ("next", "live")]
    assert published.frames == [(1, F1), (2, F2)]
    assert camera.stats.errors == {"unavailable": 1}
    assert "connection refused" in camera.stats.last_error


@pytest.mark.parametrize(
    ("error", "state"),
    [
        (AuthError("HTTP 401"), "auth_failed"),
        (ForbiddenError("HTTP 403"), "forbidden"),
        (NotFoundError("HTTP 404"), "not_found"),
        (UpstreamUnavailable("HTTP 503"), "offline"),
        (BadFrame("not a JPEG"), "offline"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else v,
)
async def test_error_sets_the_state_a_status_page_shows(backoff_sleeps, error, state):
    source = ScriptedSource([error], [HANG])
    camera, _, _ = make_camera(source, sleeps=backoff_sleeps)

    async with running(camera):
        await source.wait_until(lambda: source.started == 2)

        assert camera.state == state
        assert camera.stats.last_error == str(error)
        assert camera.stats.errors == {error.kind: 1}


async def test_auth_failure_retries_slowly_and_a_frame_restores_the_normal_backoff(backoff_sleeps):
    source = ScriptedSource(
        [AuthError("HTTP 401")],
        [AuthError("HTTP 401")],
        [F1, UpstreamUnavailable("gone")],
        [HANG],
    )
    camera, _, _ = make_camera(source, sleeps=backoff_sleeps)

    async with running(camera):
        await source.wait_until(lambda: source.started == 4)

    first_auth, second_auth, after_recovery = backoff_sleeps
    assert 60.0 <= first_auth <= 120.0  # the 120 s step, with jitter in its upper half
    assert 120.0 <= second_auth <= 240.0  # doubled
    assert 0.0005 <= after_recovery <= 0.001  # the camera's own backoff, from its first step
    assert [state for what, state in source.log if what == "call"] == [
        "starting",
        "auth_failed",
        "auth_failed",
        "offline",
    ]
    assert camera.stats.errors == {"auth_failed": 2, "unavailable": 1}


async def test_ordinary_errors_back_off_doubling_and_start_over_after_a_frame(backoff_sleeps):
    down = UpstreamUnavailable("HTTP 503")
    source = ScriptedSource([down], [down], [down], [F1, down], [HANG])
    camera, _, _ = make_camera(source, sleeps=backoff_sleeps)

    async with running(camera):
        await source.wait_until(lambda: source.started == 5)

    steps = [0.001, 0.002, 0.004, 0.001]
    assert len(backoff_sleeps) == len(steps)
    for step, delay in zip(steps, backoff_sleeps, strict=True):
        assert step / 2 <= delay <= step


async def test_auth_failure_after_other_errors_still_waits_long(backoff_sleeps):
    source = ScriptedSource([UpstreamUnavailable("HTTP 503")], [AuthError("HTTP 401")], [HANG])
    camera, _, _ = make_camera(source, sleeps=backoff_sleeps)

    async with running(camera):
        await source.wait_until(lambda: source.started == 3)

    assert backoff_sleeps[0] <= 0.001
    assert backoff_sleeps[1] >= 60.0


async def test_auth_failures_separated_by_another_error_start_the_slow_backoff_over(backoff_sleeps):
    # Auth-failed, then unreachable (credentials not tried), then auth-failed again:
    # the second auth failure is a new first one.
    source = ScriptedSource([AuthError("HTTP 401")], [UpstreamUnavailable("HTTP 503")], [AuthError("HTTP 401")], [HANG])
    camera, _, _ = make_camera(source, sleeps=backoff_sleeps)

    async with running(camera):
        await source.wait_until(lambda: source.started == 4)

    first_auth, _, second_auth = backoff_sleeps
    assert 60.0 <= first_auth <= 120.0
    assert 60.0 <= second_auth <= 120.0


async def test_source_that_sends_nothing_is_stalled_and_restarted():
    source = ScriptedSource([F1, HANG], [F2, HANG])
    camera, hub, _ = make_camera(source, stall_timeout=0.05)

    async with running(camera):
        await next_part(hub, 1)
        await source.wait_until(lambda: len(source.log) >= 4)

    assert source.log[:4] == [("call", "starting"), ("next", "live"), ("call", "stalled"), ("next", "live")]
    assert camera.stats.errors["stalled"] >= 1
    assert source.calls >= 2


async def test_stalled_state_is_shown_before_any_frame(caplog):
    source = ScriptedSource([HANG], [HANG])
    camera, _, _ = make_camera(source, stall_timeout=0.05)

    async with running(camera):
        await source.wait_until(lambda: source.started >= 2)

        assert camera.state == "stalled"
        assert camera.stats.frames_received == 0
    assert "no complete frame" in camera.stats.last_error


async def test_unexpected_exception_in_source_does_not_end_the_camera(caplog):
    source = ScriptedSource([ValueError("bug in a source")], [F1, HANG])
    camera, hub, _ = make_camera(source)

    async with running(camera):
        part = await next_part(hub, 0)

        assert part.frame.jpeg == F1
        assert camera.state == "live"
    assert source.calls == 2
    assert camera.stats.errors == {"unavailable": 1}
    assert "ValueError" in camera.stats.last_error
    (error_record,) = camera_records(caplog, logging.ERROR)
    assert error_record.exc_info is not None
    assert isinstance(error_record.exc_info[1], ValueError)


async def test_source_whose_stream_ends_is_started_again():
    source = ScriptedSource([F1], [F2, HANG])
    camera, hub, published = make_camera(source)

    async with running(camera):
        await next_part(hub, 1)

    assert source.calls == 2
    assert published.frames == [(1, F1), (2, F2)]
    assert source.log[2] == ("call", "offline")
    assert camera.stats.errors == {"unavailable": 1}
    assert "ended" in camera.stats.last_error


async def test_errors_are_counted_by_kind():
    source = ScriptedSource(
        [UpstreamUnavailable("HTTP 503")],
        [BadFrame("not a JPEG")],
        [UpstreamUnavailable("timeout")],
        [NotFoundError("HTTP 404")],
        [ForbiddenError("HTTP 403")],
        [F1, HANG],
    )
    camera, hub, _ = make_camera(source)

    async with running(camera):
        await next_part(hub, 0)

    assert camera.stats.errors == collections.Counter(unavailable=2, bad_frame=1, not_found=1, forbidden=1)
    assert camera.stats.frames_received == 1


# --- logging -------------------------------------------------------------------------------


async def test_burst_of_identical_errors_logs_one_warning_and_recovery_logs_live_again(caplog):
    caplog.set_level(logging.DEBUG, logger="mjpeg_proxy.camera")
    down = UpstreamUnavailable("HTTP 503")
    source = ScriptedSource([down], [down], [down], [down], [down], [F1, HANG])
    camera, hub, _ = make_camera(source)

    async with running(camera):
        await next_part(hub, 0)

    (warning,) = camera_records(caplog, logging.WARNING)
    assert "cam" in warning.getMessage()
    assert "HTTP 503" in warning.getMessage()
    assert camera_records(caplog, logging.ERROR) == []
    infos = [r.getMessage() for r in camera_records(caplog, logging.INFO)]
    assert len(infos) == 1
    assert "live again" in infos[0]
    assert "5" in infos[0]


async def test_each_new_burst_after_recovery_warns_again(caplog):
    caplog.set_level(logging.DEBUG, logger="mjpeg_proxy.camera")
    down = UpstreamUnavailable("HTTP 503")
    source = ScriptedSource([down], [down], [F1, down], [down], [F2, HANG])
    camera, hub, _ = make_camera(source)

    async with running(camera):
        part = await next_part(hub, 0)
        while part.frame.jpeg != F2:
            part = await next_part(hub, part.frame.seq)

    assert len(camera_records(caplog, logging.WARNING)) == 2
    infos = [r.getMessage() for r in camera_records(caplog, logging.INFO)]
    assert len(infos) == 2
    assert all("live again" in message for message in infos)


async def test_first_frame_logs_live(caplog):
    caplog.set_level(logging.INFO, logger="mjpeg_proxy.camera")
    source = ScriptedSource([F1, F2, HANG])
    camera, hub, _ = make_camera(source)

    async with running(camera):
        await next_part(hub, 1)

    (info,) = camera_records(caplog, logging.INFO)
    assert "cam" in info.getMessage()
    assert "live" in info.getMessage()
    assert "again" not in info.getMessage()
    assert camera_records(caplog, logging.WARNING) == []


# --- the source's iterator is always closed --------------------------------------------------


async def test_every_iterator_the_camera_opened_is_closed(backoff_sleeps):
    source = ScriptedSource(
        [F1, UpstreamUnavailable("gone")],
        [F2],
        [ValueError("bug")],
        [AuthError("HTTP 401")],
        [F3, HANG],
    )
    camera, hub, _ = make_camera(source, sleeps=backoff_sleeps)

    async with running(camera):
        await next_part(hub, 2)
        assert source.closed == source.started - 1 == 4  # all but the one still streaming

    assert source.calls == source.started == source.closed == 5


async def test_iterator_is_closed_when_publishing_a_frame_fails(caplog):
    # A bug after the source yielded (here: building the part) must not leave the
    # source's request or connection open, nor end the camera.
    source = ScriptedSource([F1, F2], [F3, HANG])
    built: list[bytes] = []

    def build_part(frame: Frame) -> tuple[bytes, bytes]:
        if frame.jpeg == F1:
            raise RuntimeError("cannot build part")
        if not frame.placeholder:
            built.append(frame.jpeg)
        return frame.jpeg, frame.jpeg

    hub = FrameHub(build_part)
    camera = Camera(ALWAYS_ON, source, hub, timing=FAST)

    async with running(camera):
        part = await next_part(hub, 1)

    assert part.frame.jpeg == F3
    assert built == [F3]
    assert source.calls == 2
    assert source.closed == source.started == 2
    assert camera.stats.errors == {"unavailable": 1}


async def test_cancelling_the_camera_closes_a_source_that_is_waiting():
    source = ScriptedSource([HANG])
    camera, _, _ = make_camera(source)

    async with running(camera):
        await source.wait_until(lambda: source.started == 1)
        assert source.closed == 0

    assert source.closed == 1


async def test_stalled_iterator_is_closed_before_the_next_one_opens():
    source = ScriptedSource([F1, HANG], [HANG])
    camera, _, _ = make_camera(source, stall_timeout=0.05)

    async with running(camera):
        await source.wait_until(lambda: source.started == 2)
        assert source.closed == 1


async def test_source_with_a_plain_async_iterator_stops_when_cancelled():
    class Silent:  # an AsyncIterator that is not an async generator (no aclose)
        def __aiter__(self):
            return self

        async def __anext__(self) -> Frame:
            await asyncio.Event().wait()
            raise StopAsyncIteration

    class PlainSource(Source):
        def __init__(self) -> None:
            self.started = asyncio.Event()

        def frames(self) -> AsyncIterator[Frame]:
            self.started.set()
            return Silent()

    source = PlainSource()
    camera = Camera(ALWAYS_ON, source, FrameHub(lambda f: (f.jpeg, f.jpeg)))
    task = asyncio.create_task(camera.run())
    await asyncio.wait_for(source.started.wait(), WAIT_S)
    await asyncio.sleep(0)  # the camera is now waiting inside __anext__
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT_S)
    assert camera.stats.errors == {}


async def test_stalls_reconnect_at_once_without_growing_the_error_backoff(caplog):
    caplog.set_level(logging.DEBUG, logger="mjpeg_proxy.camera")
    source = ScriptedSource([HANG], [HANG], [HANG], [F1, HANG])
    camera, hub, _ = make_camera(source, stall_timeout=0.05, backoff_s=(30.0, 60.0))
    async with running(camera):
        part = await next_part(hub, 0)
    assert part.frame.jpeg == F1
    assert source.calls == 4
    stalls = [r.getMessage() for r in caplog.records if "no complete frame" in r.getMessage()]
    assert len(stalls) == 3 and all(line.endswith("; reconnecting") for line in stalls)
