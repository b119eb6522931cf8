"""StreamViewer's back-pressure rule against a fake transport and a clock the test sets.

No sockets and no sleeps: the transport records what is written and reports the unsent
bytes the test says it holds; the hub is a real FrameHub fed by hand.
"""

from __future__ import annotations

import logging

import pytest

from mjpeg_proxy.camera.frame import Frame
from mjpeg_proxy.camera.hub import FrameHub
from mjpeg_proxy.camera.stats import CameraStats
from mjpeg_proxy.logs import SummarisedLog
from mjpeg_proxy.web.framings import Framings, StreamPart
from mjpeg_proxy.web.streaming import HIGH_WATER_BYTES, StreamViewer

BOUNDARY = "testboundary"
SMALL = b"\xff\xd8" + bytes(1000) + b"\xff\xd9"
LARGE = b"\xff\xd8" + bytes(3 * HIGH_WATER_BYTES) + b"\xff\xd9"
RESEND_S = 2.0
WRITE_TIMEOUT_S = 10.0


class FakeTransport:
    """Records writes; ``buffered`` is what get_write_buffer_size reports, set by the test."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.buffered = 0
        self.closing = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def abort(self) -> None:
        self.aborted = self.closing = True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Setup:
    """One viewer of a hub, subscribed for the test's whole life."""

    def __init__(self, *, fps: float | None = None, browser: bool = False) -> None:
        self.framings = Framings(BOUNDARY)
        self.hub: FrameHub[StreamPart] = FrameHub(self.framings.build)
        self.transport = FakeTransport()
        self.clock = Clock()
        self.stats = CameraStats()
        self.flood_log = SummarisedLog(60)
        self.viewer = StreamViewer(
            "cam",
            self.stats,
            self.hub,
            self.transport,
            self.framings.writer(browser),
            interval_s=1 / fps if fps else 0.0,
            client="127.0.0.1",
            flood_log=self.flood_log,
            clock=self.clock,
            link=("/cameras/cam/stream.mjpg", ()),
        )
        self._registration = self.hub.viewer(self.viewer)
        self._registration.__enter__()

    def publish(self, jpeg: bytes = SMALL) -> bytes:
        """Publish ``jpeg``; return its part in the players' framing."""
        return self.hub.publish(Frame(jpeg)).payload.player

    def tick(self) -> None:
        self.viewer.tick(RESEND_S, WRITE_TIMEOUT_S)

    def close(self) -> None:
        self._registration.__exit__(None, None, None)
        self.flood_log.close()


@pytest.fixture
def make():
    made: list[Setup] = []

    def make(**kwargs) -> Setup:
        made.append(Setup(**kwargs))
        return made[-1]

    yield make
    for setup in made:
        setup.close()


async def test_each_published_part_is_written_at_once_and_counted(make):
    s = make()
    parts = [s.publish(SMALL + b"%d" % i) for i in range(3)]
    assert s.transport.writes == parts
    assert (s.stats.frames_sent, s.stats.bytes_sent, s.stats.frames_dropped) == (3, sum(map(len, parts)), 0)


async def test_a_browser_gets_the_browser_framing(make):
    s = make(browser=True)
    part = s.hub.publish(Frame(SMALL))
    assert s.transport.writes == [part.payload.browser]
    assert part.payload.browser != part.payload.player


async def test_a_viewer_is_behind_only_above_the_high_water_mark(make):
    s = make()
    s.transport.buffered = HIGH_WATER_BYTES  # at the mark: the kernel has not yet taken the last part
    first = s.publish()
    s.transport.buffered = HIGH_WATER_BYTES + 1
    s.publish()
    assert s.transport.writes == [first]
    assert (s.stats.frames_sent, s.stats.frames_dropped) == (1, 1)


async def test_a_part_larger_than_the_high_water_mark_is_the_mark(make):
    s = make()
    part_size = len(s.framings.build(Frame(LARGE)).player)
    s.transport.buffered = part_size  # one whole large part waiting: not behind
    first = s.publish(LARGE)
    s.transport.buffered = part_size + 1
    s.publish(LARGE)
    assert s.transport.writes == [first]
    assert s.stats.frames_dropped == 1


async def test_a_viewer_that_catches_up_gets_only_the_newest_part_once(make):
    s = make()
    s.transport.buffered = HIGH_WATER_BYTES + 1
    for i in range(3):
        s.publish(SMALL + b"%d" % i)
    assert s.transport.writes == []
    assert s.stats.frames_dropped == 3
    s.tick()  # still behind: nothing
    assert s.transport.writes == []
    s.transport.buffered = 0
    s.tick()
    assert s.transport.writes == [s.hub.latest.payload.player]
    assert s.viewer.sent_seq == 3
    s.tick()  # caught up and not idle long: no second copy
    assert len(s.transport.writes) == 1


async def test_fps_slots_skip_parts_without_counting_them_dropped(make):
    s = make(fps=2)  # one part per 0.5 s
    first = s.publish(SMALL + b"1")
    s.clock.now += 0.2
    s.publish(SMALL + b"2")  # its slot has not come
    assert s.transport.writes == [first]
    s.clock.now += 0.2
    s.tick()  # 0.4 s after the last part: still not
    assert s.transport.writes == [first]
    s.clock.now += 0.1
    s.tick()  # the slot has come: the part skipped meanwhile, the newest
    assert s.transport.writes == [first, s.hub.latest.payload.player]
    third = s.publish(SMALL + b"3")  # at once after: skipped
    s.clock.now += 0.5
    fourth = s.publish(SMALL + b"4")
    assert s.transport.writes[2:] == [fourth] and third not in s.transport.writes
    assert s.stats.frames_dropped == 0


async def test_an_idle_stream_gets_the_latest_part_again_every_resend_interval(make):
    s = make()
    part = s.publish()
    s.clock.now += RESEND_S - 0.01
    s.tick()
    assert s.transport.writes == [part]
    s.clock.now += 0.01
    s.tick()
    assert s.transport.writes == [part, part]
    s.tick()
    assert len(s.transport.writes) == 2
    s.clock.now += RESEND_S
    s.tick()
    assert len(s.transport.writes) == 3


async def test_no_resend_while_the_viewer_is_behind_or_before_any_frame(make):
    s = make()
    s.clock.now += 10 * RESEND_S
    s.tick()  # no frame yet
    assert s.transport.writes == []
    s.publish()
    s.transport.buffered = HIGH_WATER_BYTES + 1
    s.clock.now += RESEND_S
    s.tick()
    assert len(s.transport.writes) == 1


async def test_a_viewer_that_takes_no_bytes_for_the_write_timeout_is_closed(make, caplog):
    caplog.set_level(logging.INFO, logger="mjpeg_proxy.web.streaming")
    s = make()
    s.publish()
    s.transport.buffered = 5000
    s.tick()  # the buffer is as it was after the write: no progress since then
    s.clock.now += WRITE_TIMEOUT_S - 1
    s.transport.buffered = 4000  # the kernel took some: progress
    s.tick()
    s.clock.now += WRITE_TIMEOUT_S - 1
    s.tick()
    assert not s.transport.aborted and not s.viewer.finished.is_set()
    s.clock.now += 1
    s.tick()
    assert s.transport.aborted and s.viewer.finished.is_set()
    assert s.stats.viewers_timed_out == 1
    assert "camera cam: a viewer (127.0.0.1) took no data for 10 s; closed" in caplog.text


async def test_an_empty_buffer_is_never_a_write_timeout(make):
    s = make()
    s.publish()
    s.clock.now += 100 * WRITE_TIMEOUT_S
    s.tick()
    assert not s.transport.aborted
    assert s.stats.viewers_timed_out == 0


async def test_close_ends_the_stream_with_the_close_delimiter(make):
    s = make()
    s.publish()
    s.viewer.close(s.hub.latest)
    closing = s.transport.writes[-1]
    assert closing.endswith(SMALL + b"\r\n--" + BOUNDARY.encode() + b"--\r\n")
    assert closing.startswith(b"Content-Type: image/jpeg\r\nContent-Length: %d\r\n" % len(SMALL))
    assert s.viewer.finished.is_set()
    s.viewer.close(s.hub.latest)  # a second close writes nothing more
    assert len(s.transport.writes) == 2


async def test_close_writes_nothing_without_a_part_or_on_a_closed_connection(make):
    s = make()
    s.viewer.close(None)
    assert s.transport.writes == [] and s.viewer.finished.is_set()
    t = make()
    t.publish()
    t.transport.closing = True
    t.viewer.close(t.hub.latest)
    assert len(t.transport.writes) == 1 and t.viewer.finished.is_set()


async def test_the_hub_closing_closes_the_viewer_with_the_last_part(make):
    s = make(browser=True)
    s.publish()
    s.hub.close()
    assert s.transport.writes[-1].endswith(b"\r\n--" + BOUNDARY.encode() + b"--\r\n")
    assert s.viewer.finished.is_set()


async def test_a_viewer_whose_connection_closed_is_finished_and_written_no_more(make):
    s = make()
    s.transport.closing = True
    s.publish()
    assert s.transport.writes == [] and s.viewer.finished.is_set()
    t = make()
    t.transport.closing = True
    t.tick()
    assert t.viewer.finished.is_set()


async def test_nothing_follows_the_close_delimiter(make):
    # A reload removes a camera: its hub closes the stream, and the care round of the same
    # loop pass, or a frame published before the fetch task is cancelled, must not add a
    # picture after the delimiter.
    s = make()
    s.publish()
    s.hub.close()
    written = len(s.transport.writes)
    s.clock.now += RESEND_S  # a re-send is due
    s.tick()
    s.viewer.offer(s.hub.publish(Frame(SMALL)))
    assert len(s.transport.writes) == written
    assert s.stats.frames_sent == 1
