"""The MJPEG response byte by byte, as raw-socket clients and browsers see it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.helpers import StrictMjpegReader, boundary_of, push_camera, real_frames

FRAMES = real_frames()


STREAM_HTTP10 = b"GET /cameras/cam/stream.mjpg HTTP/1.0\r\nHost: test\r\n\r\n"


@contextlib.asynccontextmanager
async def raw_viewer(proxy, request: bytes = STREAM_HTTP10) -> AsyncIterator[tuple[bytes, asyncio.StreamReader]]:
    """Send ``request`` on a plain socket; yield the response head and the body's reader."""
    reader, writer = await asyncio.open_connection(proxy.server.host, proxy.server.port)
    try:
        writer.write(request)
        yield await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5), reader
    finally:
        writer.close()


def header_map(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {name.lower(): value for name, _, value in (line.partition(": ") for line in lines if line)}


async def test_http10_body_is_raw_multipart_byte_for_byte(start_proxy):
    proxy = await start_proxy(push_camera(), resend_seconds=60)
    hub = proxy.camera("cam").hub
    await proxy.publish("cam", FRAMES[0])
    async with raw_viewer(proxy) as (head, reader):
        assert head.startswith(b"HTTP/1.0 200 OK\r\n")
        headers = header_map(head)
        assert "transfer-encoding" not in headers
        boundary = boundary_of(headers["content-type"])
        assert headers["cache-control"] == "no-cache, no-store, must-revalidate"
        assert headers["pragma"] == "no-cache"
        assert headers["x-accel-buffering"] == "no"
        assert headers["x-content-type-options"] == "nosniff"

        delimiter = b"--" + boundary.encode() + b"\r\n"
        assert await reader.readexactly(len(delimiter)) == delimiter
        part_head = await reader.readuntil(b"\r\n\r\n")
        lines = part_head.split(b"\r\n")
        assert lines[0] == b"Content-Type: image/jpeg"
        assert lines[1] == b"Content-Length: %d" % len(FRAMES[0])
        assert lines[2].startswith(b"X-Timestamp: ")
        assert abs(float(lines[2].split(b": ")[1]) - hub.latest.frame.received_wall) < 1e-3
        assert lines[3:] == [b"", b""]
        assert await reader.readexactly(len(FRAMES[0])) == FRAMES[0]
        # The delimiter follows the JPEG at once, with no newer frame to push it out.
        tail = await asyncio.wait_for(reader.readexactly(2 + len(delimiter)), 5)
        assert tail == b"\r\n" + delimiter


async def test_http10_with_keep_alive_still_gets_a_close_delimited_body(start_proxy):
    proxy = await start_proxy(push_camera(), resend_seconds=60)
    await proxy.publish("cam", FRAMES[0])
    request = b"GET /cameras/cam/stream.mjpg HTTP/1.0\r\nHost: test\r\nConnection: keep-alive\r\n\r\n"
    async with raw_viewer(proxy, request) as (head, reader):
        headers = header_map(head)
        assert "transfer-encoding" not in headers and "content-length" not in headers
        part = await StrictMjpegReader(reader, boundary_of(headers["content-type"])).read_part()
        assert part.jpeg == FRAMES[0]


async def test_each_new_frame_arrives_as_its_own_part(start_proxy):
    proxy = await start_proxy(push_camera(), resend_seconds=60)
    async with raw_viewer(proxy) as (head, reader):
        mjpeg = StrictMjpegReader(reader, boundary_of(header_map(head)["content-type"]))
        for jpeg in FRAMES[:5]:
            proxy.push("cam", jpeg)
            part = await asyncio.wait_for(mjpeg.read_part(), 5)
            assert part.jpeg == jpeg
            assert part.headers["content-length"] == str(len(jpeg))


async def test_latest_frame_is_resent_while_the_camera_is_idle(start_proxy):
    proxy = await start_proxy(push_camera(), resend_seconds=0.2)
    async with raw_viewer(proxy) as (head, reader):
        mjpeg = StrictMjpegReader(reader, boundary_of(header_map(head)["content-type"]))
        proxy.push("cam", FRAMES[1])
        first = await asyncio.wait_for(mjpeg.read_part(), 5)
        # Nothing new is pushed: the same part comes again, whole and identical.
        again = await asyncio.wait_for(mjpeg.read_part(), 5)
        assert (again.raw_headers, again.jpeg) == (first.raw_headers, first.jpeg)
        proxy.push("cam", FRAMES[2])
        while (part := await asyncio.wait_for(mjpeg.read_part(), 5)).jpeg == FRAMES[1]:
            pass
        assert part.jpeg == FRAMES[2]


async def test_http11_client_reads_a_correctly_framed_stream(start_proxy):
    proxy = await start_proxy(push_camera(), resend_seconds=60)
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url("/cameras/cam/stream.mjpg")) as response:
            assert response.status == 200
            assert response.headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
            mjpeg = StrictMjpegReader(response.content, boundary_of(response.headers["Content-Type"]))
            for jpeg in FRAMES[:3]:
                proxy.push("cam", jpeg)
                assert (await asyncio.wait_for(mjpeg.read_part(), 5)).jpeg == jpeg


async def test_viewer_joining_late_gets_the_latest_frame_at_once(start_proxy):
    proxy = await start_proxy(push_camera(), resend_seconds=60)
    hub = proxy.camera("cam").hub
    for jpeg in FRAMES[:3]:
        await proxy.publish("cam", jpeg)
    assert hub.latest.frame.seq == 3
    async with raw_viewer(proxy) as (head, reader):
        mjpeg = StrictMjpegReader(reader, boundary_of(header_map(head)["content-type"]))
        assert (await asyncio.wait_for(mjpeg.read_part(), 5)).jpeg == FRAMES[2]


async def test_every_stream_of_a_server_uses_the_same_plain_boundary(start_proxy):
    proxy = await start_proxy(push_camera("a"), push_camera("b"))
    async with aiohttp.ClientSession() as session:
        types = []
        for camera_id in ("a", "b"):
            async with session.get(proxy.url(f"/cameras/{camera_id}/stream.mjpg")) as response:
                types.append(response.headers["Content-Type"])
    assert boundary_of(types[0]) == boundary_of(types[1])


async def test_head_on_the_stream_gets_headers_and_no_body(start_proxy):
    proxy = await start_proxy(push_camera(), resend_seconds=0.1)
    await proxy.publish("cam", FRAMES[0])
    request = (
        b"HEAD /cameras/cam/stream.mjpg HTTP/1.1\r\nHost: test\r\n\r\n"
        b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    async with raw_viewer(proxy, request) as (head, reader):
        boundary_of(header_map(head)["content-type"])
        # The next bytes on the connection are the answer to the second request, not a body.
        rest = await asyncio.wait_for(reader.read(), 5)
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n") and rest.endswith(b"\r\n\r\nok")


async def test_stopping_the_server_ends_every_stream_promptly_with_the_close_delimiter(start_proxy):
    proxy = await start_proxy(push_camera(), resend_seconds=60)
    await proxy.publish("cam", FRAMES[0])
    async with contextlib.AsyncExitStack() as stack:
        readers = []
        for _ in range(3):
            head, reader = await stack.enter_async_context(raw_viewer(proxy))
            boundary = boundary_of(header_map(head)["content-type"])
            await StrictMjpegReader(reader, boundary).read_part()
            readers.append(reader)
        # Without ending the streams, the server would wait out its whole shutdown timeout (60 s here).
        await asyncio.wait_for(proxy.server.close(), 5)
        for reader in readers:
            rest = await asyncio.wait_for(reader.read(), 5)  # up to the end of the stream
            # A last whole part (the latest frame again), closed by "--boundary--".
            assert rest.startswith(b"Content-Type: image/jpeg\r\n")
            assert rest.endswith(FRAMES[0] + b"\r\n--" + boundary.encode() + b"--\r\n")


async def test_img_requests_get_the_next_parts_headers_ahead(start_proxy):
    # Chromium paints a part only once the next part's header block is complete.
    proxy = await start_proxy(push_camera(), resend_seconds=60)
    await proxy.publish("cam", FRAMES[0])
    request = b"GET /cameras/cam/stream.mjpg HTTP/1.0\r\nSec-Fetch-Dest: image\r\nAccept: image/avif,image/*\r\n\r\n"
    async with raw_viewer(proxy, request) as (head, reader):
        boundary = boundary_of(header_map(head)["content-type"]).encode()
        ahead = b"--" + boundary + b"\r\nContent-Type: image/jpeg\r\n\r\n"
        assert await reader.readexactly(len(ahead)) == ahead
        assert await reader.readexactly(len(FRAMES[0])) == FRAMES[0]
        # With no newer frame pushed, the next part's complete header block is already here.
        assert await asyncio.wait_for(reader.readexactly(2 + len(ahead)), 5) == b"\r\n" + ahead
        proxy.push("cam", FRAMES[1])
        assert await asyncio.wait_for(reader.readexactly(len(FRAMES[1])), 5) == FRAMES[1]


async def test_the_page_for_the_address_bar_keeps_the_query_as_it_was_written(start_proxy):
    # Decoded, "%23" would become "#" and cut the stream's query short; "%26" would split a value.
    proxy = await start_proxy(push_camera())
    headers = {"Sec-Fetch-Dest": "document", "Accept": "text/html,*/*"}
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url("/cameras/cam/stream.mjpg?fps=2&note=a%23b%26c"), headers=headers) as response:
            assert '<img src="cameras/cam/stream.mjpg?fps=2&amp;note=a%23b%26c"' in await response.text()


@pytest.mark.parametrize(
    ("headers", "page"),
    [
        ({"Sec-Fetch-Dest": "document", "Accept": "text/html,*/*"}, True),
        ({"User-Agent": "Mozilla/5.0", "Accept": "text/html,application/xhtml+xml"}, True),  # no Fetch Metadata
        ({"Sec-Fetch-Dest": "image", "Accept": "image/avif,image/webp,*/*"}, False),
        ({"Accept": "*/*"}, False),  # curl, ffmpeg, VLC
        ({}, False),
    ],
)
async def test_address_bar_gets_a_page_and_everything_else_the_stream(start_proxy, headers, page):
    proxy = await start_proxy(push_camera(), resend_seconds=60)
    await proxy.publish("cam", FRAMES[0])
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url("/cameras/cam/stream.mjpg?fps=2"), headers=headers) as response:
            if page:
                assert response.content_type == "text/html"
                html = await response.text()
                assert '<img src="cameras/cam/stream.mjpg?fps=2"' in html  # no script needed: test_embed_snippet
            else:
                assert response.content_type == "multipart/x-mixed-replace"
