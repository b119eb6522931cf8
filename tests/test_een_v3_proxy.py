"""EEN API v3 cameras end to end: the proxy against the fake EEN v3 on 127.0.0.1 (issue 13).

Protocol facts: the project's EEN notes (shared/EEN-API.md), section 3.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from mjpeg_proxy.config import CameraConfig
from mjpeg_proxy.sources.een_config import EenCameraConfig
from mjpeg_proxy.sources.een_timing import EenTiming
from mjpeg_proxy.sources.een_tokens import read_tokens
from mjpeg_proxy.sources.een_v3 import parse_v3_timestamp
from mjpeg_proxy.sources.een_v3_config import EenV3Config
from mjpeg_proxy.web.app import apply_config
from mjpeg_proxy.web.appkeys import CONFIG
from tests.fake_een_v3 import MULTIPART_PATH, FakeEenV3
from tests.helpers import MjpegViewer, Proxy, eventually, real_frames

PETS = real_frames()
RUNWAY = real_frames("axis-runway-webcam-640x480")
FRONT, GATE = "1006073b", "100d4c41"
REDIRECT = "http://127.0.0.1:3333/callback"
QUICK = EenTiming(
    refused_login_backoff_s=(0.05, 0.2), failed_login_backoff_s=(0.05, 0.2), min_request_gap_s=0.0, login_poll_s=0.05
)
"""Refresh failures retried and the token file looked at within a fraction of a second."""

pytestmark = pytest.mark.usefixtures("fast_retries")


@pytest.fixture
def fake() -> FakeEenV3:
    fake = FakeEenV3(redirect_uris=(REDIRECT,))
    fake.add_camera(FRONT, PETS, interval_s=0.1)
    fake.add_camera(GATE, RUNWAY, interval_s=0.1)
    return fake


@pytest.fixture
async def een(aiohttp_server, fake) -> URL:
    """The fake EEN v3, serving; its base URL."""
    server = await aiohttp_server(fake.app())
    return server.make_url("")


@pytest.fixture
def start_v3(start_proxy, een, fake, tmp_path):
    """Start a proxy whose cameras are the given ESNs on the fake's v3 account (camera id = ESN)."""

    async def start(*esns: str, preview: str = "multipart", timing: EenTiming = QUICK, **options) -> Proxy:
        account = EenV3Config(fake.client_id, fake.client_secret, str(tmp_path / "een.json"), str(een), timing=timing)
        cameras = [
            CameraConfig(id=esn, source=EenCameraConfig(esn=esn, account=account, preview=preview)) for esn in esns
        ]
        return await start_proxy(*cameras, **options)

    return start


@pytest.fixture
async def logged_in(een, fake, tmp_path) -> Path:
    """The token file of a login to the fake."""
    path = tmp_path / "een.json"
    await fake.log_in(een, path)
    return path


@pytest.mark.parametrize("preview", ["multipart", "image"])
async def test_frames_are_relayed_byte_identical_in_both_preview_modes(logged_in, start_v3, fake, preview):
    proxy = await start_v3(FRONT, GATE, preview=preview)
    async with MjpegViewer(proxy.url(f"/cameras/{FRONT}/stream.mjpg")) as front:
        async with MjpegViewer(proxy.url(f"/cameras/{GATE}/stream.mjpg")) as gate:
            for jpeg in await front.new_parts(3):
                assert jpeg.jpeg in PETS
            for jpeg in await gate.new_parts(3):
                assert jpeg.jpeg in RUNWAY
    if preview == "image":
        stamped = proxy.camera(FRONT).hub.latest
        assert stamped is not None and stamped.frame.upstream_time is not None
        assert abs(stamped.frame.upstream_time - time.time()) < 60
        assert fake.requests["/api/v3.0/feeds"] == 0
    else:
        assert fake.requests["/api/v3.0/media/liveImage.jpeg"] == 0
        assert fake.cameras[FRONT].stream_requests == 1


@pytest.mark.parametrize("preview", ["multipart", "image"])
async def test_many_viewers_share_one_upstream_request_loop(logged_in, start_v3, fake, preview):
    proxy = await start_v3(FRONT, preview=preview)
    viewers = [MjpegViewer(proxy.url(f"/cameras/{FRONT}/stream.mjpg")) for _ in range(20)]
    for viewer in viewers:
        await viewer.__aenter__()
    try:
        for viewer in viewers:
            await viewer.new_parts(2)
    finally:
        for viewer in viewers:
            await viewer.__aexit__(None, None, None)
    camera = fake.cameras[FRONT]
    if preview == "multipart":
        assert (camera.stream_requests, camera.max_open_streams) == (1, 1)
    else:
        # One liveImage at a time: each request is answered by one tick, 0.1 s apart.
        assert camera.live_image_requests <= len(camera.images) + 1


async def test_tokens_rotate_while_viewers_watch_on_the_same_connections(logged_in, start_v3, fake):
    fake.access_token_ttl_s = 1.0  # refreshed at half its lifetime: every 0.5 s
    await log_in_again_with_short_tokens(fake, logged_in)
    proxy = await start_v3(FRONT, preview="image")
    async with MjpegViewer(proxy.url(f"/cameras/{FRONT}/stream.mjpg")) as viewer:
        await viewer.next_new_part()
        await fake.until(lambda: fake.token_requests["refresh_token"] >= 3)
        await viewer.new_parts(3)
    assert proxy.camera(FRONT).state == "live"
    await proxy.server.close()  # a refresh under way ends first, its tokens written
    assert fake.dead_refreshes == 0
    record = read_tokens(logged_in)
    assert record is not None and record.access_token in fake.access_tokens


async def log_in_again_with_short_tokens(fake: FakeEenV3, path: Path) -> None:
    """Replace the file's tokens with ones issued under the fake's current ``access_token_ttl_s``."""
    record = read_tokens(path)
    assert record is not None
    url = URL.build(scheme="http", host=record.api_host, port=record.api_port)
    await fake.log_in(url, path)


async def watch_through_an_expiry(proxy: Proxy, fake: FakeEenV3) -> None:
    """A viewer watches a frame, the access tokens expire, and two new frames come."""
    async with MjpegViewer(proxy.url(f"/cameras/{FRONT}/stream.mjpg")) as viewer:
        await viewer.next_new_part()
        fake.expire_access_tokens()
        await viewer.new_parts(2)


async def test_an_expired_access_token_is_refreshed_once_and_frames_go_on(logged_in, start_v3, fake):
    proxy = await start_v3(FRONT, preview="image")
    await watch_through_an_expiry(proxy, fake)
    assert fake.token_requests["refresh_token"] == 1
    assert proxy.camera(FRONT).stats.errors.get("login_expired", 0) == 0


async def test_a_multipart_stream_cut_at_rotation_reconnects_with_the_new_token(logged_in, start_v3, fake):
    fake.stream_part_limit = 3
    proxy = await start_v3(FRONT)
    async with MjpegViewer(proxy.url(f"/cameras/{FRONT}/stream.mjpg")) as viewer:
        await viewer.new_parts(2)
        fake.expire_access_tokens()
        await viewer.new_parts(4)
    assert fake.token_requests["refresh_token"] == 1
    assert fake.cameras[FRONT].stream_requests >= 2
    assert fake.requests["/api/v3.0/feeds"] == 1  # the multipartUrl is reused


async def test_without_a_token_file_cameras_say_to_log_in_then_come_up_by_themselves(
    een, start_v3, fake, tmp_path, caplog
):
    proxy = await start_v3(FRONT)
    await eventually(lambda: proxy.camera(FRONT).state == "login_needed")
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url(f"/cameras/{FRONT}/snapshot.jpg")) as answer:
            assert answer.status == 503
    before = sum(fake.requests.values())
    await eventually(lambda: proxy.camera(FRONT).stats.errors.get("login_needed", 0) >= 5)
    assert sum(fake.requests.values()) == before  # looking for the file asks EEN nothing
    async with MjpegViewer(proxy.url(f"/cameras/{FRONT}/stream.mjpg")) as viewer:
        assert (await viewer.next_new_part()).jpeg not in PETS  # the offline picture
        await fake.log_in(een, tmp_path / "een.json")
        assert (await viewer.next_new_part()).jpeg in PETS


async def test_a_refused_refresh_is_login_expired_without_a_storm_until_a_new_login(
    logged_in, een, start_v3, fake, tmp_path
):
    proxy = await start_v3(FRONT, GATE, preview="image")
    async with MjpegViewer(proxy.url(f"/cameras/{FRONT}/stream.mjpg")) as viewer:
        await viewer.next_new_part()
        fake.refuse_refreshes = 1
        fake.expire_access_tokens()
        await eventually(lambda: proxy.camera(FRONT).state == proxy.camera(GATE).state == "login_expired")
        assert fake.token_requests["refresh_token"] == 1  # one refresh for the account, not one per camera
        before = sum(fake.requests.values())
        await eventually(lambda: proxy.camera(FRONT).stats.errors["login_expired"] >= 5)
        assert sum(fake.requests.values()) == before
        async with aiohttp.ClientSession() as session:
            async with session.get(proxy.url("/api/cameras/" + FRONT)) as answer:
                status = await answer.json()
        assert "een-login" in str(status)
        await fake.log_in(een, logged_in)
        await viewer.next_new_part()  # the same connection: the offline picture, then live again
        await eventually(lambda: proxy.camera(FRONT).state == "live")
    assert fake.dead_refreshes == 0


async def test_a_restart_after_a_rotation_uses_the_new_tokens(logged_in, start_v3, fake):
    first = await start_v3(FRONT, preview="image")
    await watch_through_an_expiry(first, fake)
    await first.server.close()
    rotated = read_tokens(logged_in)
    second = await start_v3(FRONT, preview="image")
    async with MjpegViewer(second.url(f"/cameras/{FRONT}/stream.mjpg")) as viewer:
        await viewer.next_new_part()
    assert fake.token_requests["refresh_token"] == 1 and fake.dead_refreshes == 0
    assert read_tokens(logged_in) == rotated


@pytest.mark.parametrize(
    "status, state, words",
    [(403, "forbidden", "give it access"), (404, "not_found", "check the camera's esn"), (503, "offline", "503")],
)
async def test_v3_errors_become_camera_states_that_say_what_to_do(logged_in, start_v3, fake, status, state, words):
    fake.fail("/api/v3.0/feeds", status, count=1000)
    proxy = await start_v3(FRONT)
    await eventually(lambda: proxy.camera(FRONT).state == state)
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url(f"/api/cameras/{FRONT}")) as answer:
            assert words in str(await answer.json())


async def test_too_many_requests_waits_as_long_as_een_asks(logged_in, start_v3, fake):
    fake.fail("/api/v3.0/media/liveImage.jpeg", 429, retry_after="30")
    proxy = await start_v3(FRONT, preview="image")
    await eventually(lambda: proxy.camera(FRONT).stats.errors.get("unavailable") == 1)
    assert proxy.camera(FRONT).tracker.retry_wait_s() > 25


async def test_an_offline_camera_has_no_feed_and_shows_offline(logged_in, start_v3, fake):
    fake.cameras[FRONT].online = False
    proxy = await start_v3(FRONT)
    await eventually(lambda: proxy.camera(FRONT).state == "offline")
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url(f"/api/cameras/{FRONT}")) as answer:
            assert "offline" in str(await answer.json())


async def test_a_token_answer_without_its_host_finds_it_in_client_settings(logged_in, start_v3, fake):
    fake.base_url_in_token = False
    proxy = await start_v3(FRONT, preview="image")
    await watch_through_an_expiry(proxy, fake)
    assert fake.requests["/api/v3.0/clientSettings"] == 1


async def test_no_secret_in_any_log_line_page_or_answer_at_debug_level(logged_in, een, start_v3, fake, caplog):
    caplog.set_level(logging.DEBUG)
    proxy = await start_v3(FRONT, GATE, preview="image")
    pages = []
    async with aiohttp.ClientSession() as session:
        async with MjpegViewer(proxy.url(f"/cameras/{FRONT}/stream.mjpg")) as viewer:
            await viewer.next_new_part()
            fake.expire_access_tokens()
            await viewer.new_parts(2)
            fake.refuse_refreshes = 1
            fake.expire_access_tokens()
            await eventually(lambda: proxy.camera(FRONT).state == "login_expired")
            for path in ("/", "/status", "/api/cameras", f"/api/cameras/{FRONT}", "/metrics", f"/cameras/{FRONT}"):
                async with session.get(proxy.url(path)) as answer:
                    pages.append(await answer.text())
    said = "\n".join([record.getMessage() for record in caplog.records] + pages)
    assert fake.tokens_issued["refresh"] >= 2
    leaked = [secret for secret in fake.issued_secrets if secret in said]
    assert leaked == []


async def test_a_token_file_others_can_read_is_warned_about_at_start(logged_in, start_v3, caplog):
    os.chmod(logged_in, 0o644)
    await start_v3(FRONT)
    await eventually(lambda: any("chmod 600" in record.getMessage() for record in caplog.records))


def test_v3_timestamps_read_iso_8601_with_an_offset():
    assert parse_v3_timestamp("2022-08-08T07:57:37.000+00:00") == 1659945457.0
    assert parse_v3_timestamp("2022-08-08T09:57:37.500+02:00") == 1659945457.5
    assert parse_v3_timestamp("2022-08-08T07:57:37Z") == 1659945457.0
    assert parse_v3_timestamp("2022-08-08T07:57:37") is None  # no zone: not trusted
    assert parse_v3_timestamp("preview-20180917213405.700") is None
    assert parse_v3_timestamp(None) is None


async def test_a_renewal_that_fails_while_the_token_is_still_valid_does_not_stop_the_cameras(logged_in, start_v3, fake):
    fake.access_token_ttl_s = 4.0  # renewed after 2 s, valid for 2 s more
    await log_in_again_with_short_tokens(fake, logged_in)
    fake.fail("/oauth2/token", 503, count=3)
    proxy = await start_v3(FRONT, preview="image")
    async with MjpegViewer(proxy.url(f"/cameras/{FRONT}/stream.mjpg")) as viewer:
        await viewer.next_new_part()
        await fake.until(lambda: fake.tokens_issued["access"] == 3)  # the login's, the test's, the renewal's
        await viewer.new_parts(2)
    assert fake.token_requests["refresh_token"] >= 1 and fake.requests["/oauth2/token"] >= 5
    assert proxy.camera(FRONT).stats.errors.get("unavailable", 0) == 0


async def test_a_reload_tries_an_expired_login_once_more_without_a_storm(logged_in, start_v3, fake):
    proxy = await start_v3(FRONT, preview="image")
    await eventually(lambda: proxy.camera(FRONT).state == "live")
    fake.refuse_refreshes = 1
    fake.expire_access_tokens()
    await eventually(lambda: proxy.camera(FRONT).state == "login_expired")
    await apply_config(proxy.server.app, proxy.server.app[CONFIG].current)  # what SIGHUP does, with the same file
    await fake.until(lambda: fake.token_requests["refresh_token"] == 2)  # one more try, refused: its token is dead
    before = sum(fake.requests.values())
    await eventually(lambda: proxy.camera(FRONT).stats.errors["login_expired"] >= 5)
    assert sum(fake.requests.values()) == before
    assert proxy.camera(FRONT).state == "login_expired"


async def test_a_stream_address_that_refuses_a_fresh_token_is_replaced_and_the_account_stands(
    logged_in, start_v3, fake
):
    fake.fail(MULTIPART_PATH, 401, count=2)  # with the token in force, then with the renewed one
    proxy = await start_v3(FRONT, GATE, on_demand=True)
    async with MjpegViewer(proxy.url(f"/cameras/{FRONT}/stream.mjpg")) as front:
        assert (await next_camera_frame(front, PETS)) in PETS
    async with MjpegViewer(proxy.url(f"/cameras/{GATE}/stream.mjpg")) as gate:
        assert (await next_camera_frame(gate, RUNWAY)) in RUNWAY
    assert fake.token_requests["refresh_token"] == 1
    assert fake.camera_requests[FRONT] == 5  # feeds, the address twice, feeds again, the new address
    assert proxy.camera(FRONT).stats.errors == {"unavailable": 1}


async def test_a_stream_address_that_fails_before_its_first_frame_is_asked_for_again(logged_in, start_v3, fake):
    fake.fail(MULTIPART_PATH, 503)
    proxy = await start_v3(FRONT)
    async with MjpegViewer(proxy.url(f"/cameras/{FRONT}/stream.mjpg")) as viewer:
        assert (await next_camera_frame(viewer, PETS)) in PETS
    assert fake.requests["/api/v3.0/feeds"] == 2


async def next_camera_frame(viewer: MjpegViewer, frames: list[bytes]) -> bytes:
    """The viewer's next new picture that is one of ``frames`` (not the offline picture)."""
    while True:
        jpeg = (await viewer.next_new_part()).jpeg
        if jpeg in frames:
            return jpeg


async def test_a_stream_whose_renewal_is_refused_shows_login_expired(logged_in, start_v3, fake, caplog):
    caplog.set_level(logging.DEBUG)
    fake.stream_part_limit = 2
    proxy = await start_v3(FRONT)
    async with MjpegViewer(proxy.url(f"/cameras/{FRONT}/stream.mjpg")) as viewer:
        await viewer.next_new_part()
        fake.refuse_refreshes = 1
        fake.expire_access_tokens()
        await eventually(lambda: proxy.camera(FRONT).state == "login_expired")
    # Straight there: the lost login is not taken for a refused stream address.
    assert not [r for r in caplog.records if "new stream address" in r.getMessage()]
