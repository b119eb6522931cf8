"""The cheapest possible MJPEG relay, as a yardstick for the proxy's hot path.

    python bench/reference_relay.py --port 18200 --upstream http://127.0.0.1:18100/video.mjpg

One upstream reader; each frame becomes one shared bytes object written with
``transport.write`` to every viewer whose write buffer is below a mark; any GET gets a
close-delimited stream. No headers beyond the minimum, no per-viewer task, no checks:
what Python on this machine can do at best.
"""

from __future__ import annotations

import argparse
import asyncio
import re

from yarl import URL

BOUNDARY = b"reference"
MARK = 256 * 1024


class Viewer(asyncio.Protocol):
    def __init__(self, viewers: set[asyncio.Transport]) -> None:
        self.viewers = viewers
        self.transport: asyncio.Transport | None = None
        self.request = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.request is None:
            return
        self.request += data
        if b"\r\n\r\n" in self.request:
            self.request = None
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nCache-Control: no-cache\r\n"
                b"Content-Type: multipart/x-mixed-replace;boundary=" + BOUNDARY + b"\r\n\r\n--" + BOUNDARY + b"\r\n"
            )
            self.viewers.add(self.transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.viewers.discard(self.transport)


async def relay(upstream: URL, viewers: set[asyncio.Transport]) -> None:
    reader, writer = await asyncio.open_connection(upstream.host, upstream.port)
    writer.write(f"GET {upstream.path_qs} HTTP/1.0\r\n\r\n".encode())
    await reader.readuntil(b"\r\n\r\n")
    tail = b"\r\n--" + BOUNDARY + b"\r\n"
    while True:
        headers = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"Content-Length: (\d+)", headers).group(1))
        jpeg = await reader.readexactly(length)
        await reader.readexactly(2)
        part = b"Content-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % length + jpeg + tail
        for transport in viewers:
            if transport.get_write_buffer_size() < MARK:
                transport.write(part)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    viewers: set[asyncio.Transport] = set()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Viewer(viewers), "127.0.0.1", args.port)
    async with server:
        await relay(URL(args.upstream), viewers)


if __name__ == "__main__":
    asyncio.run(main())
