"""Upstream calls per EEN camera per minute, with 1 and with 100 viewers, for EEN API v1 and v3.

    python bench/een_calls.py --seconds 60                        # v1, v3 multipart, v3 image
    python bench/een_calls.py --api v3 --preview image --seconds 30

For each API (and for v3 each preview mode) runs the test suite's fake EEN service
(tests/fake_een.py for v1, tests/fake_een_v3.py for v3; two cameras, one preview a second,
real frames) and the proxy as a separate process, both on 127.0.0.1. For v3 the bench first
logs in as ``mjpeg-proxy een-login`` would (authorize, exchange the code, write the token
file). Then 1 viewer, then 100 viewers, watch both cameras (the proxy's per-client limit
raised so all 200 connections from 127.0.0.1 are served; the viewers still watching at the
end, and any refused, are printed), and after they have connected the fake's counters are
read over ``--seconds``:

- v1: image requests per camera per minute (one per preview: 60 at one a second);
- v3 multipart: every request naming the camera (feeds and stream opens) per minute, near
  0 as the one stream per camera stays open, and the parts the fake sent per minute
  (60 at one a second), to show frames flowed;
- v3 image: liveImage requests per camera per minute (60 at one a second), and every
  request naming the camera (no feeds: the same figure).

After both viewer counts: v1 logins and the most concurrent ``next`` requests per camera;
v3 token requests per grant type (one ``authorization_code``, the bench's login; a refresh
is not due in a short run) and the most concurrent multipart streams per camera.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web
from yarl import URL

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fake_een import FakeEen  # noqa: E402
from tests.fake_een_v3 import FakeEenV3  # noqa: E402
from tests.helpers import real_frames  # noqa: E402

ESNS = ("1006073b", "100d4c41")
FOLDERS = ("opencv-vtest-pets2009", "axis-runway-webcam-640x480")
REDIRECT = "http://127.0.0.1:3333/callback"
VIEWER_COUNTS = (1, 100)
SETTLE_S = 2.0  # after the viewers connect, before counting
Counts = dict[str, dict[str, int]]  # ESN -> counter name -> value


@dataclass
class Setup:
    """One API (and preview mode): its fake, what the proxy's configuration says, what to count."""

    name: str
    app: Callable[[], web.Application]
    counts: Callable[[], Counts]
    summary: Callable[[], str]
    config: Callable[[URL, Path], str]  # the fake's URL, a scratch folder -> the [een] table
    log_in: Callable[[URL, Path], object] | None = None  # an awaitable that writes the token file
    camera_keys: Callable[[str], str] = lambda esn: ""
    env: dict[str, str] | None = None


def v1_setup() -> Setup:
    fake = FakeEen()
    for esn, folder in zip(ESNS, FOLDERS, strict=True):
        fake.add_camera(esn, real_frames(folder), interval_s=1.0)

    def config(url: URL, scratch: Path) -> str:
        return f'[een]\nusername = "{fake.username}"\npassword_env = "BENCH_EEN_PASSWORD"\nbase_url = "{url}"\n'

    return Setup(
        name="v1",
        app=fake.app,
        counts=lambda: {esn: {"image requests": fake.cameras[esn].image_requests} for esn in ESNS},
        summary=lambda: (
            f"logins: {fake.logins}; most concurrent 'next' requests per camera: "
            f"{max(c.max_open_next for c in fake.cameras.values())}"
        ),
        config=config,
        env={"BENCH_EEN_PASSWORD": fake.password},
    )


def v3_setup(preview: str) -> Setup:
    fake = FakeEenV3(redirect_uris=(REDIRECT,))
    for esn, folder in zip(ESNS, FOLDERS, strict=True):
        fake.add_camera(esn, real_frames(folder), interval_s=1.0)

    def config(url: URL, scratch: Path) -> str:
        return (
            f'[een]\napi = "v3"\nclient_id = "{fake.client_id}"\nclient_secret_env = "BENCH_EEN_CLIENT_SECRET"\n'
            f'token_file = "{scratch / "een.json"}"\nauth_url = "{url}"\n'
        )

    async def log_in(url: URL, scratch: Path) -> None:
        await fake.log_in(url, scratch / "een.json")

    def counts() -> Counts:
        result = {}
        for esn in ESNS:
            camera = fake.cameras[esn]
            if preview == "multipart":
                result[esn] = {"camera requests": fake.camera_requests[esn], "parts received": camera.parts_sent}
            else:
                result[esn] = {"liveImage requests": camera.live_image_requests}
                result[esn]["camera requests"] = fake.camera_requests[esn]
        return result

    def summary() -> str:
        tokens = ", ".join(f"{grant} {n}" for grant, n in sorted(fake.token_requests.items()))
        streams = ", ".join(f"{esn}: {fake.cameras[esn].max_open_streams}" for esn in ESNS)
        paths = ", ".join(f"{path} {n}" for path, n in sorted(fake.requests.items()))
        return (
            f"token requests: {tokens} (refresh_token {fake.token_requests['refresh_token']}); "
            f"most concurrent streams per camera: {streams}\n    requests over the whole run: {paths}"
        )

    return Setup(
        name=f"v3 {preview}",
        app=fake.app,
        counts=counts,
        summary=summary,
        config=config,
        log_in=log_in,
        camera_keys=lambda esn: f'preview = "{preview}"\n',
        env={"BENCH_EEN_CLIENT_SECRET": fake.client_secret},
    )


async def watch(port: int, esn: str, watching: Counter[str]) -> None:
    """One viewer of ``esn`` until cancelled or the stream ends; ``watching[esn]`` counts the
    viewers whose stream was answered 200 and still plays, ``watching["refused"]`` the others."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /cameras/{esn}/stream.mjpg HTTP/1.0\r\n\r\n".encode())
    try:
        if (await reader.readline()).split(b" ")[1:2] != [b"200"]:
            watching["refused"] += 1
            return
        watching[esn] += 1
        try:
            while await reader.read(262144):
                pass
        finally:
            watching[esn] -= 1
    finally:
        writer.close()


async def measure(counts: Callable[[], Counts], port: int, viewers: int, seconds: float) -> tuple[Counts, str]:
    """The growth of ``counts()`` over ``seconds`` while ``viewers`` watch each camera, and
    how many viewers were still watching at the end."""
    watching: Counter[str] = Counter()
    tasks = [asyncio.create_task(watch(port, esn, watching)) for _ in range(viewers) for esn in ESNS]
    await asyncio.sleep(SETTLE_S)  # every viewer connected and watching
    before = counts()
    await asyncio.sleep(seconds)
    after = counts()
    still = ", ".join(f"{esn} {watching[esn]}" for esn in ESNS) + f", refused {watching['refused']}"
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {esn: {key: after[esn][key] - before[esn][key] for key in after[esn]} for esn in after}, still


async def until_serving(port: int, proxy: subprocess.Popen, timeout_s: float = 20.0) -> None:
    """Wait, at most ``timeout_s``, for the proxy's /healthz to answer at all."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline and proxy.poll() is None:
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz"):
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.2)
    raise RuntimeError(f"the proxy did not answer on port {port} (exit code {proxy.poll()})")


async def run(setup: Setup, port: int, seconds: float) -> None:
    """Serve the fake, log in when the API needs it, start the proxy, count with 1 and with 100 viewers."""
    runner = web.AppRunner(setup.app(), access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = URL.build(scheme="http", host="127.0.0.1", port=site._server.sockets[0].getsockname()[1])
    proxy = None
    try:
        with tempfile.TemporaryDirectory() as scratch:
            config = Path(scratch) / "proxy.toml"
            # 100 viewers on each camera, all from 127.0.0.1: above the default per-client limit of 100.
            text = f"[server]\nmax_connections_per_client = {2 * max(VIEWER_COUNTS) * len(ESNS)}\n"
            text += setup.config(url, Path(scratch))
            for esn in ESNS:
                text += f'[[cameras]]\nid = "{esn}"\nsource = "een"\nesn = "{esn}"\n' + setup.camera_keys(esn)
            config.write_text(text)
            if setup.log_in is not None:
                await setup.log_in(url, Path(scratch))
            command = [sys.executable, "-m", "mjpeg_proxy", "--config", str(config), "--port", str(port)]
            command += ["--log-level", "warning"]
            proxy = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **(setup.env or {})})
            await until_serving(port, proxy)
            for viewers in VIEWER_COUNTS:
                grown, still = await measure(setup.counts, port, viewers, seconds)
                per_minute = "; ".join(
                    f"{esn}: " + ", ".join(f"{key} {n * 60 / seconds:.1f}" for key, n in counts.items())
                    for esn, counts in grown.items()
                )
                print(f"{setup.name:<12} {viewers:>3} viewer(s) per camera (watching at the end: {still})")
                print(f"{setup.name:<12} {viewers:>3} viewer(s) per camera, per camera per minute: {per_minute}")
            print(f"{setup.name:<12} {setup.summary()}", flush=True)
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(10)
        await runner.cleanup()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to count, per viewer count")
    parser.add_argument("--port", type=int, default=18081, help="the proxy's port on 127.0.0.1")
    parser.add_argument("--api", choices=("v1", "v3", "all"), default="all")
    parser.add_argument("--preview", choices=("multipart", "image", "all"), default="all", help="v3 preview mode")
    args = parser.parse_args()

    setups: list[Callable[[], Setup]] = []
    if args.api in ("v1", "all"):
        setups.append(v1_setup)
    if args.api in ("v3", "all"):
        for preview in ("multipart", "image"):
            if args.preview in (preview, "all"):
                setups.append(lambda preview=preview: v3_setup(preview))
    for make in setups:
        await run(make(), args.port, args.seconds)


if __name__ == "__main__":
    asyncio.run(main())
