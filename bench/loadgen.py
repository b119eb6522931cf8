"""Load generator: N concurrent MJPEG viewers with low overhead; prints a JSON summary.

    python bench/loadgen.py --url http://127.0.0.1:8080/cameras/bench/stream.mjpg --viewers 1000 --seconds 20

Each viewer is an asyncio Protocol (on uvloop when installed) that speaks HTTP/1.1 like a
browser, undoes chunked transfer coding if the server uses it, and finds each frame by
the stamp ``bench/mjpeg_camera.py`` puts in it: per viewer it counts frames, sequence gaps
and the latency from the camera's send to the viewer's receipt. Connects only to the
address in ``--url``; ends by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time
from pathlib import Path

from yarl import URL

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mjpeg_camera import TAG, read_stamp  # noqa: E402

STAMP_BYTES = len(TAG) + 16


class Viewer(asyncio.Protocol):
    def __init__(self, request: bytes, recording: list[bool]) -> None:
        self.request = request
        self.recording = recording
        self.head = b""
        self.chunked: bool | None = None
        self.chunk_left = 0  # bytes of chunk data still to come
        self.chunk_line = b""  # a chunk-size line being read
        self.carry = b""
        self.frames = 0
        self.gaps = 0
        self.last_seq: int | None = None
        self.latencies: list[float] = []
        self.connected = asyncio.get_running_loop().create_future()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.connected.done():
            self.connected.set_exception(ConnectionError("closed before the response"))

    def data_received(self, data: bytes) -> None:
        if self.chunked is None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self.head[:end].lower(), self.head[end + 4 :]
            self.chunked = b"transfer-encoding: chunked" in head
            if not self.connected.done():
                self.connected.set_result(head.startswith(b"http/1.1 200") or head.startswith(b"http/1.0 200"))
        if self.chunked:
            data = self._dechunk(data)
        self._scan(data)

    def _dechunk(self, data: bytes) -> bytes:
        out = []
        at = 0
        while at < len(data):
            if self.chunk_left < 0:  # the CRLF after a chunk's data
                skip = min(-self.chunk_left, len(data) - at)
                self.chunk_left += skip
                at += skip
                continue
            if self.chunk_left > 0:
                take = min(self.chunk_left, len(data) - at)
                out.append(data[at : at + take])
                self.chunk_left -= take
                at += take
                if not self.chunk_left:
                    self.chunk_left = -2
                continue
            end = data.find(b"\r\n", at)
            if end < 0:
                self.chunk_line += data[at:]
                break
            line, self.chunk_line = self.chunk_line + data[at:end], b""
            at = end + 2
            self.chunk_left = int(line.split(b";")[0] or b"0", 16)
        return b"".join(out)

    def _scan(self, data: bytes) -> None:
        buf = self.carry + data if self.carry else data
        at = buf.find(TAG)
        while at >= 0:
            if at + STAMP_BYTES > len(buf):
                break
            seq, sent = read_stamp(buf, at)
            if self.recording[0]:
                self.frames += 1
                self.latencies.append(time.time() - sent)
                if self.last_seq is not None and seq > self.last_seq + 1:
                    self.gaps += seq - self.last_seq - 1
            self.last_seq = seq
            at = buf.find(TAG, at + STAMP_BYTES)
        self.carry = buf[-(STAMP_BYTES - 1) :] if at < 0 else buf[at:]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--viewers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    args = parser.parse_args()
    url = URL(args.url)
    request = f"GET {url.path_qs} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\nAccept: */*\r\n\r\n".encode()
    loop = asyncio.get_running_loop()
    recording = [False]
    viewers: list[Viewer] = []
    transports = []
    for i in range(args.viewers):
        try:
            transport, viewer = await loop.create_connection(lambda: Viewer(request, recording), url.host, url.port)
        except OSError as e:
            print(f"connection {i} failed: {e}", file=sys.stderr)
            break
        viewers.append(viewer)
        transports.append(transport)
    ok = await asyncio.gather(*(v.connected for v in viewers), return_exceptions=True)
    await asyncio.sleep(args.warmup)
    print("recording", flush=True)  # bench/run.py samples the server's CPU at these two lines
    recording[0] = True
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(args.seconds)
    recording[0] = False
    cpu1, wall1 = time.process_time(), time.monotonic()
    print("done", flush=True)
    for transport in transports:
        transport.abort()
    elapsed = wall1 - wall0
    fps = [v.frames / elapsed for v in viewers]
    latencies = [x for v in viewers for x in v.latencies]
    summary = {
        "viewers": args.viewers,
        "connected": sum(1 for r in ok if r is True),
        "still_open": sum(1 for v in viewers if not v.closed),
        "seconds": elapsed,
        "frames": sum(v.frames for v in viewers),
        "fps_median": statistics.median(fps) if fps else 0.0,
        "fps_min": min(fps) if fps else 0.0,
        "latency_p50_ms": 1000 * percentile(latencies, 0.5),
        "latency_p99_ms": 1000 * percentile(latencies, 0.99),
        "gaps": sum(v.gaps for v in viewers),
        "loadgen_cpu_percent": 100 * (cpu1 - cpu0) / elapsed,
        "loop": type(loop).__module__,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
