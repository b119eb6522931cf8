"""The offline picture: when a camera stalls or its upstream refuses or fails, viewers get a
JPEG saying why (and snapshots a 503 saying the same), and the next real frame replaces it
on the same connection. Checked against fake MJPEG upstreams on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from PIL import ImageChops

from mjpeg_proxy.camera.state import CameraState
from mjpeg_proxy.camera.timing import CameraTiming, Clock
from mjpeg_proxy.config import CameraConfig
from mjpeg_proxy.pictures.drawing import render_placeholder
from mjpeg_proxy.sources.mjpeg import MjpegConfig
from mjpeg_proxy.sources.snapshot import SnapshotConfig
from tests.fake_camera import FakeSnapshotCamera
from tests.fake_mjpeg import GATE, HANG, FakeMjpegCamera, part
from tests.helpers import MjpegViewer, Proxy, ReadPart, StrictMjpegReader, boundary_of, decoded, eventually, real_frames

PETS = real_frames()
RUNWAY = real_frames("axis-runway-webcam-640x480")


pytestmark = pytest.mark.usefixtures("fast_retries")  # camera retries within a fraction of a second


@pytest.fixture
def slow_auth(fast_retries) -> CameraTiming:
    """Fast retries, but for refused logins: those wait the real minutes."""
    return dataclasses.replace(fast_retries, auth_backoff_s=CameraTiming().auth_backoff_s)


@pytest.fixture
def refused_url():
    """A URL on 127.0.0.1 where connections are refused: a port bound but not listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/video.mjpg"
    finally:
        sock.close()


async def serve(aiohttp_server, fake: FakeMjpegCamera) -> str:
    server = await aiohttp_server(fake.app())
    return str(server.make_url("/video.mjpg"))


async def snapshot(proxy: Proxy, camera_id: str = "cam") -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(proxy.url(f"/cameras/{camera_id}/snapshot.jpg")) as response,
    ):
        return response.status, dict(response.headers), await response.read()


@contextlib.asynccontextmanager
async def raw_viewer(proxy: Proxy, camera_id: str = "cam") -> AsyncIterator[StrictMjpegReader]:
    """A stream viewer that sees every part, re-sends included (MjpegViewer skips those)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(proxy.url(f"/cameras/{camera_id}/stream.mjpg")) as response,
    ):
        assert response.status == 200
        yield StrictMjpegReader(response.content, boundary_of(response.headers["Content-Type"]))


async def read_part(reader: StrictMjpegReader, timeout_s: float = 5.0) -> ReadPart:
    async with asyncio.timeout(timeout_s):
        return await reader.read_part()


def assert_unavailable(status: int, headers: dict[str, str], body: bytes, state: str) -> None:
    """``snapshot.jpg`` answered 503, retry later, naming the reason in plain words."""
    assert status == 503
    assert int(headers["Retry-After"]) > 0
    text = body.decode()
    assert CameraState(state).reason in text, text
    assert not body.startswith(b"\xff\xd8"), "no picture in a 503"


@pytest.mark.parametrize("frames", [PETS, RUNWAY], ids=["768x576", "640x480"])
async def test_stall_shows_the_offline_picture_then_the_same_viewer_gets_live_frames(
    aiohttp_server, start_proxy, frames
):
    # The first connection sends two frames and goes silent; later ones wait for the gate.
    first, later = [GATE, part(frames[0]), part(frames[1]), HANG], [GATE, part(frames[2]), HANG]
    fake = FakeMjpegCamera(lambda n: first if n == 0 else later)
    config = CameraConfig(id="cam", source=MjpegConfig(url=await serve(aiohttp_server, fake)), stall_timeout=1.0)
    proxy = await start_proxy(config)
    camera = proxy.camera("cam")

    async with MjpegViewer(proxy.url("/cameras/cam/stream.mjpg")) as viewer:
        await eventually(lambda: camera.hub.viewers == 1, 5)
        fake.gate.set()
        assert [p.jpeg for p in await viewer.new_parts(2)] == frames[:2]
        fake.gate.clear()  # the upstream stays silent until the test opens the gate again

        offline = await viewer.next_new_part(timeout_s=5)
        assert camera.state == "stalled"
        assert camera.hub.latest.frame.placeholder
        assert offline.jpeg not in frames, "the offline picture is no camera frame"
        assert decoded(offline.jpeg).size == decoded(frames[1]).size
        assert_unavailable(*await snapshot(proxy), "stalled")

        fake.gate.set()  # the upstream sends again
        # The same connection gets live frames again; before that, only offline pictures.
        while (after := await viewer.next_new_part(timeout_s=5)).jpeg not in frames:
            assert decoded(after.jpeg).size == decoded(frames[1]).size
        assert after.jpeg == frames[2]
        assert camera.state == "live"
        assert not camera.hub.latest.frame.placeholder
        status, _, body = await snapshot(proxy)
        assert (status, body) == (200, frames[2])


ERROR_CASES = [
    # state, fake upstream, camera settings
    pytest.param(
        "auth_failed",
        {"username": "admin", "password": "right"},
        {"username": "admin", "password": "wrong", "auth": "digest"},
        id="auth_failed-401",
    ),
    pytest.param("forbidden", {"status": 403}, {}, id="forbidden-403"),
    pytest.param("not_found", {"status": 404}, {}, id="not_found-404"),
    pytest.param("offline", {"status": 503}, {}, id="offline-503"),
    pytest.param("offline", None, {}, id="offline-connection-refused"),
]


@pytest.mark.parametrize(("state", "upstream", "settings"), ERROR_CASES)
async def test_error_state_shows_the_offline_picture_and_snapshot_says_why(
    aiohttp_server, start_proxy, refused_url, state, upstream, settings
):
    if upstream is None:
        url = refused_url
    else:
        fake = FakeMjpegCamera(lambda n: [part(PETS[0]), HANG], **upstream)
        url = await serve(aiohttp_server, fake)
    proxy = await start_proxy(CameraConfig(id="cam", source=MjpegConfig(url=url, **settings)))
    camera = proxy.camera("cam")

    async with raw_viewer(proxy) as reader:
        received = await read_part(reader)
        assert camera.hub.latest.frame.placeholder
        assert camera.state == state
        # What is on the wire is a whole JPEG, at the camera's configured size (no frame yet).
        assert decoded(received.jpeg).size == camera.config.picture_size
        assert received.jpeg not in PETS
        assert_unavailable(*await snapshot(proxy), state)
    assert camera.stats.frames_received == 0
    if upstream is not None:
        assert fake.connections == 0, "no stream was ever sent"


async def test_offline_pictures_of_different_errors_differ(aiohttp_server, start_proxy):
    forbidden, missing = FakeMjpegCamera(lambda n: [], status=403), FakeMjpegCamera(lambda n: [], status=404)
    # The same name for both: only the reason can tell the two pictures apart.
    proxy = await start_proxy(
        CameraConfig(id="a", source=MjpegConfig(url=await serve(aiohttp_server, forbidden)), name="Garage"),
        CameraConfig(id="b", source=MjpegConfig(url=await serve(aiohttp_server, missing)), name="Garage"),
    )
    hubs = proxy.camera("a").hub, proxy.camera("b").hub
    await eventually(lambda: all(hub.latest is not None for hub in hubs))
    assert (proxy.camera("a").state, proxy.camera("b").state) == ("forbidden", "not_found")
    pictures = [hub.latest.frame.jpeg for hub in hubs]
    assert all(hub.latest.frame.placeholder for hub in hubs)

    assert pictures[0] != pictures[1]
    first, second = decoded(pictures[0]), decoded(pictures[1])
    assert first.size == second.size
    assert ImageChops.difference(first, second).getbbox() is not None, "the pictures look different"
    for picture in (first, second):
        assert len(picture.getcolors(maxcolors=picture.width * picture.height)) > 2, "text is drawn, not a blank"


async def test_the_offline_picture_is_resent_while_the_viewer_waits(aiohttp_server, start_proxy, slow_auth):
    # A refused login is retried after minutes: nothing new is published meanwhile.
    fake = FakeMjpegCamera(lambda n: [part(PETS[0]), HANG], username="admin", password="right")
    config = CameraConfig(
        id="cam",
        source=MjpegConfig(url=await serve(aiohttp_server, fake), username="admin", password="no", auth="digest"),
    )
    proxy = await start_proxy(config, resend_seconds=0.2, timing=slow_auth)
    camera = proxy.camera("cam")

    async with raw_viewer(proxy) as reader:
        first = await read_part(reader)
        published = camera.hub.latest.frame.seq
        started = time.monotonic()
        again = [await read_part(reader, timeout_s=2) for _ in range(3)]
        elapsed = time.monotonic() - started

    assert all(p.jpeg == first.jpeg for p in again), "the same offline picture, sent again"
    assert camera.hub.latest.frame.seq == published, "re-sent, not published anew"
    assert camera.stats.errors["auth_failed"] == 1
    assert 3 * 0.2 - 0.15 <= elapsed < 3, "about every resend_seconds"


async def test_snapshot_of_an_idle_camera_whose_upstream_refuses_answers_503_promptly(aiohttp_server, start_proxy):
    fake = FakeMjpegCamera(lambda n: [], status=404)
    config = CameraConfig(id="cam", source=MjpegConfig(url=await serve(aiohttp_server, fake)), linger_seconds=0.5)
    proxy = await start_proxy(config, on_demand=True)
    assert proxy.camera("cam").state == "idle"

    started = time.monotonic()
    status, headers, body = await snapshot(proxy)
    assert time.monotonic() - started < 2, "no need to wait out the 5 s for a first frame"
    assert_unavailable(status, headers, body, "not_found")
    assert proxy.camera("cam").state == "not_found"


async def test_a_viewer_back_after_idle_sees_the_offline_picture_at_once(aiohttp_server, start_proxy):
    fake = FakeMjpegCamera(lambda n: [part(PETS[0]), HANG])
    config = CameraConfig(
        id="cam", source=MjpegConfig(url=await serve(aiohttp_server, fake)), linger_seconds=0.1, stall_timeout=5.0
    )
    proxy = await start_proxy(config, on_demand=True)
    camera = proxy.camera("cam")
    async with MjpegViewer(proxy.url("/cameras/cam/stream.mjpg")) as viewer:
        assert (await viewer.next_new_part()).jpeg == PETS[0]
    await eventually(lambda: camera.state == "idle")
    fake.status = 503  # the upstream fails from now on

    async with raw_viewer(proxy) as reader:
        await eventually(lambda: camera.state == "offline")
        assert_unavailable(*await snapshot(proxy), "offline")  # snapshots already say why ...
        received = await read_part(reader, timeout_s=1.5)  # ... the stream should show it too
    assert camera.hub.latest.frame.placeholder and received.jpeg not in PETS


async def test_a_refused_login_is_not_tried_again_early_when_viewers_come_back_after_idle(
    aiohttp_server, start_proxy, slow_auth
):
    # Many cameras lock an account after a few failed logins: the minutes-long wait after
    # a refusal must hold even when the camera goes idle and a new viewer wakes it.
    # A snapshot keeps it awake only briefly: the snapshot wait, or two frame intervals.
    timing = dataclasses.replace(slow_auth, snapshot_wait_s=0.1)
    fake = FakeMjpegCamera(lambda n: [part(PETS[0]), HANG], username="admin", password="right")
    url = await serve(aiohttp_server, fake)
    config = CameraConfig(
        id="cam",
        source=MjpegConfig(url=url, username="admin", password="no", auth="digest"),
        linger_seconds=0.1,
        fps=20,
    )
    proxy = await start_proxy(config, on_demand=True, timing=timing)
    camera = proxy.camera("cam")
    async with raw_viewer(proxy) as reader:
        first = await read_part(reader)
    assert camera.state == "auth_failed"
    refusals = fake.challenges
    await eventually(lambda: camera.state == "idle")

    for _ in range(3):  # viewers keep coming back
        async with raw_viewer(proxy) as reader:
            again = await read_part(reader, timeout_s=2)  # the offline picture at once
            assert camera.state == "auth_failed"
            assert_unavailable(*await snapshot(proxy), "auth_failed")
        await eventually(lambda: camera.state == "idle")

    assert fake.challenges == refusals, "no new login before the backoff is over"
    assert camera.stats.errors["auth_failed"] == 1
    assert decoded(again.jpeg).size == decoded(first.jpeg).size and again.jpeg not in PETS


async def test_the_offline_picture_is_drawn_again_during_a_long_wait(aiohttp_server, start_proxy, fast_retries):
    # Its "since ... ago" must move on during a pause of minutes between attempts.
    timing = dataclasses.replace(fast_retries, backoff_s=(120.0, 600.0), offline_refresh_s=0.1)
    fake = FakeMjpegCamera(lambda n: [part(PETS[0]), HANG], status=403)
    url = await serve(aiohttp_server, fake)
    proxy = await start_proxy(CameraConfig(id="cam", source=MjpegConfig(url=url)), resend_seconds=0.2, timing=timing)
    camera = proxy.camera("cam")

    async with raw_viewer(proxy) as reader:
        first = await read_part(reader)
        published = camera.hub.latest.frame.seq
        redrawn = await camera.hub.next_part(published, 2)
        assert (await read_part(reader)).jpeg not in PETS

    assert redrawn is not None and redrawn.frame.placeholder, "published anew"
    assert decoded(first.jpeg).size == decoded(redrawn.frame.jpeg).size
    assert camera.stats.errors["forbidden"] == 1, "drawn again, not fetched again"


async def test_a_new_viewer_gets_the_offline_picture_as_it_reads_now(aiohttp_server, start_proxy, slow_auth):
    # A refused login waits minutes before the next attempt; nobody watched meanwhile, so
    # the picture the hub holds was drawn at the refusal and its "(N s ago)" is out of date.
    fake = FakeSnapshotCamera(PETS, username="admin", password="right")
    server = await aiohttp_server(fake.app())
    config = CameraConfig(
        id="cam",
        source=SnapshotConfig(
            url=str(server.make_url("/snapshot.jpg")), username="admin", password="wrong", auth="digest"
        ),
        name="Café Müller",
    )
    wall = [time.time()]  # the proxy's wall clock, which the test moves on
    proxy = await start_proxy(config, timing=dataclasses.replace(slow_auth, clock=Clock(wall=lambda: wall[0])))
    camera = proxy.camera("cam")
    await eventually(lambda: camera.hub.latest is not None and camera.hub.latest.frame.placeholder)
    drawn_at = wall[0]
    wall[0] += 90  # its "since ... (N ago)" has moved on: no event says so

    async with raw_viewer(proxy) as reader:
        first = await read_part(reader)
        seen_at = wall[0]
    assert camera.state == "auth_failed"

    # The picture is deterministic, and the clock stood still while the viewer came.
    def drawn(at: float) -> bytes:
        reason = CameraState.AUTH_FAILED.reason
        return render_placeholder("Café Müller", reason, camera.error_since, (640, 360), now_wall=at)

    assert first.jpeg == drawn(seen_at)
    assert first.jpeg != drawn(drawn_at), "drawn anew for the new viewer, not the one from 90 s before"
