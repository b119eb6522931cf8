"""Load run: N MJPEG viewers on one snapshot camera; frames delivered, CPU and memory.

    python bench/viewers.py --viewers 1000 --fps 4 --seconds 20

Starts a fake snapshot camera (real 768x576 frames from tests/data) and the proxy as a
separate process on 127.0.0.1, connects N viewers over raw HTTP/1.0 sockets, counts
the parts each receives for the run's length, and reads the proxy's CPU time and memory
from /proc. Only 127.0.0.1 is contacted; the run ends by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
FRAMES = sorted((ROOT / "tests" / "data" / "frames" / "opencv-vtest-pets2009").glob("frame_*.jpg"))
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def proc_rss_kib(pid: int) -> tuple[int, int]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(status["VmRSS"].split()[0]), int(status["VmHWM"].split()[0])


async def fake_camera(frames: list[bytes]) -> tuple[web.AppRunner, int, list[int]]:
    served = [0]

    async def snapshot(request: web.Request) -> web.Response:
        served[0] += 1
        return web.Response(body=frames[served[0] % len(frames)], content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/snapshot.jpg", snapshot)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1], served


async def viewer(port: int, counts: list[int], index: int, stop: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /cameras/bench/stream.mjpg HTTP/1.0\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    boundary = head.split(b"boundary=", 1)[1].split(b"\r\n", 1)[0]
    delimiter = b"\r\n--" + boundary + b"\r\n"
    carry = b""
    try:
        while not stop.is_set():
            chunk = await reader.read(262144)
            if not chunk:
                break
            data = carry + chunk
            counts[index] += data.count(delimiter)
            carry = data[-(len(delimiter) - 1) :]
    finally:
        writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=100)
    parser.add_argument("--fps", type=float, default=4.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--port", type=int, default=18080)
    args = parser.parse_args()

    frames = [p.read_bytes() for p in FRAMES]
    runner, camera_port, served = await fake_camera(frames)
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(
            f'[[cameras]]\nid = "bench"\nsource = "snapshot"\n'
            f'url = "http://127.0.0.1:{camera_port}/snapshot.jpg"\nfps = {args.fps}\n'
        )
    proxy = subprocess.Popen(
        [sys.executable, "-m", "mjpeg_proxy", "--config", f.name, "--port", str(args.port), "--log-level", "warning"],
        cwd=ROOT,
    )
    try:
        for _ in range(100):
            try:
                _, w = await asyncio.open_connection("127.0.0.1", args.port)
                w.close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        rss_idle, _ = proc_rss_kib(proxy.pid)
        stop = asyncio.Event()
        counts = [0] * args.viewers
        tasks = []
        for i in range(args.viewers):
            tasks.append(asyncio.create_task(viewer(args.port, counts, i, stop)))
            if i % 100 == 99:
                await asyncio.sleep(0.05)  # pace the connection burst
        await asyncio.sleep(1.0)  # every viewer has its first frame
        counts[:] = [0] * args.viewers
        cpu0, wall0, served0 = proc_cpu_s(proxy.pid), time.monotonic(), served[0]
        own0 = time.process_time()
        await asyncio.sleep(args.seconds)
        cpu1, wall1, served1 = proc_cpu_s(proxy.pid), time.monotonic(), served[0]
        own1 = time.process_time()
        rss, hwm = proc_rss_kib(proxy.pid)
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        proxy.terminate()
        proxy.wait(10)
        await runner.cleanup()
        os.unlink(f.name)

    elapsed = wall1 - wall0
    per_viewer_fps = [c / elapsed for c in counts]
    delivered = sum(counts)
    cpu = cpu1 - cpu0
    mean_frame = sum(map(len, frames)) // len(frames)
    print(f"viewers={args.viewers} fps={args.fps:g} seconds={elapsed:.1f} frame_bytes~{mean_frame}")
    print(f"upstream requests/s={(served1 - served0) / elapsed:.2f}")
    print(f"viewer fps median={statistics.median(per_viewer_fps):.2f} min={min(per_viewer_fps):.2f}")
    print(f"proxy cpu={cpu:.2f}s ({100 * cpu / elapsed:.0f}% of one core)")
    print(f"viewer-frames per cpu-second={delivered / max(cpu, 1e-9):.0f}")
    print(f"proxy rss idle={rss_idle} KiB, with viewers={rss} KiB (peak {hwm} KiB)")
    print(f"memory per viewer={(rss - rss_idle) / args.viewers:.1f} KiB")
    print(f"load generator cpu={100 * (own1 - own0) / elapsed:.0f}% of one core")


if __name__ == "__main__":
    asyncio.run(main())
