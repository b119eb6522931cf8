"""Viewers on plain sockets that read only when, and as much as, the test says: for viewers
that stall, crawl or vanish."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

from aiohttp.web_protocol import RequestHandler

from tests.helpers import Proxy, ReadPart, StrictMjpegReader, boundary_of

STREAM = "/cameras/cam/stream.mjpg"
"""The stream of ``push_camera()``'s default camera, which a ``RawViewer`` watches unless told."""


class RawViewer:
    """A viewer on a plain socket that reads only when, and as much as, the test says."""

    def __init__(self, proxy: Proxy, sock: socket.socket) -> None:
        self.proxy = proxy
        self.sock = sock
        self.received = bytearray()
        self.ended: str | None = None  # "eof" or "reset", once the server closed it

    @classmethod
    async def connect(cls, proxy: Proxy, path: str = STREAM, rcvbuf: int | None = None) -> RawViewer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            # Set before connecting, so the advertised TCP window stays this small.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, (proxy.server.host, proxy.server.port))
        await loop.sock_sendall(sock, b"GET %s HTTP/1.0\r\n\r\n" % path.encode())
        return cls(proxy, sock)

    async def recv(self, size: int, timeout_s: float = 5.0) -> bytes:
        """Read up to ``size`` bytes (what the socket has, waiting for at least one)."""
        try:
            data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(self.sock, size), timeout_s)
        except ConnectionResetError:
            self.ended = "reset"
            return b""
        if not data:
            self.ended = "eof"
        self.received += data
        return data

    def server_side(self) -> RequestHandler | None:
        """The server's connection object for this socket, or None once the server closed it."""
        name = self.sock.getsockname()
        assert self.proxy.server.runner is not None and self.proxy.server.runner.server is not None
        for connection in self.proxy.server.runner.server.connections:
            if connection.transport is not None and connection.transport.get_extra_info("peername") == name:
                return connection
        return None

    def server_buffered(self) -> int:
        connection = self.server_side()
        if connection is None or connection.transport is None:
            return 0
        return connection.transport.get_write_buffer_size()

    async def parts(self) -> list[ReadPart]:
        """The whole parts received so far (a trailing partial part is left out)."""
        reader = asyncio.StreamReader(limit=2**20)
        reader.feed_data(bytes(self.received))
        reader.feed_eof()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 200 OK\r\n"), head[:100]
        content_type = next(
            line.split(b": ", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-type:")
        )
        mjpeg = StrictMjpegReader(reader, boundary_of(content_type.decode()))
        parts = []
        with contextlib.suppress(asyncio.IncompleteReadError):
            for _ in range(len(self.received) // 1000 + 1):  # bounded: a part is > 1000 bytes
                parts.append(await mjpeg.read_part())
        return parts

    def close(self) -> None:
        self.sock.close()


@contextlib.asynccontextmanager
async def raw_viewers(*viewers: RawViewer) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for viewer in viewers:
            viewer.close()
