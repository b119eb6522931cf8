"""A proxy nobody watches costs next to no CPU: every wait is on an event or a deadline in
the future. Checked with cameras on fakes on 127.0.0.1 and the process's own CPU time,
which a busy loop (a wait whose deadline has passed, re-checked for ever) fills at once."""

from __future__ import annotations

import asyncio
import socket
import time

import aiohttp

from mjpeg_proxy.camera.demand import Demand
from mjpeg_proxy.config import CameraConfig
from mjpeg_proxy.sources.mjpeg import MjpegConfig
from mjpeg_proxy.sources.snapshot import SnapshotConfig
from tests.fake_camera import FakeSnapshotCamera
from tests.helpers import Proxy, eventually, real_frames

PETS = real_frames()
WATCH_S = 0.5
"""How long each test watches the process's CPU time, in seconds."""
BUSY_SHARE = 0.2
"""A share of one core far above what sleeping tasks cost, and far below the whole core a
busy loop takes."""


async def cpu_share_while_waiting(seconds: float = WATCH_S) -> float:
    """The share of one core this process used while the test slept ``seconds``."""
    start_cpu, start = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    return (time.process_time() - start_cpu) / (time.monotonic() - start)


async def watch_briefly(proxy: Proxy, camera_id: str) -> None:
    """Open the camera's stream, read its first bytes, and leave."""
    async with aiohttp.ClientSession() as session, session.get(proxy.url(f"/cameras/{camera_id}/stream.mjpg")) as r:
        assert r.status == 200
        await r.content.read(1)


async def test_an_always_on_camera_without_viewers_sleeps_between_frames(aiohttp_server, start_proxy):
    camera = FakeSnapshotCamera(PETS)
    server = await aiohttp_server(camera.app())
    url = str(server.make_url("/snapshot.jpg"))
    # One frame every 5 s: the watch below falls between two requests.
    proxy = await start_proxy(CameraConfig(id="cam", source=SnapshotConfig(url=url), fps=0.2, always_on=True))
    await eventually(lambda: proxy.camera("cam").state == "live")
    assert await cpu_share_while_waiting() < BUSY_SHARE


async def test_a_camera_idle_after_its_linger_uses_no_cpu(aiohttp_server, start_proxy):
    camera = FakeSnapshotCamera(PETS)
    server = await aiohttp_server(camera.app())
    url = str(server.make_url("/snapshot.jpg"))
    proxy = await start_proxy(
        CameraConfig(id="cam", source=SnapshotConfig(url=url), fps=2, linger_seconds=0.2), on_demand=True
    )
    await watch_briefly(proxy, "cam")
    await eventually(lambda: proxy.camera("cam").state == "idle")
    assert await cpu_share_while_waiting() < BUSY_SHARE


async def test_a_refused_upstream_waiting_for_its_retry_uses_no_cpu(start_proxy):
    with socket.socket() as bound:  # a port that refuses connections: bound, not listening
        bound.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{bound.getsockname()[1]}/video.mjpg"
        proxy = await start_proxy(
            CameraConfig(id="cam", source=MjpegConfig(url=url), linger_seconds=0.2), on_demand=True
        )
        await watch_briefly(proxy, "cam")
        await eventually(lambda: proxy.camera("cam").state == "idle")
        assert await cpu_share_while_waiting() < BUSY_SHARE
        always = await start_proxy(CameraConfig(id="cam", source=MjpegConfig(url=url), always_on=True))
        await eventually(lambda: always.camera("cam").state == "offline")
        assert await cpu_share_while_waiting() < BUSY_SHARE


async def test_waiting_for_demand_to_change_checks_once_per_change():
    checks = 0
    viewers = 0

    def count_viewers() -> int:
        nonlocal checks
        checks += 1
        return viewers

    demand = Demand(count_viewers)
    demand.hold(3600)  # a long linger: wanted until it runs out
    waiting = asyncio.create_task(demand.wait(False))
    for _ in range(50):
        await asyncio.sleep(0)
    assert not waiting.done()
    assert checks <= 4  # not once per turn of the event loop
    viewers = 1
    demand.changed()
    for _ in range(50):
        await asyncio.sleep(0)
    assert not waiting.done() and checks <= 8
    waiting.cancel()


async def test_a_hold_that_runs_out_ends_the_wait():
    demand = Demand(lambda: 0)
    demand.hold(0.05)
    assert demand.wanted()
    await asyncio.wait_for(demand.wait(False), 5)
    assert not demand.wanted()
    always = Demand(lambda: 0, always_on=True)
    assert always.wanted()
    with_viewer = Demand(lambda: 1)
    await asyncio.wait_for(with_viewer.wait(True), 1)
