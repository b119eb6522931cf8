"""Test-side tools, each written once: a proxy in the test's event loop fed by hand, a strict
MJPEG reader and viewer, real and padded frames, small waits, configuration files, and the
clients a test needs installed."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import io
import ipaddress
import os
import random
import re
import shutil
import struct
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from aioresponses import aioresponses
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from yarl import URL

from mjpeg_proxy.camera.camera import Camera
from mjpeg_proxy.camera.frame import Frame
from mjpeg_proxy.camera.source import Source
from mjpeg_proxy.camera.timing import CameraTiming
from mjpeg_proxy.config import CameraConfig, ConfigError, SourceConfig
from mjpeg_proxy.config.loader import load_config
from mjpeg_proxy.sources.demo import DemoConfig
from mjpeg_proxy.web.appkeys import CAMERAS

DATA = Path(__file__).parent / "data"


def real_frames(folder: str = "opencv-vtest-pets2009") -> list[bytes]:
    """Real camera frames from tests/data/frames/``folder``: ``opencv-vtest-pets2009``
    (768x576, 64-80 KB) or ``axis-runway-webcam-640x480`` (byte-exact from an Axis camera)."""
    return [path.read_bytes() for path in sorted((DATA / "frames" / folder).glob("frame_*.jpg"))]


class ByteStream(Protocol):
    async def readexactly(self, n: int) -> bytes: ...
    async def readuntil(self, separator: bytes = ...) -> bytes: ...


@dataclass
class ReadPart:
    headers: dict[str, str]
    raw_headers: bytes
    jpeg: bytes


class StrictMjpegReader:
    """Reads our own MJPEG body and fails loudly on any deviation from the wire rules.

    Expects ``--B\\r\\n`` first, then parts with ``Content-Type: image/jpeg`` and an exact
    ``Content-Length``, each followed at once by ``\\r\\n--B\\r\\n``.
    """

    def __init__(self, stream: ByteStream, boundary: str) -> None:
        self.stream = stream
        self.delimiter = b"--" + boundary.encode() + b"\r\n"
        self._opened = False

    async def read_part(self) -> ReadPart:
        if not self._opened:
            first = await self.stream.readexactly(len(self.delimiter))
            assert first == self.delimiter, f"body must start with the delimiter, got {first!r}"
            self._opened = True
        raw = await self.stream.readuntil(b"\r\n\r\n")
        headers = {}
        for line in raw[:-4].split(b"\r\n"):
            name, _, value = line.decode("ascii").partition(": ")
            headers[name.lower()] = value
        assert headers["content-type"] == "image/jpeg", raw
        jpeg = await self.stream.readexactly(int(headers["content-length"]))
        tail = await self.stream.readexactly(2 + len(self.delimiter))
        assert tail == b"\r\n" + self.delimiter, f"part must end with CRLF and the delimiter, got {tail!r}"
        return ReadPart(headers, raw, jpeg)


def boundary_of(content_type: str) -> str:
    """The boundary token of a ``multipart/x-mixed-replace;boundary=T`` header, checked plain."""
    match = re.fullmatch(r"multipart/x-mixed-replace;boundary=([0-9A-Za-z_-]+)", content_type)
    assert match, f"Content-Type must be multipart/x-mixed-replace;boundary=<plain token>, got {content_type!r}"
    return match.group(1)


async def eventually(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait until ``predicate()`` holds, checking every 10 ms, for at most ``timeout_s``.

    For conditions no event announces (task counts, socket states)."""
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.01)


class MjpegViewer:
    """One viewer of a stream, connected for the whole ``async with`` block.

    ``next_new_part()`` returns the next part whose JPEG differs from the last one
    returned (re-sends of an idle camera's picture are skipped)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.parts: list[ReadPart] = []

    async def __aenter__(self) -> MjpegViewer:
        self._session = aiohttp.ClientSession()
        self._response = await self._session.get(self.url)
        assert self._response.status == 200, self._response.status
        self._reader = StrictMjpegReader(self._response.content, boundary_of(self._response.headers["Content-Type"]))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._response.close()
        await self._session.close()

    async def next_new_part(self, timeout_s: float = 10.0) -> ReadPart:
        async with asyncio.timeout(timeout_s):
            while True:
                part = await self._reader.read_part()
                if not self.parts or part.jpeg != self.parts[-1].jpeg:
                    self.parts.append(part)
                    return part

    async def new_parts(self, count: int, timeout_s: float = 10.0) -> list[ReadPart]:
        return [await self.next_new_part(timeout_s) for _ in range(count)]


async def camera_frames(viewer: MjpegViewer, count: int, frames: Sequence[bytes]) -> list[bytes]:
    """The viewer's next ``count`` new pictures that are among ``frames`` (offline pictures skipped)."""
    taken: list[bytes] = []
    while len(taken) < count:
        jpeg = (await viewer.next_new_part()).jpeg
        if jpeg in frames:
            taken.append(jpeg)
    return taken


@contextlib.asynccontextmanager
async def watching(urls: Sequence[str], frames: Sequence[bytes]) -> AsyncIterator[list[MjpegViewer]]:
    """A viewer of each stream URL, for the block, each past its first picture among ``frames``."""
    async with contextlib.AsyncExitStack() as stack:
        viewers = [await stack.enter_async_context(MjpegViewer(url)) for url in urls]
        for viewer in viewers:
            await camera_frames(viewer, 1, frames)
        yield viewers


def decoded(jpeg: bytes) -> Image.Image:
    """The picture in ``jpeg``, decoded whole (fails on anything that is not a valid JPEG)."""
    with Image.open(io.BytesIO(jpeg)) as image:
        assert image.format == "JPEG"
        image.load()
        return image.convert("RGB")


def is_subsequence(items: list[bytes], of: list[bytes]) -> bool:
    """True when ``items`` all occur in ``of``, in the same order (with gaps allowed)."""
    remaining = iter(of)
    return all(any(item == other for other in remaining) for item in items)


# --- frames: real ones, and padded big ones -----------------------------------------------

BIG_FRAME_BYTES = 200_000
"""The size of each of ``big_frames()``, so a viewer that does not read falls behind fast."""


@functools.cache
def big_frames(count: int = 61) -> tuple[bytes, ...]:
    """``count`` distinct, valid JPEGs of about 200 KB: real frames with COM segments of
    random bytes inserted after SOI (FF FE, a 2-byte big-endian length, <= 65533 bytes)."""
    rng = random.Random(20240611)
    pets = real_frames()
    frames = []
    for index in range(count):
        jpeg = pets[index % len(pets)]
        segments = []
        room = BIG_FRAME_BYTES - len(jpeg)
        while room > 4:
            payload = rng.randbytes(min(65533, room - 4))
            segments.append(b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload)
            room -= len(payload) + 4
        frames.append(jpeg[:2] + b"".join(segments) + jpeg[2:])
    assert len(set(frames)) == count
    return tuple(frames)


# --- a proxy in the test's event loop, its cameras fed by the test -------------------------


class PushSource(Source):
    """A source whose frames the test pushes one by one with ``push``."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()

    def push(self, jpeg: bytes) -> None:
        self._queue.put_nowait(jpeg)

    async def frames(self) -> AsyncIterator[Frame]:
        while True:
            yield Frame(await self._queue.get())


@dataclasses.dataclass(frozen=True)
class PushConfig(SourceConfig):
    """The section of a camera fed by the test (see ``start_proxy``)."""

    kind = "push"


def push_camera(camera_id: str = "cam", **changes: Any) -> CameraConfig:
    """A camera fed by the test (see ``start_proxy``)."""
    return CameraConfig(id=camera_id, source=PushConfig(), **changes)


class Proxy:
    """A proxy serving on 127.0.0.1 in this test's event loop."""

    def __init__(self, server: TestServer, pushed: dict[str, PushSource]) -> None:
        self.server = server
        self.pushed = pushed

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    def camera(self, camera_id: str) -> Camera:
        return self.server.app[CAMERAS][camera_id]

    def push(self, camera_id: str, jpeg: bytes) -> None:
        self.pushed[camera_id].push(jpeg)

    async def publish(self, camera_id: str, jpeg: bytes) -> None:
        """Push a frame and wait until the camera's hub has published it."""
        hub = self.camera(camera_id).hub
        after = hub.latest.frame.seq if hub.latest else 0
        self.push(camera_id, jpeg)
        assert await hub.next_part(after, 5) is not None


StartProxy = Callable[..., Awaitable[Proxy]]


async def refusals(proxy: Proxy) -> dict[str, float]:
    """``mjpeg_proxy_refused_requests_total`` by reason, as scraped from /metrics."""
    async with aiohttp.ClientSession() as session, session.get(proxy.url("/metrics")) as response:
        assert response.status == 200
        text = await response.text()
    return parse_refusals(text)


def parse_refusals(text: str) -> dict[str, float]:
    """``mjpeg_proxy_refused_requests_total`` by reason, from the text of a /metrics answer."""
    return {
        sample.labels["reason"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "mjpeg_proxy_refused_requests"
        for sample in family.samples
    }


FAST_RETRIES = CameraTiming(backoff_s=(0.05, 0.2), auth_backoff_s=(0.05, 0.2), min_stall_timeout_s=1.0)
"""Retry delays shrunk and the stall floor lowered, so recoveries take a fraction of a second."""

CAMERA_FPS = 15
"""The frame rate ``run_camera`` publishes at."""


async def run_camera(
    proxy: Proxy, frames: Sequence[bytes], on_publish: Callable[[], None] | None = None
) -> dict[bytes, float]:
    """Be the camera: publish ``frames`` at 15 fps (a bounded, paced loop, not a wait).
    Returns when each frame was pushed (event-loop time)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    pushed_at = {}
    for count, jpeg in enumerate(frames):
        await asyncio.sleep(max(0.0, start + count / CAMERA_FPS - loop.time()))
        pushed_at[jpeg] = loop.time()
        await proxy.publish("cam", jpeg)
        if on_publish is not None:
            on_publish()
    return pushed_at


# --- mocked upstreams for aiohttp client code ----------------------------------------------


class _MockedResponse(aiohttp.ClientResponse):
    """aiohttp 3.14 made ``stream_writer`` a required argument that aioresponses 0.7.9
    does not pass (pnuckowski/aioresponses#289); a finished request needs only its size."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", types.SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


class MockedUpstream(aioresponses):
    """``aioresponses`` that works with aiohttp 3.14: every mocked answer uses the class above."""

    def add(self, url: str | URL | re.Pattern[str], method: str = "GET", *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("response_class", _MockedResponse)
        super().add(url, method, *args, **kwargs)


# --- configuration ------------------------------------------------------------------------

DEMO = '[[cameras]]\nid = "demo"\nsource = "demo"\n'
LOCALHOST = (ipaddress.ip_network("127.0.0.1/32"),)
"""``trusted_proxies`` that trust the tests' own address."""


def write(tmp_path: Path, text: str, name: str = "proxy.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def load_error(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    """Load ``text`` as a config file; return the ConfigError message (the file path is checked)."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={} if environ is None else environ)
    message = str(info.value)
    assert path in message
    assert "\n" not in message
    return message


def assert_names(message: str, camera: str, field: str) -> None:
    assert camera in message
    assert f"field '{field}'" in message


def demo_camera(camera_id: str, fps: float = 2.0) -> CameraConfig:
    return CameraConfig(id=camera_id, source=DemoConfig(width=320, height=180), name=f"Demo {camera_id}", fps=fps)


# --- real clients: binaries, a browser ------------------------------------------------------

LAN_HOST = "lan-camera.test"
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these, Chromium keeps calling Google's hosts, which this network refuses.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # A LAN name for 127.0.0.1: pages there are plain http on a host that is not potentially
    # trustworthy, so Chromium sends them no Sec-Fetch-* headers, as on a real LAN.
    f"--host-resolver-rules=MAP {LAN_HOST} 127.0.0.1",
]


def need_binary(name: str) -> str:
    """The path of ``name``; in CI a missing binary fails the test, elsewhere it skips."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; .ci/run must install it")
        pytest.skip(f"{name} is not installed")
    return path
