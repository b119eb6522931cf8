"""On-demand fetching: a camera asks its upstream for pictures only while someone watches
(and for ``linger_seconds`` after), unless it is ``always_on``. Checked against fake
upstreams on 127.0.0.1 that count every request and connection they get."""

from __future__ import annotations

import io
import time

import aiohttp
import pytest
from PIL import Image

from mjpeg_proxy.camera.timing import CameraTiming
from mjpeg_proxy.config import CameraConfig
from mjpeg_proxy.sources.mjpeg import MjpegConfig
from mjpeg_proxy.sources.snapshot import SnapshotConfig
from tests.fake_camera import FakeSnapshotCamera
from tests.fake_mjpeg import HANG, FakeMjpegCamera, Pause, part
from tests.helpers import MjpegViewer, Proxy, eventually, is_subsequence, real_frames

PETS = real_frames()
RUNWAY = real_frames("axis-runway-webcam-640x480")
FPS = 10.0
"""Snapshot cameras here fetch 10 times a second, so "no request for N intervals" is short."""
LINGER_S = 0.6


async def serve(aiohttp_server, fake: FakeSnapshotCamera | FakeMjpegCamera) -> str:
    """Serve ``fake`` on 127.0.0.1 and return the URL the proxy should fetch."""
    server = await aiohttp_server(fake.app())
    path = "/snapshot.jpg" if isinstance(fake, FakeSnapshotCamera) else "/video.mjpg"
    return str(server.make_url(path))


def snapshot_camera(camera_id: str, url: str, **changes: object) -> CameraConfig:
    settings = {"fps": FPS, "linger_seconds": LINGER_S, **changes}
    return CameraConfig(id=camera_id, source=SnapshotConfig(url=url), **settings)


def streaming_fake() -> FakeMjpegCamera:
    """An MJPEG upstream that sends a new frame every 0.1 s on every connection, for 30 s."""
    script = [x for i in range(300) for x in (part(PETS[i % len(PETS)]), Pause(0.1))] + [HANG]
    return FakeMjpegCamera(lambda n: script)


async def api_status(proxy: Proxy, camera_id: str) -> dict:
    """What ``/api/cameras/{id}`` says about the camera."""
    async with aiohttp.ClientSession() as session, session.get(proxy.url(f"/api/cameras/{camera_id}")) as response:
        assert response.status == 200
        return await response.json()


async def requests_pass(clock: FakeSnapshotCamera, count: int) -> None:
    """Wait until the always-on ``clock`` camera has made ``count`` more requests: proof
    that the proxy's camera loops ran for about ``count`` frame intervals meanwhile."""
    target = len(clock.served) + count
    await eventually(lambda: len(clock.served) >= target)


async def wait_idle(proxy: Proxy, camera_id: str) -> float:
    """Wait until the camera has closed its upstream; return when that was seen (monotonic)."""
    camera = proxy.camera(camera_id)
    await eventually(lambda: camera.state == "idle", timeout_s=LINGER_S + 5)
    return time.monotonic()


async def test_without_viewers_the_upstream_gets_no_request_at_all(aiohttp_server, start_proxy):
    quiet, clock = FakeSnapshotCamera(PETS), FakeSnapshotCamera(RUNWAY)
    proxy = await start_proxy(
        snapshot_camera("quiet", await serve(aiohttp_server, quiet)),
        snapshot_camera("clock", await serve(aiohttp_server, clock), always_on=True),
        on_demand=True,
    )
    # Pages, the status API and a HEAD on the stream (uptime checkers) are no viewers either.
    async with aiohttp.ClientSession() as session:
        for method, path in [
            ("GET", "/"),
            ("GET", "/cameras/quiet"),
            ("GET", "/status"),
            ("GET", "/api/cameras"),
            ("HEAD", "/cameras/quiet/stream.mjpg"),
        ]:
            async with session.request(method, proxy.url(path)) as response:
                assert response.status == 200, (method, path)
    await requests_pass(clock, 5)  # half a second of an always-on neighbour fetching

    assert quiet.served == []
    status = await api_status(proxy, "quiet")
    assert status["state"] == "idle"
    assert status["fetching"] is False
    assert (status["viewers"], status["upstream_requests"], status["frames_received"]) == (0, 0, 0)
    assert proxy.camera("quiet").hub.latest is None


async def test_the_first_viewer_starts_fetching_and_gets_live_frames(aiohttp_server, start_proxy):
    fake = FakeSnapshotCamera(PETS)
    proxy = await start_proxy(snapshot_camera("cam", await serve(aiohttp_server, fake)), on_demand=True)
    camera = proxy.camera("cam")
    assert camera.state == "idle"

    async with MjpegViewer(proxy.url("/cameras/cam/stream.mjpg")) as viewer:
        parts = await viewer.new_parts(3)
        status = await api_status(proxy, "cam")

    assert is_subsequence([p.jpeg for p in parts], fake.served)
    assert parts[0].jpeg == PETS[0], "the first picture the upstream served is the first the viewer sees"
    assert (status["state"], status["fetching"], status["viewers"]) == ("live", True, 1)
    assert status["frames_received"] >= 3 and status["upstream_requests"] >= 3
    assert len(fake.served) >= 3


async def test_after_the_last_viewer_leaves_fetching_lingers_then_stops(aiohttp_server, start_proxy):
    fake, clock = FakeSnapshotCamera(PETS), FakeSnapshotCamera(RUNWAY)
    proxy = await start_proxy(
        snapshot_camera("cam", await serve(aiohttp_server, fake)),
        snapshot_camera("clock", await serve(aiohttp_server, clock), always_on=True),
        on_demand=True,
    )
    camera = proxy.camera("cam")
    async with MjpegViewer(proxy.url("/cameras/cam/stream.mjpg")) as viewer:
        await viewer.new_parts(2)
    await eventually(lambda: camera.hub.viewers == 0, 5)
    left_at = time.monotonic()
    requests_when_left = len(fake.served)

    idle_at = await wait_idle(proxy, "cam")

    # It went on fetching through the linger, and stopped when the linger ran out.
    assert idle_at - left_at >= LINGER_S - 0.05
    assert idle_at - left_at < LINGER_S + 2
    assert len(fake.served) > requests_when_left, "the upstream was still asked during the linger"
    status = await api_status(proxy, "cam")
    assert (status["state"], status["fetching"], status["viewers"]) == ("idle", False, 0)

    # ... and then the upstream gets nothing more, while the neighbour fetches 5 frames.
    attempts_when_idle = camera.upstream_requests
    await requests_pass(clock, 5)
    assert camera.upstream_requests == attempts_when_idle
    # (A request already on its way when the upstream was closed may land just after.)
    late = [t - idle_at for t in fake.request_times if t > idle_at + 0.05]
    assert late == [], f"the upstream was asked {len(late)} times after the camera went idle"
    assert len(fake.served) <= attempts_when_idle
    assert camera.state == "idle"
    assert camera.hub.latest is None, "a later viewer must not be shown the picture of minutes ago"


async def test_a_viewer_back_within_the_linger_reuses_the_upstream_connection(aiohttp_server, start_proxy):
    fake = streaming_fake()
    config = CameraConfig(id="cam", source=MjpegConfig(url=await serve(aiohttp_server, fake)), linger_seconds=LINGER_S)
    proxy = await start_proxy(config, on_demand=True)
    camera = proxy.camera("cam")
    url = proxy.url("/cameras/cam/stream.mjpg")

    async with MjpegViewer(url) as first:
        await first.new_parts(2)
    await eventually(lambda: camera.hub.viewers == 0, 5)
    assert camera.state == "live", "lingering: the upstream is still open"

    async with MjpegViewer(url) as back:
        returned = await back.new_parts(3)
    assert all(p.jpeg in PETS for p in returned)
    assert fake.connections == 1, "the returning viewer was served from the connection still open"
    assert fake.max_open_connections == 1

    # Once the linger runs out with nobody watching, the upstream connection is closed ...
    await wait_idle(proxy, "cam")
    await eventually(lambda: fake.open_connections == 0)
    assert fake.connections == 1
    # ... and the next viewer opens a new one.
    async with MjpegViewer(url) as later:
        assert (await later.next_new_part()).jpeg in PETS
    assert fake.connections == 2


@pytest.mark.parametrize("kind", ["snapshot", "mjpeg"])
async def test_a_snapshot_of_an_idle_camera_fetches_a_picture(aiohttp_server, start_proxy, kind):
    timing = CameraTiming(snapshot_wait_s=0.5)  # how long a snapshot keeps the upstream open
    if kind == "snapshot":
        fake = FakeSnapshotCamera(PETS)
        config = snapshot_camera("cam", await serve(aiohttp_server, fake), linger_seconds=0.2)
    else:
        fake = streaming_fake()
        config = CameraConfig(id="cam", source=MjpegConfig(url=await serve(aiohttp_server, fake)), linger_seconds=0.2)
    proxy = await start_proxy(config, on_demand=True, timing=timing)
    camera = proxy.camera("cam")
    assert camera.state == "idle" and camera.upstream_requests == 0

    async with aiohttp.ClientSession() as session, session.get(proxy.url("/cameras/cam/snapshot.jpg")) as response:
        assert response.status == 200
        assert response.content_type == "image/jpeg"
        body = await response.read()

    assert body == PETS[0], "the picture the upstream sent, byte for byte"
    with Image.open(io.BytesIO(body)) as image:
        image.load()
        assert image.size == (768, 576)
    assert camera.upstream_requests >= 1
    # The snapshot does not leave the upstream open for ever.
    await wait_idle(proxy, "cam")
    if kind == "mjpeg":
        await eventually(lambda: fake.open_connections == 0)
        assert fake.connections == 1


async def test_always_on_camera_fetches_with_no_viewer(aiohttp_server, start_proxy):
    fake = FakeSnapshotCamera(PETS)
    proxy = await start_proxy(
        snapshot_camera("cam", await serve(aiohttp_server, fake), always_on=True, linger_seconds=0.1), on_demand=True
    )
    camera = proxy.camera("cam")
    await eventually(lambda: len(fake.served) >= 3)
    status = await api_status(proxy, "cam")
    assert (status["state"], status["fetching"], status["viewers"]) == ("live", True, 0)

    # A viewer coming and going does not stop it: it is still fetching long after the linger.
    async with MjpegViewer(proxy.url("/cameras/cam/stream.mjpg")) as viewer:
        await viewer.next_new_part()
    await eventually(lambda: camera.hub.viewers == 0, 5)
    served = len(fake.served)
    await eventually(lambda: len(fake.served) >= served + 5)  # 0.5 s, five times the linger
    assert camera.state == "live"
    assert camera.hub.latest is not None and camera.hub.latest.frame.jpeg in PETS


async def test_snapshots_of_a_slow_camera_waking_from_idle_each_get_a_picture(aiohttp_server, start_proxy):
    # A camera slower than the snapshot wait: its next request slot can be a whole frame
    # interval away when it wakes, so a snapshot waits two intervals rather than 503.
    fake = FakeSnapshotCamera(PETS)
    proxy = await start_proxy(
        snapshot_camera("cam", await serve(aiohttp_server, fake), fps=4.0, linger_seconds=0),
        on_demand=True,
        timing=CameraTiming(snapshot_wait_s=0.1),
    )
    camera = proxy.camera("cam")
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.get(proxy.url("/cameras/cam/snapshot.jpg")) as response:
                assert response.status == 200, await response.text()
                assert await response.read() in PETS
            await wait_idle(proxy, "cam")  # the next snapshot wakes it, off its request grid
    assert camera.stats.frames_received >= 3
