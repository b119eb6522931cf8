"""Test-side tools: a source the test feeds by hand, a strict MJPEG reader, small waits."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mjpeg_proxy.frame import Frame
from mjpeg_proxy.sources.base import Source

DATA = Path(__file__).parent / "data"
PETS_FRAMES = sorted((DATA / "frames" / "opencv-vtest-pets2009").glob("frame_*.jpg"))


def real_frames() -> list[bytes]:
    """The real camera frames in tests/data (768x576 JPEGs of 64-80 KB)."""
    return [path.read_bytes() for path in PETS_FRAMES]


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
