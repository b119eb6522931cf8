"""Upstream calls per EEN camera per minute, with 1 and with 100 viewers.

    python bench/een_calls.py --seconds 60

Runs the test suite's fake EEN service (two cameras, one preview a second) and the
proxy as a separate process, both on 127.0.0.1; counts the image requests the fake
receives for each camera while 1 viewer, then 100 viewers, watch both cameras.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fake_een import FakeEen  # noqa: E402
from tests.helpers import real_frames  # noqa: E402

ESNS = ("1006073b", "100d4c41")


async def watch(port: int, esn: str, stop: asyncio.Event) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /cameras/{esn}/stream.mjpg HTTP/1.0\r\n\r\n".encode())
    received = 0
    try:
        while not stop.is_set():
            chunk = await reader.read(262144)
            if not chunk:
                break
            received += len(chunk)
    finally:
        writer.close()
    return received


async def measure(fake: FakeEen, port: int, viewers: int, seconds: float) -> dict[str, int]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(watch(port, esn, stop)) for _ in range(viewers) for esn in ESNS]
    await asyncio.sleep(2)  # every viewer connected and watching
    before = {esn: fake.cameras[esn].image_requests for esn in ESNS}
    await asyncio.sleep(seconds)
    after = {esn: fake.cameras[esn].image_requests for esn in ESNS}
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {esn: after[esn] - before[esn] for esn in ESNS}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--port", type=int, default=18081)
    args = parser.parse_args()

    fake = FakeEen()
    fake.add_camera(ESNS[0], real_frames(), interval_s=1.0)
    fake.add_camera(ESNS[1], real_frames("axis-runway-webcam-640x480"), interval_s=1.0)
    runner = web.AppRunner(fake.app(), access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    een_port = site._server.sockets[0].getsockname()[1]
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(f'[een]\nusername = "{fake.username}"\npassword_env = "BENCH_EEN_PASSWORD"\n')
        f.write(f'base_url = "http://127.0.0.1:{een_port}"\n')
        for esn in ESNS:
            f.write(f'[[cameras]]\nid = "{esn}"\nsource = "een"\nesn = "{esn}"\n')
    env = {**os.environ, "BENCH_EEN_PASSWORD": fake.password}
    command = [sys.executable, "-m", "mjpeg_proxy", "--config", f.name, "--port", str(args.port)]
    command += ["--log-level", "warning"]
    proxy = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        await asyncio.sleep(2)
        for viewers in (1, 100):
            calls = await measure(fake, args.port, viewers, args.seconds)
            per_minute = ", ".join(f"{esn}: {n * 60 / args.seconds:.1f}" for esn, n in calls.items())
            print(f"{viewers:>3} viewer(s) per camera: upstream image calls per camera per minute: {per_minute}")
        print(
            f"logins: {fake.logins}; most concurrent 'next' requests per camera: "
            f"{max(c.max_open_next for c in fake.cameras.values())}"
        )
    finally:
        proxy.terminate()
        proxy.wait(10)
        await runner.cleanup()
        os.unlink(f.name)


if __name__ == "__main__":
    asyncio.run(main())
