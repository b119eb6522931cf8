"""Load generator: N concurrent MJPEG viewers with low overhead; prints a JSON summary.

    python bench/loadgen.py --url http://127.0.0.1:8080/cameras/bench/stream.mjpg --viewers 1000 --seconds 20

Each viewer is a raw socket read by the event loop (uvloop when installed) that speaks
HTTP/1.1 like a tool, finds each part by its Content-Length and each frame by the stamp
``bench/mjpeg_camera.py`` puts in it, and lets the kernel discard the rest of the frame
unread. Per viewer it counts frames, sequence gaps and the latency from the camera's
send to the arrival of the frame's last byte. Connects only to the address in
``--url``; ends by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import socket
import statistics
import sys
import time
from pathlib import Path

from yarl import URL

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mjpeg_camera import TAG, read_stamp  # noqa: E402

STAMP_AT = 6  # SOI, then the COM marker and its length, then TAG
STAMP_BYTES = len(TAG) + 16


SKIP = bytearray(1 << 20)
"""Shared landing area for discarded body bytes: with ``MSG_TRUNC`` the kernel drops them unread."""
HEAD_READ = 4096
CONTENT_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


class Viewer:
    """One viewer on a raw non-blocking socket, read when the loop says it is readable.

    It parses each part's header block for its Content-Length, reads the first bytes of the
    body for the stamp, and has the kernel discard the rest of the body with ``MSG_TRUNC``
    (tcp(7)), so the load generator does not copy the frames it does not look at: this is
    what lets one core stand in for thousands of viewers. Chunked bodies are refused.
    """

    def __init__(self, sock: socket.socket, recording: list[bool]) -> None:
        self.sock = sock
        self.recording = recording
        self.buf = b""
        self.in_head = True  # still reading the HTTP response head
        self.body_left = 0  # bytes of the current part's body not yet received
        self.want_stamp = False
        self.frames = 0
        self.gaps = 0
        self.last_seq: int | None = None
        self.sent: float | None = None  # send time of the frame being received
        self.latencies: list[float] = []
        self.connected = asyncio.get_running_loop().create_future()
        self.closed = False

    def on_readable(self) -> None:
        try:
            while True:
                if self.body_left and not self.want_stamp:
                    n = self.sock.recv_into(SKIP, min(self.body_left, len(SKIP)), socket.MSG_TRUNC)
                    if not n:
                        return self._lost()
                    self.body_left -= n
                    if not self.body_left:
                        self._frame_done()
                    continue
                data = self.sock.recv(HEAD_READ)
                if not data:
                    return self._lost()
                self.buf += data
                self._parse()
        except BlockingIOError:
            pass
        except OSError:
            self._lost()

    def _parse(self) -> None:
        while True:
            if self.want_stamp:
                if len(self.buf) < STAMP_AT + STAMP_BYTES:
                    return
                self._stamp()
            if self.body_left:
                take = min(self.body_left, len(self.buf))
                self.body_left -= take
                self.buf = self.buf[take:]
                if self.body_left:
                    return
                self._frame_done()
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buf = self.buf[:end], self.buf[end + 4 :]
            if self.in_head:
                self.in_head = False
                status = head.lower()
                if b"transfer-encoding: chunked" in status:
                    raise SystemExit("the server sent a chunked body; the load generator reads close-delimited ones")
                if not self.connected.done():
                    self.connected.set_result(status.startswith((b"http/1.1 200", b"http/1.0 200")))
                continue
            match = CONTENT_LENGTH.search(head)
            if match is None:
                raise SystemExit(f"a part without Content-Length: {head[:200]!r}")
            self.body_left = int(match.group(1))
            self.want_stamp = True

    def _stamp(self) -> None:
        self.want_stamp = False
        if self.buf[STAMP_AT : STAMP_AT + len(TAG)] != TAG:
            return  # not a stamped frame (a placeholder, say): counted as nothing
        seq, self.sent = read_stamp(self.buf, STAMP_AT)
        if self.recording[0] and self.last_seq is not None and seq > self.last_seq + 1:
            self.gaps += seq - self.last_seq - 1
        self.last_seq = seq

    def _frame_done(self) -> None:
        """The last byte of a part's body is in: count the frame and its latency."""
        if self.sent is not None and self.recording[0]:
            self.frames += 1
            self.latencies.append(time.time() - self.sent)
        self.sent = None

    def _lost(self) -> None:
        self.closed = True
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        if not self.connected.done():
            self.connected.set_exception(ConnectionError("closed before the response"))


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
    for i in range(args.viewers):
        sock = socket.socket()
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (url.host, url.port))
            await loop.sock_sendall(sock, request)
        except OSError as e:
            print(f"connection {i} failed: {e}", file=sys.stderr)
            sock.close()
            break
        viewer = Viewer(sock, recording)
        loop.add_reader(sock.fileno(), viewer.on_readable)
        viewers.append(viewer)
    ok = await asyncio.gather(*(v.connected for v in viewers), return_exceptions=True)
    await asyncio.sleep(args.warmup)
    print("recording", flush=True)  # bench/run.py samples the server's CPU at these two lines
    recording[0] = True
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(args.seconds)
    recording[0] = False
    cpu1, wall1 = time.process_time(), time.monotonic()
    print("done", flush=True)
    for viewer in viewers:
        if not viewer.closed:
            loop.remove_reader(viewer.sock.fileno())
        viewer.sock.close()
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
