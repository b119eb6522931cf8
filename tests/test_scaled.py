"""The resized streams of one camera (``camera.scaled``), with a stand-in resize that counts and can be held."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

from mjpeg_proxy.camera.frame import Frame
from mjpeg_proxy.camera.hub import FrameHub, Part
from mjpeg_proxy.camera.scaled import ScaledStreams
from mjpeg_proxy.camera.stats import CameraStats
from mjpeg_proxy.pictures.resize import BrokenJpeg
from tests.helpers import eventually


class StandInResize:
    """Resizes by prefixing the width; counts its calls; raises for JPEGs holding b"bad"; can be held."""

    def __init__(self) -> None:
        self.calls: list[bytes] = []
        self.started = threading.Event()
        self.go_on = threading.Event()
        self.go_on.set()

    def __call__(self, jpeg: bytes, width: int) -> bytes:
        self.calls.append(jpeg)
        self.started.set()
        assert self.go_on.wait(10)
        if b"bad" in jpeg:
            raise BrokenJpeg("the picture cannot be decoded (a test's bad frame)")
        return b"%d:%s" % (width, jpeg)


class Collector:
    """A viewer of a rung's hub that keeps every JPEG it is handed."""

    def __init__(self) -> None:
        self.jpegs: list[bytes] = []
        self.closed = False

    def offer(self, part: Part[bytes]) -> None:
        self.jpegs.append(part.payload)

    def close(self, last: Part[bytes] | None) -> None:
        self.closed = True


def camera() -> tuple[FrameHub[bytes], ScaledStreams, StandInResize, CameraStats]:
    hub: FrameHub[bytes] = FrameHub(lambda frame: frame.jpeg)
    resize, stats = StandInResize(), CameraStats()
    return hub, ScaledStreams("cam", hub, stats, resize), resize, stats


def rung_tasks() -> list[asyncio.Task]:
    return [task for task in asyncio.all_tasks() if task.get_name().startswith("camera cam at ")]


async def published(hub: FrameHub[bytes], seq: int) -> bytes:
    """The JPEG of ``hub``'s part after ``seq``, once it is published."""
    part = await hub.next_part(seq, 5)
    assert part is not None
    return part.payload


async def test_every_frame_is_resized_once_for_all_viewers_of_its_width():
    source, scaled, resize, stats = camera()
    viewers = [Collector() for _ in range(3)]
    with contextlib.ExitStack() as stack:
        for viewer in viewers:
            rung = stack.enter_context(scaled.rung(320))
            stack.enter_context(rung.viewer(viewer))
        assert scaled.widths == [320]
        for seq in range(1, 6):
            source.publish(Frame(b"frame %d" % seq))
            assert await published(rung, seq - 1) == b"320:frame %d" % seq
    assert len(resize.calls) == stats.frames_resized == 5
    assert all(viewer.jpegs == [b"320:frame %d" % seq for seq in range(1, 6)] for viewer in viewers)


async def test_a_new_width_starts_from_the_cameras_latest_frame_resized_at_once():
    source, scaled, resize, _ = camera()
    source.publish(Frame(b"old", placeholder=True))
    with scaled.rung(640) as rung:
        assert await published(rung, 0) == b"640:old"
        assert rung.latest is not None and rung.latest.frame.placeholder  # the offline picture is one too
    with scaled.rung(None) as own:
        assert own is source


async def test_frames_that_come_during_a_resize_replace_the_waiting_one():
    source, scaled, resize, _ = camera()
    viewer = Collector()
    with scaled.rung(320) as rung, rung.viewer(viewer):
        resize.go_on.clear()
        source.publish(Frame(b"first"))
        assert await asyncio.to_thread(resize.started.wait, 5)
        for name in (b"second", b"third", b"fourth"):
            source.publish(Frame(name))
        resize.go_on.set()
        await published(rung, 1)
    assert resize.calls == [b"first", b"fourth"]
    assert viewer.jpegs == [b"320:first", b"320:fourth"]


async def test_a_width_nobody_watches_any_more_costs_nothing():
    source, scaled, resize, stats = camera()
    with scaled.rung(320) as rung:
        source.publish(Frame(b"watched"))
        await published(rung, 0)
    assert scaled.widths == [] and rung_tasks() == []
    source.publish(Frame(b"unwatched"))
    assert rung_tasks() == []  # a subscribed rung would have started its resize in publish
    assert resize.calls == [b"watched"] and stats.frames_resized == 1


async def test_a_frame_that_cannot_be_resized_is_skipped_counted_and_logged_once_per_burst(caplog):
    source, scaled, resize, stats = camera()
    viewer = Collector()
    with caplog.at_level(logging.INFO, "mjpeg_proxy.camera.scaled"), scaled.rung(320) as rung, rung.viewer(viewer):
        source.publish(Frame(b"good 1"))
        await published(rung, 0)
        for failures, bad in enumerate((b"bad 1", b"bad 2"), 1):
            source.publish(Frame(bad))
            await eventually(lambda failures=failures: stats.frames_resize_failed == failures)
        source.publish(Frame(b"good 2"))
        assert await published(rung, 1) == b"320:good 2"
    assert viewer.jpegs == [b"320:good 1", b"320:good 2"] and not viewer.closed
    assert (stats.frames_resized, stats.frames_resize_failed) == (2, 2)
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2, lines
    assert "camera cam: a frame cannot be resized to 320 px" in lines[0] and "a test's bad frame" in lines[0]
    assert lines[1] == "camera cam: frames are resized again, after 2 that could not be"


async def test_snapshots_and_streams_of_one_frame_at_one_width_share_one_resize():
    source, scaled, resize, stats = camera()
    frame = source.publish(Frame(b"latest")).frame
    resize.go_on.clear()
    asking = [asyncio.create_task(scaled.resized(frame, 320)) for _ in range(100)]
    assert await asyncio.to_thread(resize.started.wait, 5)
    resize.go_on.set()
    assert set(await asyncio.gather(*asking)) == {b"320:latest"}
    with scaled.rung(320) as rung:
        assert await published(rung, 0) == b"320:latest"
    assert await scaled.resized(frame, 640) == b"640:latest"
    assert resize.calls == [b"latest", b"latest"] and stats.frames_resized == 2


async def test_when_the_cameras_hub_closes_the_streams_at_every_width_end():
    source, scaled, _, _ = camera()
    viewers = [Collector(), Collector()]
    with scaled.rung(320) as small, small.viewer(viewers[0]), scaled.rung(640) as large, large.viewer(viewers[1]):
        source.close()
        assert all(viewer.closed for viewer in viewers)
    late = Collector()
    with scaled.rung(320) as rung, rung.viewer(late):  # a viewer that comes as the camera is removed
        assert late.closed
