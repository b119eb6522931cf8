"""Test-side tools: a source the test feeds by hand, a strict MJPEG reader, small waits."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiohttp

from mjpeg_proxy.camera.frame import Frame
from mjpeg_proxy.sources.base import Source

DATA = Path(__file__).parent / "data"


def real_frames(folder: str = "opencv-vtest-pets2009") -> list[bytes]:
    """Real camera frames from tests/data/frames/``folder``: ``opencv-vtest-pets2009``
    (768x576, 64-80 KB) or ``axis-runway-webcam-640x480`` (byte-exact from an Axis camera)."""
    return [path.read_bytes() for path in sorted((DATA / "frames" / folder).glob("frame_*.jpg"))]


class PushSource(Source):
    """A source whose frames the test pushes one by one with ``push``."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()

    def push(self, jpeg: bytes) -> None:
        self._queue.put_nowait(jpeg)

    async def frames(self) -> AsyncIterator[Frame]:
        while True:
            yield Frame(await self._queue.get())


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


def is_subsequence(items: list[bytes], of: list[bytes]) -> bool:
    """True when ``items`` all occur in ``of``, in the same order (with gaps allowed)."""
    remaining = iter(of)
    return all(any(item == other for other in remaining) for item in items)
