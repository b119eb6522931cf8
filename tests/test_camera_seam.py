"""The camera's seam for frames from elsewhere (cluster mode): another feed, one publish method.

A stand-in feed, as a follower replica's would be, hands frames to the camera through the
``FrameSink`` alone; a tap on ``Camera.publish`` (as an owner replica's forwarding would
be) sees every picture that reaches the hub, the offline picture included.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from mjpeg_proxy.camera.camera import Camera
from mjpeg_proxy.camera.errors import UpstreamUnavailable
from mjpeg_proxy.camera.feed import Feed, FrameSink
from mjpeg_proxy.camera.frame import Frame
from mjpeg_proxy.camera.hub import FrameHub, Part
from mjpeg_proxy.camera.source import Source
from mjpeg_proxy.config import CameraConfig
from mjpeg_proxy.sources.demo import DemoConfig

FRAMES_DIR = Path(__file__).parent / "data" / "frames" / "opencv-vtest-pets2009"
F1, F2 = ((FRAMES_DIR / f"frame_00{i}.jpg").read_bytes() for i in (1, 2))
WAIT_S = 5.0
"""Upper bound on waiting for a condition; only reached when a test is failing."""


class StandInFeed:
    """A feed that fetches nothing: the test hands its frames to the camera's sink."""

    upstream_requests = 0

    def __init__(self, sink: FrameSink) -> None:
        self.sink = sink
        self.running = asyncio.Event()

    async def run(self) -> None:
        self.sink.opened()
        self.running.set()
        await asyncio.Event().wait()

    async def close(self) -> None:
        pass


class UnusedSource(Source):
    """The camera's own source, never read: the stand-in feed replaces the fetch loop."""

    def frames(self):
        raise AssertionError("the stand-in feed must be the only way in")


class TappedCamera(Camera):
    """A camera on a stand-in feed whose every published picture is also recorded in ``tapped``."""

    def __init__(self, config: CameraConfig, hub: FrameHub) -> None:
        self.tapped: list[Frame] = []
        super().__init__(config, UnusedSource(), hub)

    def make_feed(self, source: Source) -> Feed:
        self.stand_in = StandInFeed(self)
        return self.stand_in

    def publish(self, frame: Frame) -> None:
        self.tapped.append(frame)
        super().publish(frame)


class Viewer:
    """A hub subscriber that keeps every part it is offered."""

    def __init__(self) -> None:
        self.parts: list[Part[bytes]] = []

    def offer(self, part: Part[bytes]) -> None:
        self.parts.append(part)

    def close(self, last: Part[bytes] | None) -> None:
        pass


async def test_a_stand_in_feed_goes_live_reaches_viewers_and_the_tap_sees_the_offline_picture_too():
    config = CameraConfig(id="cam", source=DemoConfig(), fps=10)  # on demand: fetches while watched
    camera = TappedCamera(config, FrameHub(lambda frame: frame.jpeg))
    viewer = Viewer()
    run = asyncio.create_task(camera.run())
    try:
        with camera.viewer(viewer):
            async with asyncio.timeout(WAIT_S):
                await camera.stand_in.running.wait()
            assert camera.state == "starting"

            camera.stand_in.sink.received(Frame(F1))
            camera.stand_in.sink.received(Frame(F2))

            assert camera.state == "live"
            assert [part.frame.jpeg for part in viewer.parts] == [F1, F2]
            assert camera.stats.frames_received == 2

            camera.tracker.failed(UpstreamUnavailable("the replica that fetched is gone"))
            await camera.offline.show()

            offline = viewer.parts[-1].frame
            assert offline.placeholder
            assert [frame.jpeg for frame in camera.tapped] == [F1, F2, offline.jpeg]
            assert camera.tapped[-1].placeholder
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
