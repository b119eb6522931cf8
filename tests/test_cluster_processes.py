"""Cluster mode as a site owner runs it: three ``run.py --config`` processes, one Redis, one fake camera.

The camera counts its requests; the replicas share nothing but Redis. The owner is
killed with SIGKILL (no goodbye: its lease runs out by itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import signal
import socket
import time
from collections.abc import AsyncIterator

import pytest

from tests.fake_camera import FakeSnapshotCamera
from tests.helpers import MjpegViewer, real_frames, watching
from tests.processes import ProxyProcess, http_get, proxy_process

PETS = real_frames()
LEASE_S = 1.0


def cluster_config(redis_url: str, camera_url: str) -> str:
    return (
        f'[cluster]\nredis_url = "{redis_url}"\nlease_seconds = {LEASE_S}\n\n'
        f'[[cameras]]\nid = "cam"\nsource = "snapshot"\nurl = "{camera_url}"\nfps = 10\nlinger_seconds = 0\n'
    )


def role_of(replica: ProxyProcess) -> dict:
    status, body = http_get(f"{replica.base}/api/cameras/cam")
    assert status == 200
    return json.loads(body)["cluster"]


@contextlib.asynccontextmanager
async def replicas(tmp_path, config: str, count: int) -> AsyncIterator[list[ProxyProcess]]:
    path = tmp_path / "cluster.toml"
    path.write_text(config, encoding="utf-8")
    async with contextlib.AsyncExitStack() as stack:
        started = [
            await stack.enter_async_context(proxy_process(tmp_path, "--config", str(path))) for _ in range(count)
        ]
        yield started


@pytest.fixture
async def camera(aiohttp_server) -> tuple[FakeSnapshotCamera, str]:
    fake = FakeSnapshotCamera(list(itertools.islice(itertools.cycle(PETS), 100_000)))
    server = await aiohttp_server(fake.app())
    return fake, str(server.make_url("/snapshot.jpg"))


async def test_three_replicas_one_fetch_and_a_sigkilled_owner_replaced_on_the_same_viewers(
    tmp_path, redis_server, camera
):
    fake, url = camera
    async with replicas(tmp_path, cluster_config(redis_server.url, url), 3) as started:
        async with watching([f"{replica.base}/cameras/cam/stream.mjpg" for replica in started], PETS) as viewers:
            roles = [role_of(replica) for replica in started]
            assert sorted(role["role"] for role in roles) == ["follower", "follower", "owner"]
            owner = started[[role["role"] for role in roles].index("owner")]
            # One request loop in all: 10 fps, one request at a time.
            asked = len(fake.request_times)
            await asyncio.sleep(1.0)
            assert len(fake.request_times) - asked <= 12
            killed_at, killed_wall = time.monotonic(), time.time()
            owner.process.send_signal(signal.SIGKILL)
            survivors = [(r, v) for r, v in zip(started, viewers, strict=True) if r is not owner]
            await until_roles([replica for replica, _ in survivors], ["follower", "owner"])
            takeover_s = time.monotonic() - killed_at
            # The lease runs out at most LEASE_S after its last renewal; a follower looks every 0.5 s.
            assert takeover_s < LEASE_S + 1.0, takeover_s
            for _, viewer in survivors:  # the same connections get the new owner's frames
                await frame_after(viewer, killed_wall)


async def test_redis_stopped_and_started_again_while_viewers_watch(tmp_path, redis_server, camera):
    _, url = camera
    async with replicas(tmp_path, cluster_config(redis_server.url, url), 2) as started:
        async with watching([f"{replica.base}/cameras/cam/stream.mjpg" for replica in started], PETS) as viewers:
            await redis_server.stop()
            await until_roles(started, ["standalone", "standalone"])
            for viewer in viewers:
                await frame_after(viewer, time.time())
            await redis_server.start()
            await until_roles(started, ["follower", "owner"])
            for viewer in viewers:
                await frame_after(viewer, time.time())
    for replica in started:
        log = replica.stderr()
        address = redis_server.url.removeprefix("redis://")
        assert f"cluster mode: replica {socket.gethostname()}:{replica.port}; Redis at {address} answers" in log
        assert "fetching it here alone" in log and "rejoining the cluster" in log


async def until_roles(started: list[ProxyProcess], expected: list[str]) -> None:
    async with asyncio.timeout(15):
        while sorted(role_of(replica)["role"] for replica in started) != expected:
            await asyncio.sleep(0.05)


async def frame_after(viewer: MjpegViewer, wall: float) -> None:
    """Read the viewer's parts until one taken after ``wall`` (seconds since the epoch) comes."""
    while float((await viewer.next_new_part()).headers["x-timestamp"]) <= wall:
        pass
