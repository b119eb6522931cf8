"""Who is a browser: each real client's headers (``tests/client_headers.py``) get the stream,
the snapshot and the errors in the form that client can show: a page for a browser
navigating, pictures for an ``<img>``, raw streams and JSON for players and tools."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from markupsafe import escape

from mjpeg_proxy.camera.state import CameraState
from mjpeg_proxy.web.clients import ClientKind, media_ranges
from mjpeg_proxy.web.pages import ERROR_PICTURE_SIZE
from tests.client_headers import BROWSER_IMAGE, BROWSER_PAGE, CLIENTS, TOOL, Client
from tests.helpers import Proxy, boundary_of, decoded, push_camera, real_frames

FRAMES = real_frames()
# The client's own headers only: aiohttp would add its Accept and User-Agent.
AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent")


@contextlib.asynccontextmanager
async def request(
    proxy: Proxy, path: str, headers: dict[str, str], method: str = "GET"
) -> AsyncIterator[aiohttp.ClientResponse]:
    """``path`` asked for with exactly ``headers`` (and Host)."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, proxy.url(path), headers=headers, skip_auto_headers=AUTO_HEADERS) as response,
    ):
        yield response


@pytest.mark.parametrize("client", CLIENTS, ids=lambda client: client.name)
async def test_each_client_gets_the_stream_in_the_form_it_can_show(start_proxy, client: Client):
    proxy = await start_proxy(push_camera(), resend_seconds=60)
    await proxy.publish("cam", FRAMES[0])
    async with request(proxy, "/cameras/cam/stream.mjpg", client.headers) as response:
        assert response.status == 200
        if client.kind is ClientKind.PAGE:
            assert response.content_type == "text/html"
            assert '<img src="cameras/cam/stream.mjpg"' in await response.text()
            return
        boundary = boundary_of(response.headers["Content-Type"]).encode()
        start = b"--" + boundary + b"\r\nContent-Type: image/jpeg\r\n"
        if client.kind is ClientKind.IMAGE:
            # The browser framing: headers sent ahead of the JPEG, which Chromium needs to
            # paint each picture at once (and a still camera's first picture at all).
            expected = start + b"\r\n" + FRAMES[0][:2]
        else:
            # Players and tools: every part with its exact length (ffmpeg splits wrongly without).
            expected = start + b"Content-Length: %d\r\n" % len(FRAMES[0])
        assert await asyncio.wait_for(response.content.readexactly(len(expected)), 5) == expected


def test_accept_is_read_as_its_listed_media_ranges_less_the_refused_ones():
    accept = "text/html;q=0, application/xhtml+xml; Q=0.0, image/*;q=abc, IMAGE/PNG ; level=1, *; q=.2, */*;q=0.2"
    assert media_ranges(accept) == ["image/*", "image/png", "*/*"]


async def assert_error_form(response: aiohttp.ClientResponse, kind: ClientKind, status: int, message: str) -> None:
    """The error reached the client as ``status``, in the form ``kind`` can show: the HTML
    page saying ``message``, a picture (never a broken-image icon), or JSON saying it."""
    assert response.status == status
    if kind is ClientKind.PAGE:
        assert response.content_type == "text/html"
        page = await response.text()
        assert f"{status} {response.reason}" in page and escape(message) in page
    elif kind is ClientKind.IMAGE:
        assert response.content_type == "image/jpeg"
        assert "no-store" in response.headers["Cache-Control"]
        assert decoded(await response.read()).size == ERROR_PICTURE_SIZE
    else:
        assert response.content_type == "application/json"
        assert await response.json() == {"error": response.reason, "status": status, "message": message}


@pytest.mark.parametrize("client", CLIENTS, ids=lambda client: client.name)
async def test_each_client_gets_a_bad_parameter_error_in_a_form_it_can_show(start_proxy, client: Client):
    proxy = await start_proxy(push_camera(), resend_seconds=60)
    await proxy.publish("cam", FRAMES[0])
    async with request(proxy, "/cameras/cam/stream.mjpg?fps=abc", client.headers) as response:
        await assert_error_form(response, client.kind, 400, "?fps= must be a number from 0.01 to 100, got 'abc'")


KINDS = {ClientKind.PAGE: BROWSER_PAGE, ClientKind.IMAGE: BROWSER_IMAGE, ClientKind.TOOL: TOOL}

BAD_REQUESTS = [
    ("/cameras/nope/stream.mjpg", 404, "no camera with id 'nope'"),
    ("/cameras/nope/snapshot.jpg", 404, "no camera with id 'nope'"),
    ("/cameras/nope", 404, "no camera with id 'nope'"),
    ("/nothing/here", 404, "404: Not Found"),
    (f"/cameras/{'x' * 5000}/stream.mjpg", 404, f"no camera with id '{'x' * 5000}'"),  # cut in a picture
    ("/cameras/cam/stream.mjpg?fps=0", 400, "?fps= must be a number from 0.01 to 100, got '0'"),
    ("/cameras/cam/stream.mjpg?fps=nan", 400, "?fps= must be a number from 0.01 to 100, got 'nan'"),
    ("/cameras/cam/stream.mjpg?fps=1e999", 400, "?fps= must be a number from 0.01 to 100, got '1e999'"),
    ("/cameras/cam/stream.mjpg?max_seconds=abc", 400, "?max_seconds= must be a number from 1 to 31536000, got 'abc'"),
    ("/cameras/cam/stream.mjpg?max_seconds=-5", 400, "?max_seconds= must be a number from 1 to 31536000, got '-5'"),
    ("/cameras/cam/stream.mjpg?fps=2&max_seconds=", 400, "?max_seconds= must be a number from 1 to 31536000, got ''"),
]


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize(("path", "status", "message"), BAD_REQUESTS, ids=lambda value: str(value)[:60])
async def test_every_bad_request_is_explained_to_every_kind_of_client(start_proxy, kind, path, status, message):
    proxy = await start_proxy(push_camera(), resend_seconds=60)
    await proxy.publish("cam", FRAMES[0])
    async with request(proxy, path, KINDS[kind]) as response:
        await assert_error_form(response, kind, status, message)


async def test_a_method_not_allowed_is_explained_to_every_kind_of_client(start_proxy):
    proxy = await start_proxy(push_camera())
    for kind, headers in KINDS.items():
        async with request(proxy, "/cameras/cam/stream.mjpg", headers, method="POST") as response:
            await assert_error_form(response, kind, 405, "405: Method Not Allowed")
            assert "GET" in response.headers["Allow"]


IMAGE_AND_TOOL = (ClientKind.IMAGE, ClientKind.TOOL)
LIMITS = [
    # A browser navigating to a full camera's stream gets the page; its <img> gets the picture.
    (
        {"max_viewers_per_camera": 1},
        503,
        "camera 'cam' has 1 viewers, the most it serves; try again later",
        IMAGE_AND_TOOL,
    ),
    ({"max_viewers": 1}, 503, "the server has 1 viewers, the most it serves; try again later", IMAGE_AND_TOOL),
    (
        {"max_connections_per_client": 1},
        429,
        "this address already has 1 requests in progress, the most allowed; close some streams",
        tuple(ClientKind),
    ),
]


@pytest.mark.parametrize(
    ("limit", "status", "message", "kinds"), LIMITS, ids=["camera_full", "server_full", "client_limit"]
)
async def test_a_limit_is_explained_to_every_kind_of_client_it_refuses(start_proxy, limit, status, message, kinds):
    proxy = await start_proxy(push_camera(), resend_seconds=60, **limit)
    await proxy.publish("cam", FRAMES[0])
    async with request(proxy, "/cameras/cam/stream.mjpg", TOOL) as holder:
        assert holder.status == 200
        for kind in kinds:
            async with request(proxy, "/cameras/cam/stream.mjpg", KINDS[kind]) as response:
                await assert_error_form(response, kind, status, message)
                assert int(response.headers["Retry-After"]) > 0


# --- snapshots of cameras that are down ----------------------------------------------------


@pytest.mark.parametrize("state", ["offline", "auth_failed", "forbidden"])
async def test_snapshot_of_a_down_camera_is_its_offline_picture_for_an_img_and_says_why_to_others(
    start_proxy, down_cameras, state
):
    camera_config = down_cameras[state]
    # On demand: the snapshot wakes the camera, which is in no error state until it has tried.
    proxy = await start_proxy(camera_config, on_demand=True)
    camera = proxy.camera(camera_config.id)
    path = f"/cameras/{camera_config.id}/snapshot.jpg"

    async with request(proxy, path, BROWSER_IMAGE) as response:
        assert response.status == 503
        assert response.content_type == "image/jpeg"
        assert int(response.headers["Retry-After"]) > 0
        assert "no-store" in response.headers["Cache-Control"]
        picture = await response.read()
    assert camera.state == state
    offline = await camera.offline.picture()
    assert offline is not None
    assert picture == offline.jpeg, "the camera's offline picture, which says why"
    assert decoded(picture).size == camera_config.picture_size

    async with request(proxy, path, TOOL) as response:
        await assert_error_form(response, ClientKind.TOOL, 503, (await response.json())["message"])
        assert CameraState(state).reason in (await response.json())["message"]
    async with request(proxy, path, BROWSER_PAGE) as response:
        assert response.status == 503 and response.content_type == "text/html"
        assert escape(CameraState(state).reason) in await response.text()
