"""A scripted run of the proxy whose outcome the status and metrics tests check value by value.

Two cameras: ``cam`` ("Front door"), a push camera that gets exactly three known frames
while two viewers (one player, one browser ``<img>``) watch and read every part; and
``yard`` ("Back yard"), a snapshot camera with a username and password whose upstream
answers every request with 503.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from mjpeg_proxy.config import CameraConfig
from mjpeg_proxy.sources.snapshot import SnapshotConfig
from tests.helpers import Proxy, StrictMjpegReader, boundary_of, eventually, push_camera, real_frames

FRAMES = real_frames()[:3]
USERNAME = "viewer"
PASSWORD = "Secret-Pa55word-7f3k"
BASIC_CREDENTIALS = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
"""The base64 form of the credentials, as they travel in the Authorization header."""


class FailingUpstream:
    """A camera on 127.0.0.1 that answers every snapshot request 503, recording each
    request's Authorization header."""

    def __init__(self) -> None:
        self.authorizations: list[str | None] = []

    @property
    def requests(self) -> int:
        return len(self.authorizations)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/snapshot.jpg", self._snapshot)
        return app

    async def _snapshot(self, request: web.Request) -> web.Response:
        self.authorizations.append(request.headers.get("Authorization"))
        return web.Response(status=503, text="camera busy")


class _CountingStream:
    """An asyncio.StreamReader that counts the bytes read through it."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.count = 0

    async def readexactly(self, n: int) -> bytes:
        data = await self.reader.readexactly(n)
        self.count += len(data)
        return data

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        data = await self.reader.readuntil(separator)
        self.count += len(data)
        return data


class PartCounter:
    """One stream viewer on a plain socket, with HTTP/1.0 so the body is the bare multipart
    bytes; counts the parts and the bytes it receives. ``browser=True`` asks as an
    ``<img>`` does (``Sec-Fetch-Dest: image``), which gets the browser framing."""

    def __init__(self, proxy: Proxy, camera_id: str, *, browser: bool = False) -> None:
        self.proxy = proxy
        self.camera_id = camera_id
        self.browser = browser
        self.parts = 0

    async def __aenter__(self) -> PartCounter:
        reader, self._writer = await asyncio.open_connection(
            self.proxy.server.host, self.proxy.server.port, limit=1 << 20
        )
        request = f"GET /cameras/{self.camera_id}/stream.mjpg HTTP/1.0\r\nHost: test\r\n"
        if self.browser:
            request += "Sec-Fetch-Dest: image\r\n"
        self._writer.write(request.encode() + b"\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.0 200 "), head
        headers = {
            name.lower(): value
            for name, _, value in (line.partition(": ") for line in head.decode("latin-1").split("\r\n")[1:] if line)
        }
        boundary = boundary_of(headers["content-type"])
        self.opening = (
            b"--" + boundary.encode() + b"\r\n" + (b"Content-Type: image/jpeg\r\n\r\n" if self.browser else b"")
        )
        self._stream = _CountingStream(reader)
        self._mjpeg = StrictMjpegReader(self._stream, boundary)
        self._opened = False
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._writer.close()

    @property
    def part_bytes(self) -> int:
        """Body bytes received after the opening delimiter: the parts, as written."""
        return max(0, self._stream.count - len(self.opening))

    async def read_part(self, timeout_s: float = 5.0) -> bytes:
        """The next part's JPEG."""
        async with asyncio.timeout(timeout_s):
            if not self.browser:
                jpeg = (await self._mjpeg.read_part()).jpeg
            else:
                # Browser framing: the JPEG, then the next delimiter with the next part's headers.
                if not self._opened:
                    first = await self._stream.readexactly(len(self.opening))
                    assert first == self.opening, first
                    self._opened = True
                tail = b"\r\n" + self.opening
                jpeg = (await self._stream.readuntil(tail))[: -len(tail)]
        self.parts += 1
        return jpeg


@dataclass
class Run:
    proxy: Proxy
    upstream: FailingUpstream
    viewers: tuple[PartCounter, PartCounter]
    last_frame_pushed_at: float
    """time.monotonic() just before the last frame was pushed."""
    started_at: float
    """time.monotonic() just before the proxy started (its cameras are always on)."""

    @property
    def parts_received(self) -> int:
        return sum(viewer.parts for viewer in self.viewers)

    @property
    def part_bytes_received(self) -> int:
        return sum(viewer.part_bytes for viewer in self.viewers)


@contextlib.asynccontextmanager
async def scripted_run(start_proxy, aiohttp_server, **server_options) -> AsyncIterator[Run]:
    """Run the script above; the two viewers still watch inside the ``async with`` block.

    Use with the ``fast_retries`` fixture, so the failing camera retries several times."""
    upstream = FailingUpstream()
    upstream_server = await aiohttp_server(upstream.app())
    started_at = time.monotonic()
    proxy = await start_proxy(
        push_camera("cam", name="Front door"),
        CameraConfig(
            id="yard",
            source=SnapshotConfig(
                url=str(upstream_server.make_url("/snapshot.jpg")), username=USERNAME, password=PASSWORD, auth="basic"
            ),
            name="Back yard",
            fps=10,
        ),
        resend_seconds=60,  # no re-sends: every part a viewer gets is a new frame
        **server_options,
    )
    hub = proxy.camera("cam").hub
    async with PartCounter(proxy, "cam") as player, PartCounter(proxy, "cam", browser=True) as browser:
        await eventually(lambda: hub.viewers == 2, 5)
        pushed_at = 0.0
        for jpeg in FRAMES:
            pushed_at = time.monotonic()
            await proxy.publish("cam", jpeg)
            for viewer in (player, browser):
                assert await viewer.read_part() == jpeg
        # The failing camera has tried, failed and retried.
        await eventually(lambda: upstream.requests >= 2 and proxy.camera("yard").state == "offline")
        yield Run(proxy, upstream, (player, browser), pushed_at, started_at)
