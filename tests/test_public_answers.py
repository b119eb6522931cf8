"""No upstream detail in any public answer (issue 15, item 2): with the operator pages kept to a
token, every public URL, in every client form, and every refusal is scanned for the upstreams'
hosts, ports, paths, user names, passwords and error texts; the operator pages show them."""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from aiohttp import web
from PIL import Image
from yarl import URL

from mjpeg_proxy.config import CameraConfig
from mjpeg_proxy.sources.mjpeg import MjpegConfig
from mjpeg_proxy.sources.snapshot import SnapshotConfig
from tests.client_headers import BROWSER_IMAGE, BROWSER_PAGE, TOOL
from tests.helpers import eventually, push_camera, real_frames

JPEG = real_frames()[0]
TOKEN = "operator-0123456789abcdef"
KEY = b"k3y-0123456789abcdef"
ERROR_BODY = "zebra-upstream-says-7731"
FORMS = {"page": BROWSER_PAGE, "image": BROWSER_IMAGE, "tool": TOOL}
SOI = b"\xff\xd8"


@pytest.fixture
async def broken_upstream(aiohttp_server) -> AsyncIterator[str]:
    """A camera on 127.0.0.1 that answers every request 500 with ``ERROR_BODY``; its base URL."""

    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=500, text=f"{ERROR_BODY} at {request.path}")

    app = web.Application()
    app.router.add_get("/{tail:.*}", fail)
    server = await aiohttp_server(app)
    yield str(server.make_url("/")).rstrip("/")


@pytest.fixture
def refused_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bound:
        bound.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        yield bound.getsockname()[1]


@pytest.fixture
async def scanned_proxy(start_proxy, fast_retries, down_cameras, broken_upstream, refused_port):
    cameras = [
        push_camera("cam"),
        push_camera("yard", access="signed"),
        CameraConfig(
            id="broken",
            source=SnapshotConfig(
                url=f"{broken_upstream}/quokka-path-5512/snap.jpg", username="wombat-user", password="narwhal-pw-9911"
            ),
        ),
        CameraConfig(
            id="broken-mjpeg",
            source=MjpegConfig(url=f"{broken_upstream}/ocelot-stream/video.cgi", username="ibex-user", password="pw"),
        ),
        CameraConfig(id="mjpeg-down", source=MjpegConfig(url=f"http://127.0.0.1:{refused_port}/lynx-feed/mjpg")),
        *down_cameras.values(),
    ]
    proxy = await start_proxy(*cameras, operator_token=TOKEN, signing_keys=(KEY,))
    await proxy.publish("cam", JPEG)
    await proxy.publish("yard", JPEG)
    down = [camera.id for camera in cameras if camera.id not in ("cam", "yard")]
    await eventually(lambda: all(proxy.camera(camera_id).state.is_error for camera_id in down), timeout_s=10)
    secrets = {ERROR_BODY, "quokka-path-5512", "wombat-user", "narwhal-pw-9911", "ocelot-stream", "ibex-user"}
    secrets |= {"lynx-feed", f"127.0.0.1:{refused_port}", broken_upstream.removeprefix("http://")}
    for camera in down_cameras.values():
        assert isinstance(camera.source, SnapshotConfig)
        secrets.add(f"127.0.0.1:{URL(camera.source.url).port}")
    return proxy, [camera.id for camera in cameras], secrets


def public_paths(camera_ids: list[str]) -> list[str]:
    paths = ["/", "/healthz", "/nope", "/cameras/nope", "/cameras/nope/snapshot.jpg"]
    for camera_id in camera_ids:
        base = f"/cameras/{camera_id}"
        paths += [base, f"{base}/", f"{base}/snapshot.jpg", f"{base}/stream.mjpg", f"{base}/stream.mjpg?fps=abc"]
    return paths


def operator_paths(camera_ids: list[str]) -> list[str]:
    return ["/status", "/api/cameras", "/metrics", *(f"/api/cameras/{camera_id}" for camera_id in camera_ids)]


async def answer_text(response: aiohttp.ClientResponse) -> str:
    """The status line, the headers and the text of an answer; a JPEG body is checked to be a picture and left out
    (its text is drawn), and of a stream only what comes before its first JPEG."""
    text = f"{response.status} {response.reason}\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    if response.method == "HEAD":
        return text
    if response.content_type == "image/jpeg":
        Image.open(io.BytesIO(await response.read())).verify()
        return text
    if response.content_type.startswith("multipart/"):
        data = b""
        async with asyncio.timeout(10):
            while SOI not in data:
                data += await response.content.readany()
        return text + data[: data.index(SOI)].decode("latin-1")
    return text + "\n" + (await response.read()).decode("utf-8", "replace")


async def scan(proxy, paths: list[str], method: str = "GET", headers: dict[str, str] | None = None) -> dict[str, str]:
    """What each path answers to each client form, as ``answer_text``, keyed by form, method and path."""
    answers = {}
    async with aiohttp.ClientSession() as session:
        for form, form_headers in FORMS.items():
            for path in paths:
                async with session.request(
                    method, proxy.url(path), headers={**form_headers, **(headers or {})}, allow_redirects=False
                ) as response:
                    answers[f"{form} {method} {path}"] = await answer_text(response)
    return answers


async def test_no_public_answer_carries_upstream_detail(scanned_proxy):
    proxy, camera_ids, secrets = scanned_proxy
    answers = await scan(proxy, public_paths(camera_ids))
    answers |= await scan(proxy, operator_paths(camera_ids))  # refused: 401
    answers |= await scan(proxy, operator_paths(camera_ids), headers={"Authorization": "Bearer wrong-token-000000"})
    answers |= await scan(proxy, ["/", "/cameras/broken/snapshot.jpg"], method="POST")  # 405
    answers |= await scan(proxy, ["/healthz", "/cameras/broken/stream.mjpg"], method="HEAD")
    statuses = {text.split(" ", 1)[0] for text in answers.values()}
    assert {"200", "308", "400", "401", "403", "404", "405", "503"} <= statuses  # every kind of answer was seen
    leaks = {key: sorted(s for s in secrets if s in text) for key, text in answers.items()}
    assert {key: found for key, found in leaks.items() if found} == {}


async def test_the_operator_pages_show_the_upstream_detail_to_operators(scanned_proxy):
    proxy, camera_ids, _ = scanned_proxy
    answers = await scan(proxy, operator_paths(camera_ids), headers={"Authorization": f"Bearer {TOKEN}"})
    assert all(text.startswith("200 ") for key, text in answers.items()), answers
    api = answers["tool GET /api/cameras"]
    assert "quokka-path-5512" in api and "ocelot-stream" in api and "lynx-feed" in api  # the scan can fail
    assert "quokka-path-5512" in answers["page GET /status"]
