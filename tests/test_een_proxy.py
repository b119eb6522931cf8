"""EEN cameras end to end: the proxy against a fake EEN service on 127.0.0.1."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re

import aiohttp
import pytest

from mjpeg_proxy.config import CameraConfig
from mjpeg_proxy.sources.een import parse_een_timestamp
from mjpeg_proxy.sources.een_config import EenCameraConfig, EenConfig, EenTiming
from tests.fake_een import FakeEen
from tests.helpers import MjpegViewer, Proxy, eventually, is_subsequence, real_frames

PETS = real_frames()
RUNWAY = real_frames("axis-runway-webcam-640x480")
FRONT, GATE = "1006073b", "100d4c41"


FAST_FAILED_LOGINS = EenTiming(failed_login_backoff_s=(0.05, 0.2))
"""Failed (not refused) logins retried within a fraction of a second."""


pytestmark = pytest.mark.usefixtures("fast_retries")  # camera retries within a fraction of a second


@pytest.fixture
def fake() -> FakeEen:
    fake = FakeEen(api_key="KEY-9f8e7d6c")
    fake.add_camera(FRONT, PETS, interval_s=0.1)
    fake.add_camera(GATE, RUNWAY, interval_s=0.1)
    return fake


@pytest.fixture
def start_een(aiohttp_server, start_proxy):
    """Serve ``fake`` and start a proxy with one camera per ESN (camera id = ESN)."""

    async def start(
        fake: FakeEen,
        *esns: str,
        password: str | None = None,
        api_key: str | None = None,
        timing: EenTiming = FAST_FAILED_LOGINS,
    ) -> Proxy:
        server = await aiohttp_server(fake.app())
        een = EenConfig(
            username=fake.username,
            password=password or fake.password,
            api_key=api_key or fake.api_key,
            base_url=str(server.make_url("/")).rstrip("/"),
            timing=timing,
        )
        cameras = [CameraConfig(id=esn, source=EenCameraConfig(esn=esn, account=een)) for esn in esns]
        return await start_proxy(*cameras)

    return start


def stream_url(proxy: Proxy, esn: str) -> str:
    return proxy.url(f"/cameras/{esn}/stream.mjpg")


async def test_previews_reach_the_viewer_byte_identical_with_een_timestamps(fake, start_een):
    proxy = await start_een(fake, FRONT)
    async with MjpegViewer(stream_url(proxy, FRONT)) as viewer:
        parts = await viewer.new_parts(6)
    camera = fake.cameras[FRONT]
    assert is_subsequence([p.jpeg for p in parts], camera.served)
    # Each part is stamped with the time EEN gave the preview, not the time we got it.
    stamps = {parse_een_timestamp("preview-" + p.stamp) for p in camera.previews}
    assert all(float(p.headers["x-timestamp"]) in stamps for p in parts)
    # The documented live loop: log in, one prev for an immediate picture, then next, next, ...
    calls = [(path, esn) for method, path, esn in fake.log]
    assert calls[:4] == [
        ("/g/aaa/authenticate", None),
        ("/g/aaa/authorize", None),
        ("/asset/prev/image.jpeg", FRONT),
        ("/asset/next/image.jpeg", FRONT),
    ]
    assert {path for path, _ in calls[4:]} == {"/asset/next/image.jpeg"}


async def test_two_cameras_share_one_login(fake, start_een):
    proxy = await start_een(fake, FRONT, GATE)
    async with MjpegViewer(stream_url(proxy, FRONT)) as front, MjpegViewer(stream_url(proxy, GATE)) as gate:
        front_parts, gate_parts = await asyncio.gather(front.new_parts(3), gate.new_parts(3))
    assert set(p.jpeg for p in front_parts) <= set(PETS)
    assert set(p.jpeg for p in gate_parts) <= set(RUNWAY)
    assert (fake.authenticate_calls, fake.logins) == (1, 1)


async def test_session_expiry_mid_stream_costs_one_login_and_no_viewer_notices(fake, start_een):
    proxy = await start_een(fake, FRONT, GATE)
    async with MjpegViewer(stream_url(proxy, FRONT)) as front, MjpegViewer(stream_url(proxy, GATE)) as gate:
        await asyncio.gather(front.new_parts(3), gate.new_parts(3))
        fake.expire_sessions()
        # The same connections go on receiving new previews of both cameras.
        front_after, gate_after = await asyncio.gather(front.new_parts(5), gate.new_parts(5))
    assert is_subsequence([p.jpeg for p in front.parts], fake.cameras[FRONT].served)
    assert is_subsequence([p.jpeg for p in gate.parts], fake.cameras[GATE].served)
    assert fake.logins == 2, "both cameras met the 401; exactly one new login serves them both"
    assert proxy.camera(FRONT).state == proxy.camera(GATE).state == "live"


async def test_50_viewers_per_camera_cost_one_open_request_per_camera(fake, start_een):
    proxy = await start_een(fake, FRONT, GATE)

    async def watch(esn: str) -> list[bytes]:
        async with MjpegViewer(stream_url(proxy, esn)) as viewer:
            return [p.jpeg for p in await viewer.new_parts(4)]

    results = await asyncio.wait_for(asyncio.gather(*(watch(esn) for esn in [FRONT, GATE] * 50)), 60)
    for esn, frames in zip([FRONT, GATE] * 50, results, strict=True):
        assert is_subsequence(frames, fake.cameras[esn].served)
    for camera in fake.cameras.values():
        assert camera.max_open_next == 1
    # One prev at the start, then one next per preview: not one per viewer.
    for esn in (FRONT, GATE):
        assert fake.cameras[esn].image_requests <= proxy.camera(esn).stats.frames_received + 2


async def test_forbidden_camera_is_reported_and_recovers_when_access_is_granted(fake, start_een):
    fake.access.discard(GATE)
    proxy = await start_een(fake, GATE)
    camera = proxy.camera(GATE)
    async with MjpegViewer(stream_url(proxy, GATE)) as viewer:
        await eventually(lambda: camera.state == "forbidden")
        assert "403" in camera.stats.last_error
        fake.access.add(GATE)
        await viewer.new_parts(2)
    assert camera.state == "live"


async def test_unknown_camera_is_not_found_and_recovers_when_it_appears(fake, start_een):
    proxy = await start_een(fake, "0badcafe")
    camera = proxy.camera("0badcafe")
    async with MjpegViewer(stream_url(proxy, "0badcafe")) as viewer:
        offline = await viewer.next_new_part()  # the offline picture, saying why
        assert camera.state == "not_found" and offline.jpeg not in PETS
        fake.add_camera("0badcafe", PETS).emit()
        part = await viewer.next_new_part()
        while part.jpeg not in PETS:  # offline pictures re-sent before the camera appeared
            part = await viewer.next_new_part()
    assert part.jpeg == PETS[0]


async def test_503_burst_backs_off_logs_once_and_viewers_carry_on(fake, start_een, caplog):
    caplog.set_level(logging.INFO)
    proxy = await start_een(fake, FRONT)
    camera = proxy.camera(FRONT)
    async with MjpegViewer(stream_url(proxy, FRONT)) as viewer:
        await viewer.new_parts(2)
        fake.cameras[FRONT].fail_with = [503] * 4
        await eventually(lambda: camera.stats.errors["unavailable"] == 4)
        await viewer.new_parts(3)
    warnings = [r for r in caplog.records if r.name == "mjpeg_proxy.camera.state" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "503" in warnings[0].getMessage()
    assert any("live again after 4 failed attempts" in r.getMessage() for r in caplog.records)
    assert fake.logins == 1


async def test_stalled_camera_is_detected_and_the_same_viewer_resumes(fake, start_een):
    proxy = await start_een(fake, FRONT)
    camera = proxy.camera(FRONT)
    async with MjpegViewer(stream_url(proxy, FRONT)) as viewer:
        await viewer.new_parts(2)
        fake.cameras[FRONT].stalled = True
        await eventually(lambda: camera.state == "stalled")
        fake.cameras[FRONT].stalled = False
        await viewer.new_parts(2)
    assert camera.state == "live"
    assert fake.cameras[FRONT].max_open_next == 1, "the stalled request was dropped before a new one was made"


async def test_garbage_bodies_never_reach_viewers(fake, start_een):
    proxy = await start_een(fake, FRONT)
    camera = proxy.camera(FRONT)
    async with MjpegViewer(stream_url(proxy, FRONT)) as viewer:
        await viewer.new_parts(1)
        fake.cameras[FRONT].garbage = True
        await eventually(lambda: camera.stats.errors["bad_frame"] >= 2)
        assert camera.state == "offline"
        fake.cameras[FRONT].garbage = False
        await viewer.new_parts(2)
    assert all(part.jpeg in PETS for part in viewer.parts)


async def test_wrong_password_is_auth_failed_and_login_is_not_retried_soon(fake, start_een, caplog):
    proxy = await start_een(fake, FRONT, GATE, password="wrong password")
    await eventually(lambda: proxy.camera(FRONT).state == proxy.camera(GATE).state == "auth_failed")
    assert fake.authenticate_calls == 1, "one login attempt for both cameras"
    assert "EEN refused the username or password" in proxy.camera(FRONT).stats.last_error
    assert any(r.levelno == logging.ERROR and "login failed" in r.getMessage() for r in caplog.records)
    # Both cameras wait for the account's next attempt, minutes away, not seconds.
    retries = [
        float(re.search(r"retrying in ([0-9.]+) s", r.getMessage()).group(1))
        for r in caplog.records
        if r.name == "mjpeg_proxy.camera.state" and "auth_failed" in r.getMessage()
    ]
    assert len(retries) == 2 and min(retries) >= 60


async def test_cameras_recover_once_the_password_is_accepted(fake, start_een):
    timing = dataclasses.replace(FAST_FAILED_LOGINS, refused_login_backoff_s=(0.05, 0.2))
    proxy = await start_een(fake, FRONT, password="new password", timing=timing)
    async with MjpegViewer(stream_url(proxy, FRONT)) as viewer:
        await eventually(lambda: proxy.camera(FRONT).state == "auth_failed")
        fake.password = "new password"  # the site owner fixes the account on EEN's side
        await viewer.new_parts(2)
    assert fake.logins == 1


async def test_account_states_refused_at_login_are_named(fake, start_een):
    fake.login_status = 402
    proxy = await start_een(fake, FRONT)
    await eventually(lambda: proxy.camera(FRONT).state == "auth_failed")
    assert "suspended" in proxy.camera(FRONT).stats.last_error


async def test_no_secret_reaches_logs_pages_or_errors(fake, start_een, caplog):
    caplog.set_level(logging.DEBUG)
    proxy = await start_een(fake, FRONT, GATE)
    async with MjpegViewer(stream_url(proxy, FRONT)) as viewer:
        await viewer.new_parts(2)
        fake.expire_sessions()
        fake.cameras[FRONT].fail_with = [503, 500]
        fake.cameras[FRONT].garbage = True
        await eventually(lambda: proxy.camera(FRONT).stats.errors["bad_frame"] >= 1)
        fake.cameras[FRONT].garbage = False
        await viewer.new_parts(2)
    async with aiohttp.ClientSession() as session:
        pages = [await (await session.get(proxy.url(path))).text() for path in ("/", f"/cameras/{FRONT}", "/nope")]
    issued_keys = fake.issued_keys
    assert fake.logins == 2 and len(issued_keys) == 2
    secrets = [fake.username, fake.password, fake.api_key, *issued_keys]
    texts = [caplog.text, *pages, *(str(proxy.camera(esn).stats.last_error) for esn in (FRONT, GATE))]
    for secret in secrets:
        for text in texts:
            assert secret not in text


async def test_answers_that_come_back_at_once_never_become_a_request_flood(fake, start_een):
    camera = fake.cameras[FRONT]
    camera.fail_with = [408] * 1000  # "no preview yet", answered at once, again and again
    await start_een(fake, FRONT)
    await eventually(lambda: len(camera.request_times) >= 6)
    gaps = [b - a for a, b in zip(camera.request_times, camera.request_times[1:], strict=False)]
    assert min(gaps) >= 0.24, "at most 4 requests a second for one camera, whatever EEN answers"


async def test_a_slow_login_is_not_abandoned_and_is_shared(fake, start_een):
    # Logging in takes longer than the cameras' stall timeout (1 s here): the stalled
    # cameras must not cancel it, nor start logins of their own.
    fake.login_delay_s = 1.5
    proxy = await start_een(fake, FRONT, GATE)
    await eventually(lambda: proxy.camera(FRONT).state == proxy.camera(GATE).state == "live", 10)
    assert (fake.authenticate_calls, fake.logins) == (1, 1)


async def test_camera_with_no_stored_preview_waits_for_its_first(fake, start_een):
    fake.add_camera("0c0ffee0", PETS)  # no preview yet: prev answers 404 "Image not found"
    proxy = await start_een(fake, "0c0ffee0")
    async with MjpegViewer(stream_url(proxy, "0c0ffee0")) as viewer:
        await eventually(lambda: fake.cameras["0c0ffee0"].open_next == 1)
        fake.cameras["0c0ffee0"].emit()
        assert (await viewer.next_new_part()).jpeg == PETS[0]
    assert proxy.camera("0c0ffee0").stats.errors["not_found"] == 0


async def test_redirect_to_another_archiver_of_the_same_host_keeps_the_session(fake, start_een):
    fake.redirect_images_to = "/archiver"
    proxy = await start_een(fake, FRONT)
    async with MjpegViewer(stream_url(proxy, FRONT)) as viewer:
        await viewer.new_parts(2)
    assert fake.logins == 1


async def test_redirect_to_a_foreign_host_gets_no_session_and_no_login_storm(fake, start_een, aiohttp_server):
    other = FakeEen()
    other_server = await aiohttp_server(other.app())
    fake.redirect_images_to = str(other_server.make_url("/archiver")).rstrip("/")
    proxy = await start_een(fake, FRONT)
    camera = proxy.camera(FRONT)
    await eventually(lambda: camera.stats.errors["unavailable"] >= 2)
    assert camera.state == "offline" and "not an EEN host" in camera.stats.last_error
    assert other.log == [], "the session key never goes to a host that is not EEN's"
    assert fake.logins == 1
