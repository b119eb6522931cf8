"""What a proxy nobody watches costs: CPU seconds per minute with idle cameras.

    python bench/idle.py                       # 10 cameras of each kind, 30 s per case
    python bench/idle.py --cameras 10 --seconds 60 --tree ../other-checkout

For each case it starts, on 127.0.0.1, a fake snapshot camera and a fake MJPEG camera
(``mjpeg_camera.py``, 1 fps, 640x480) as upstreams, then the proxy (``python -m
mjpeg_proxy``, from ``--tree`` if given) with ``--cameras`` cameras of one kind and no
viewer, waits until they are settled (on demand: idle; always on: live), and reads the
proxy's CPU time from ``/proc/<pid>/stat`` over ``--seconds``. One Markdown table row per
case. Every process is stopped at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))
from run import cpu_s, free_port, wait_port  # noqa: E402 - the bench's own helpers

FRAME = (ROOT / "tests" / "data" / "frames" / "axis-runway-webcam-640x480" / "frame_001.jpg").read_bytes()
SETTLE_TIMEOUT_S = 30.0


async def serve_snapshots(port: int) -> web.AppRunner:
    """A snapshot camera on 127.0.0.1:``port``: ``/snapshot.jpg`` is a real 640x480 frame."""

    async def snapshot(request: web.Request) -> web.Response:
        return web.Response(body=FRAME, content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/snapshot.jpg", snapshot)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def config_text(kind: str, url: str, cameras: int, always_on: bool) -> str:
    tables = [
        f'[[cameras]]\nid = "{kind}{n}"\nsource = "{kind}"\nfps = 1\nalways_on = {str(always_on).lower()}\n'
        + (f'url = "{url}"\n' if kind != "demo" else "")
        for n in range(cameras)
    ]
    return "\n".join(tables)


def states(port: int) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/cameras", timeout=5) as response:
        return [camera["state"] for camera in json.load(response)["cameras"]]


async def measure(kind: str, url: str, args: argparse.Namespace, always_on: bool) -> dict:
    port = free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as config:
        config.write(config_text(kind, url, args.cameras, always_on))
    command = [sys.executable, "-m", "mjpeg_proxy", "--config", config.name, "--port", str(port)]
    # Run from the tree: "python -m" imports the package from the working directory first.
    proxy = subprocess.Popen([*command, "--log-level", "warning"], cwd=Path(args.tree).resolve())
    try:
        await asyncio.to_thread(wait_port, port)
        settled = "live" if always_on else "idle"
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while not all(state == settled for state in await asyncio.to_thread(states, port)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{kind} cameras not {settled} within {SETTLE_TIMEOUT_S:g} s")
            await asyncio.sleep(0.2)
        start_cpu, start = cpu_s(proxy.pid), time.monotonic()
        await asyncio.sleep(args.seconds)
        cpu, wall = cpu_s(proxy.pid) - start_cpu, time.monotonic() - start
    finally:
        proxy.terminate()
        proxy.wait(10)
        os.unlink(config.name)
    return {"kind": kind, "always_on": always_on, "cpu_s_per_min": cpu / wall * 60, "seconds": wall}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=30.0, help="measuring window per case (at most 600)")
    parser.add_argument("--tree", default=str(ROOT), help="checkout whose mjpeg_proxy to run (default: this one)")
    parser.add_argument("--kinds", nargs="+", default=["snapshot", "mjpeg", "demo"])
    args = parser.parse_args()
    args.seconds = min(args.seconds, 600.0)
    snapshot_port, mjpeg_port = free_port(), free_port()
    snapshots = await serve_snapshots(snapshot_port)
    camera_command = [sys.executable, str(BENCH / "mjpeg_camera.py"), "--port", str(mjpeg_port)]
    mjpeg = subprocess.Popen([*camera_command, "--fps", "1", "--size", "640x480"])
    urls = {
        "snapshot": f"http://127.0.0.1:{snapshot_port}/snapshot.jpg",
        "mjpeg": f"http://127.0.0.1:{mjpeg_port}/video.mjpg",
        "demo": "",
    }
    try:
        await asyncio.to_thread(wait_port, mjpeg_port)
        print(f"| cameras | source | always_on | CPU s per minute (proxy, {args.cameras} cameras, no viewer) |")
        print("| --- | --- | --- | --- |")
        for kind in args.kinds:
            for always_on in (False, True):
                row = await measure(kind, urls[kind], args, always_on)
                print(f"| {args.cameras} | {kind} | {always_on} | {row['cpu_s_per_min']:.2f} |", flush=True)
    finally:
        mjpeg.terminate()
        mjpeg.wait(10)
        await snapshots.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
