"""Pages, snapshots, health check and error answers."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from mjpeg_proxy.camera.timing import CameraTiming
from tests.client_headers import BROWSER_PAGE
from tests.helpers import eventually, push_camera, real_frames
from tests.prefix_proxy import resolve

FRAMES = real_frames()


async def test_index_lists_every_camera_as_a_live_image(start_proxy, aiohttp_client):
    proxy = await start_proxy(push_camera("garage", name="Garage <door>"), push_camera("yard"))
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url("/")) as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            html = await response.text()
    assert '<img src="cameras/garage/stream.mjpg?width=640"' in html
    assert '<img src="cameras/yard/stream.mjpg?width=640"' in html
    assert "Garage &lt;door&gt;" in html and "<door>" not in html
    assert '<a href="cameras/garage">' in html


async def test_kiosk_page_fills_the_window_with_the_stream_and_needs_no_script(start_proxy):
    proxy = await start_proxy(push_camera("garage", name="Garage"))
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url("/cameras/garage")) as response:
            assert response.status == 200
            html = await response.text()
    # From the site's root (the base), this is /cameras/garage/stream.mjpg, under a path prefix too.
    assert '<base href="../">' in html and '<img src="cameras/garage/stream.mjpg"' in html
    assert "overflow: hidden" in html and "background: #000" in html and "object-fit: contain" in html
    # No script for the picture: test_embed_snippet plays the page with JavaScript off.
    assert html.index("<img") < html.index("<script")


async def test_health_check_answers_ok(start_proxy):
    proxy = await start_proxy(push_camera())
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url("/healthz")) as response:
            assert (response.status, await response.text()) == (200, "ok")


async def test_snapshot_is_the_latest_frame_and_is_not_cached(start_proxy):
    proxy = await start_proxy(push_camera())
    await proxy.publish("cam", FRAMES[0])
    await proxy.publish("cam", FRAMES[1])
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url("/cameras/cam/snapshot.jpg")) as response:
            assert response.status == 200
            assert response.content_type == "image/jpeg"
            assert "no-store" in response.headers["Cache-Control"]
            assert await response.read() == FRAMES[1]


async def test_snapshot_waits_for_the_first_frame(start_proxy):
    proxy = await start_proxy(push_camera())
    async with aiohttp.ClientSession() as session:
        request = asyncio.create_task(session.get(proxy.url("/cameras/cam/snapshot.jpg")))
        await eventually(lambda: len(proxy.server.runner.server.connections) == 1)
        assert not request.done()
        proxy.push("cam", FRAMES[3])
        async with await request as response:
            assert response.status == 200
            assert await response.read() == FRAMES[3]


async def test_snapshot_without_any_frame_is_503_with_retry_after(start_proxy):
    # Two frame intervals are under 0.1 s.
    proxy = await start_proxy(push_camera(fps=30), timing=CameraTiming(snapshot_wait_s=0.05))
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url("/cameras/cam/snapshot.jpg")) as response:
            assert response.status == 503
            assert response.headers["Retry-After"].isdigit()
            body = await response.json()
    assert "no frame yet" in body["message"]


@pytest.mark.parametrize(
    "path", ["/cameras/nope", "/cameras/nope/stream.mjpg", "/cameras/nope/snapshot.jpg", "/nothing"]
)
async def test_unknown_camera_or_path_is_404_json_for_tools(start_proxy, path):
    proxy = await start_proxy(push_camera())
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url(path)) as response:
            assert response.status == 404
            assert response.content_type == "application/json"
            body = await response.json()
    assert body["status"] == 404


async def test_unknown_camera_is_404_page_for_browsers(start_proxy):
    proxy = await start_proxy(push_camera())
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url("/cameras/nope"), headers=BROWSER_PAGE) as response:
            assert response.status == 404
            assert response.content_type == "text/html"
            html = await response.text()
    assert "404" in html and "no camera with id &#39;nope&#39;" in html
    assert "Traceback" not in html


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/cameras/garage/", "/cameras/garage"),
        ("/cameras/garage//", "/cameras/garage"),
        ("/cameras//garage", "/cameras/garage"),
        ("/cameras/garage/stream.mjpg/?fps=2", "/cameras/garage/stream.mjpg?fps=2"),
        ("/status/", "/status"),
    ],
)
async def test_trailing_or_doubled_slash_redirects_to_the_page(start_proxy, path, target):
    proxy = await start_proxy(push_camera("garage"))
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url(path), allow_redirects=False) as response:
            assert response.status == 308
            location = response.headers["Location"]
    # Relative, so that it stays under a reverse proxy's path prefix (see test_path_prefix.py).
    assert location.startswith("../")
    assert resolve(proxy.url(path), location) == proxy.url(target)


async def test_a_path_that_has_no_page_with_or_without_slashes_is_404(start_proxy):
    proxy = await start_proxy(push_camera("garage"))
    async with aiohttp.ClientSession() as session:
        for path in ("/nothing/", "/cameras/garage/nothing/", "/cameras/garage/nothing//"):
            async with session.get(proxy.url(path), allow_redirects=False) as response:
                assert response.status == 404, path


async def test_pages_reload_themselves_when_streams_have_a_time_limit(start_proxy):
    # Streams end after max_stream_seconds; a kiosk page must not freeze on the last frame.
    limited = await start_proxy(push_camera("garage"), max_stream_seconds=60)
    unlimited = await start_proxy(push_camera("garage"))
    async with aiohttp.ClientSession() as session:
        for path in ("/", "/cameras/garage"):
            async with session.get(limited.url(path)) as response:
                assert '<meta http-equiv="refresh" content="62">' in await response.text()
            async with session.get(unlimited.url(path)) as response:
                assert 'http-equiv="refresh"' not in await response.text()
