"""Cameras whose web server writes HTTP that aiohttp refuses (GoAhead and other embedded
servers), relayed through the lenient reader; raw fake cameras on 127.0.0.1."""

from __future__ import annotations

import logging
import re
import ssl

import aiohttp
import pytest
import trustme
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from mjpeg_proxy.camera.errors import UpstreamUnavailable
from mjpeg_proxy.config import CameraConfig
from mjpeg_proxy.sources.lenient_head import MAX_HEAD_BYTES, parse_head
from mjpeg_proxy.sources.lenient_http import LenientFallback, lenient_get
from mjpeg_proxy.sources.mjpeg import MjpegConfig
from mjpeg_proxy.sources.snapshot import SnapshotConfig
from tests.fake_raw_camera import RawCamera
from tests.helpers import MjpegViewer, Proxy, eventually, real_frames

PETS = real_frames()
LENIENT_LOG = "mjpeg_proxy.sources.lenient_http"

# Answer heads that aiohttp 3.14 refuses (its C parser, llhttp; most also its Python one),
# each as a device or a bug report wrote it. {length} is the JPEG's length, {short} half.
MALFORMED_SNAPSHOT_HEADS = {
    # home-assistant/core#14960: a GoAhead camera writes its date without "Date:".
    "goahead-bare-date": b"HTTP/1.1 200 OK\r\nServer: GoaHead\r\nTue, 12 Jun 2012 01:56:34 GMT\r\n"
    b"Content-Type:image/jpeg\r\nContent-Length:{length}\r\nConnection: close\r\n\r\n",
    "empty-name": b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n: no name\r\nContent-Length: {length}\r\n\r\n",
    "line-without-colon": b"HTTP/1.1 200 OK\r\nGoAhead-Webs\r\nContent-Type: image/jpeg\r\n"
    b"Content-Length: {length}\r\n\r\n",
    "space-before-colon": b"HTTP/1.1 200 OK\r\nContent-Type : image/jpeg\r\nContent-Length : {length}\r\n\r\n",
    "tab-before-colon": b"HTTP/1.1 200 OK\r\nContent-Type\t: image/jpeg\r\nContent-Length: {length}\r\n\r\n",
    # Karlson2k/libmicrohttpd#15, boostorg/beast#1880: the length written twice.
    "content-length-twice": b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {length}\r\n"
    b"Content-Length: {length}\r\n\r\n",
    # dukus/digiCamControl#324: the two values joined into a list.
    "content-length-list": b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {length}, {length}\r\n\r\n",
    "content-lengths-differ": b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {short}\r\n"
    b"Content-Length: {length}\r\n\r\n",
    "content-length-negative": b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: -1\r\n\r\n",
    "nul-in-a-value": b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nX-Firmware: v1\x00\x00\r\n"
    b"Content-Length: {length}\r\n\r\n",
    "cr-in-a-value": b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nPragma: no-cache\r\r\n"
    b"Content-Length: {length}\r\n\r\n",
    "non-ascii-name": b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nX-Cam\xe9ra: 1\r\n"
    b"Content-Length: {length}\r\n\r\n",
    "lowercase-version": b"http/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {length}\r\n\r\n",
    "blank-line-with-a-space": b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {length}\r\n \r\n",
    "all-at-once": b"HTTP/1.0 200\nServer: GoAhead-Webs\nTue, 12 Jun 2012 01:56:34 GMT\nContent-Type : image/jpeg\n"
    b"X-Note: folded\n  on two lines\nContent-Length: {length}\nContent-Length: {length}\n\n",
}

# Heads that aiohttp reads today: they must keep going through aiohttp.
WELL_READ_SNAPSHOT_HEADS = {
    "no-space-after-colon": b"HTTP/1.1 200 OK\r\nContent-Type:image/jpeg\r\nContent-Length:{length}\r\n\r\n",
    "lf-only": b"HTTP/1.1 200 OK\nContent-Type: image/jpeg\nContent-Length: {length}\n\n",
    "charset-parameter": b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg; charset=utf-8\r\n"
    b"Content-Length: {length}\r\n\r\n",
    "no-reason-phrase": b"HTTP/1.0 200\r\nContent-Type: image/jpeg\r\n\r\n",
}

MJPEG = b"multipart/x-mixed-replace; boundary=myboundary"
MALFORMED_MJPEG_HEADS = {
    "goahead-bare-date": b"HTTP/1.1 200 OK\r\nServer: GoaHead\r\nTue, 12 Jun 2012 01:56:34 GMT\r\n"
    b"Content-Type: " + MJPEG + b"\r\n\r\n",
    "space-before-colon": b"HTTP/1.0 200 OK\r\nContent-Type : " + MJPEG + b"\r\nCache-Control : no-cache\r\n\r\n",
    "folded-content-type": b"HTTP/1.1 200 OK\r\nX-Note\t: x\r\nContent-Type: multipart/x-mixed-replace;\r\n"
    b" boundary=myboundary\r\n\r\n",
}


pytestmark = pytest.mark.usefixtures("fast_retries")  # camera retries within a fraction of a second


@pytest.fixture
async def start_raw(start_proxy):
    """Start a RawCamera and a proxy with one camera ``cam`` reading it; both end with the test."""
    fakes: list[RawCamera] = []

    async def start(fake: RawCamera, source: str = "snapshot", path: str = "/snapshot.jpg", **camera) -> Proxy:
        fakes.append(fake)
        url = await fake.start() + (path if source == "snapshot" else "/video.mjpg")
        section = (SnapshotConfig if source == "snapshot" else MjpegConfig)(url=url, **camera)
        return await start_proxy(CameraConfig(id="cam", source=section, fps=5.0))

    yield start
    for fake in fakes:
        await fake.close()


async def snapshot(proxy: Proxy) -> bytes:
    async with aiohttp.ClientSession() as session, session.get(proxy.url("/cameras/cam/snapshot.jpg")) as response:
        assert response.status == 200, await response.text()
        return await response.read()


def lenient_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LENIENT_LOG]


@pytest.mark.parametrize("head", MALFORMED_SNAPSHOT_HEADS.values(), ids=MALFORMED_SNAPSHOT_HEADS.keys())
async def test_snapshot_camera_whose_http_aiohttp_refuses_is_relayed(start_raw, head):
    proxy = await start_raw(RawCamera(head, [PETS[0]]))
    assert await snapshot(proxy) == PETS[0]


@pytest.mark.parametrize(
    ("head", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Type : image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n", "chunked-lf"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n",
            "chunked",
        ),
    ],
    ids=["chunk-lines-ending-in-lf", "chunked-and-content-length"],
)
async def test_snapshot_in_chunked_coding_that_aiohttp_refuses_is_relayed(start_raw, head, body):
    proxy = await start_raw(RawCamera(head, [PETS[0]], body=body))
    assert await snapshot(proxy) == PETS[0]


async def test_differing_content_lengths_with_the_larger_right_on_a_connection_left_open(start_raw):
    head = b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {short}\r\nContent-Length: {length}\r\n\r\n"
    proxy = await start_raw(RawCamera(head, [PETS[0]], keep_open=True))
    assert await snapshot(proxy) == PETS[0]


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.0 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {over}\r\n\r\n",  # through aiohttp
        b"HTTP/1.0 200 OK\r\nContent-Type : image/jpeg\r\nContent-Length: {over}\r\n\r\n",  # the lenient reader
        b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {over}\r\nContent-Length: {over}\r\n\r\n",
    ],
    ids=["well-formed", "space-before-colon", "content-length-twice"],
)
async def test_a_content_length_over_the_body_of_an_answer_that_closes_is_relayed(start_raw, head):
    # The server counts a byte it never sends, then closes: what came is a whole JPEG
    # (curl writes it out too); a body cut short instead would fail the JPEG check.
    proxy = await start_raw(RawCamera(head, [PETS[0]]))
    assert await snapshot(proxy) == PETS[0]


@pytest.mark.parametrize("head", WELL_READ_SNAPSHOT_HEADS.values(), ids=WELL_READ_SNAPSHOT_HEADS.keys())
async def test_cameras_aiohttp_reads_today_stay_with_aiohttp(start_raw, caplog, head):
    caplog.set_level(logging.INFO)
    fake = RawCamera(head, PETS[:3])
    proxy = await start_raw(fake)
    camera = proxy.camera("cam")
    assert await snapshot(proxy) in PETS[:3]
    await eventually(lambda: camera.stats.frames_received >= 3)
    assert lenient_lines(caplog) == []
    assert all("gzip" in r.headers.get("Accept-Encoding", "") for r in fake.requests), "every request came from aiohttp"


async def test_the_lenient_reader_is_remembered_and_logged_once_naming_what_is_wrong(start_raw, caplog):
    caplog.set_level(logging.INFO)
    head = b"HTTP/1.1 200 OK\r\nGoAhead-Webs\r\nContent-Type : image/jpeg\r\nContent-Length: {length}\r\n\r\n"
    fake = RawCamera(head, PETS[:3])
    proxy = await start_raw(fake, path="/snapshot.jpg?token=SECRET-TOKEN")
    camera = proxy.camera("cam")
    await eventually(lambda: camera.stats.frames_received >= 4)
    assert camera.hub.latest.frame.jpeg in PETS[:3]
    # Only the first answer went through aiohttp; every request after it was lenient at once.
    assert [r for r in fake.requests if "gzip" in r.headers.get("Accept-Encoding", "")] == fake.requests[:1]
    (line,) = lenient_lines(caplog)
    assert "a header line without a name" in line and "whitespace before the colon of Content-Type" in line
    assert "malformed HTTP (Invalid" in line, "the log names what aiohttp refused"
    assert "SECRET-TOKEN" not in line and "token=" not in line


@pytest.mark.parametrize("head", MALFORMED_MJPEG_HEADS.values(), ids=MALFORMED_MJPEG_HEADS.keys())
@pytest.mark.parametrize("body", ["plain", "chunked", "chunked-lf"])
async def test_mjpeg_camera_whose_http_aiohttp_refuses_is_relayed_frame_by_frame(start_raw, head, body):
    if body != "plain":
        head = head.replace(b"\r\n\r\n", b"\r\nTransfer-Encoding: chunked\r\n\r\n")
    proxy = await start_raw(RawCamera(head, PETS[:3], body=body), source="mjpeg")
    async with MjpegViewer(proxy.url("/cameras/cam/stream.mjpg")) as viewer:
        received = [part.jpeg for part in await viewer.new_parts(3)]
    assert received[-1] == PETS[2] and set(received) <= set(PETS[:3])


async def test_redirect_with_a_malformed_head_is_followed(start_raw):
    head = b"HTTP/1.1 200 OK\r\nContent-Type : image/jpeg\r\nContent-Length: {length}\r\n\r\n"
    proxy = await start_raw(RawCamera(head, [PETS[1]], redirects={"/moved.jpg": "/snapshot.jpg"}), path="/moved.jpg")
    assert await snapshot(proxy) == PETS[1]


@pytest.mark.parametrize("auth", ["basic", "digest"])
async def test_password_protected_camera_through_the_lenient_reader(start_raw, auth):
    head = b"HTTP/1.1 200 OK\r\nServer: GoAhead-Webs\r\nContent-Type : image/jpeg\r\nContent-Length: {length}\r\n\r\n"
    fake = RawCamera(head, [PETS[0]], username="admin", password="pw-9", auth=auth)
    proxy = await start_raw(fake, username="admin", password="pw-9", auth=auth)
    assert await snapshot(proxy) == PETS[0]
    if auth == "digest":
        assert fake.challenges >= 1, "the Digest answer was computed from the camera's own challenge"


async def test_wrong_password_through_the_lenient_reader_is_auth_failed(start_raw):
    head = b"HTTP/1.1 200 OK\r\nContent-Type : image/jpeg\r\nContent-Length: {length}\r\n\r\n"
    proxy = await start_raw(
        RawCamera(head, [PETS[0]], username="admin", password="right"), username="admin", password="wrong"
    )
    camera = proxy.camera("cam")
    await eventually(lambda: camera.hub.latest is not None)
    assert camera.state == "auth_failed" and "HTTP 401" in camera.stats.last_error
    assert camera.hub.latest.frame.placeholder, "the 401 page never becomes a frame"


async def test_an_answer_that_is_not_http_is_a_clear_error_with_backoff_and_no_switch(start_raw, caplog):
    caplog.set_level(logging.INFO)
    # A server from before HTTP/1.0 answers with the page alone, no status line.
    fake = RawCamera(b"<html><body>Camera 1</body></html>\r\n\r\n", [b""])
    proxy = await start_raw(fake)
    camera = proxy.camera("cam")
    await eventually(lambda: camera.stats.errors["unavailable"] >= 2)
    assert camera.state == "offline"
    assert "did not answer HTTP" in camera.stats.last_error and "<html><body>Camera 1" in camera.stats.last_error
    warning = next(
        r.getMessage() for r in caplog.records if r.name == "mjpeg_proxy.camera.state" and r.levelno == logging.WARNING
    )
    assert re.search(r"retrying in [0-9.]+ s", warning)
    assert lenient_lines(caplog) == [], "the lenient reader could not read it either, so it is not kept"


async def test_header_block_over_the_cap_is_a_clear_error(start_raw):
    head = b"HTTP/1.1 200 OK\r\nContent-Type : image/jpeg\r\n" + b"X-Padding: %s\r\n" % (b"a" * 1000) * 70 + b"\r\n"
    proxy = await start_raw(RawCamera(head, [PETS[0]]))
    camera = proxy.camera("cam")
    await eventually(lambda: camera.state == "offline")
    assert f"header block over {MAX_HEAD_BYTES} bytes" in camera.stats.last_error


async def test_lenient_reader_speaks_tls_and_checks_the_certificate(tmp_path):
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    fake = RawCamera(b"HTTP/1.1 200 OK\r\nContent-Type : image/jpeg\r\nContent-Length: {length}\r\n\r\n", [PETS[0]])
    base = await fake.start(ssl_context=server_context)
    url = URL(base.replace("http:", "https:") + "/snapshot.jpg")
    try:
        response = await lenient_get(url, {}, "cam", connect_timeout_s=5, ssl_context=client_context)
        try:
            assert response.status == 200 and response.headers["Content-Type"] == "image/jpeg"
            assert b"".join([piece async for piece in response.content.iter_any()]) == PETS[0]
        finally:
            response.close()
        with pytest.raises(UpstreamUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            await lenient_get(url, {}, "cam", connect_timeout_s=5)  # the default context does not know this CA
    finally:
        await fake.close()


async def test_lenient_reading_is_bounded_by_the_request_timeout():
    # The body stops short of its Content-Length and the connection stays open.
    head = b"HTTP/1.1 200 OK\r\nContent-Type : image/jpeg\r\nContent-Length: 999999\r\n\r\n"
    fake = RawCamera(head, [PETS[0]], keep_open=True)
    url = await fake.start() + "/snapshot.jpg"
    fallback = LenientFallback(url, "cam", {})
    try:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(TimeoutError):
                async with fallback.open(lambda: http.get(url), aiohttp.ClientTimeout(total=0.5)) as response:
                    assert response.status == 200
                    async for _ in response.content.iter_any():
                        pass
        assert fallback.in_use
    finally:
        await fake.close()


@given(st.lists(st.binary(max_size=40), max_size=8))
def test_any_header_lines_after_a_status_line_are_read_or_skipped(lines):
    head = parse_head([b"HTTP/1.1 200 OK", *lines], "cam")
    assert head.status == 200
    assert all(re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name) for name in head.headers)
