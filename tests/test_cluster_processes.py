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
import time
from collections.abc import AsyncIterator

import pytest

from tests.fake_camera import FakeSnapshotCamera
from tests.helpers import MjpegViewer, real_frames
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


async def camera_frame(viewer: MjpegViewer) -> bytes:
    """The viewer's next new picture that is a camera frame (not the offline picture)."""
    while True:
        jpeg = (await viewer.next_new_part()).jpeg
        if jpeg in PETS:
            return jpeg


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
        viewers = [MjpegViewer(f"{replica.base}/cameras/cam/stream.mjpg") for replica in started]
        async with contextlib.AsyncExitStack() as stack:
            for viewer in viewers:
                await stack.enter_async_context(viewer)
            for viewer in viewers:
                await camera_frame(viewer)
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
            async with asyncio.timeout(10):
                while "owner" not in [role_of(replica)["role"] for replica, _ in survivors]:
                    await asyncio.sleep(0.05)
            takeover_s = time.monotonic() - killed_at
            # The lease runs out at most LEASE_S after its last renewal; a follower looks every 0.5 s.
            assert takeover_s < LEASE_S + 1.0, takeover_s
            for _, viewer in survivors:  # the same connections get the new owner's frames
                while float((await viewer.next_new_part()).headers["x-timestamp"]) <= killed_wall:
                    pass
            survivor_roles = sorted(role_of(replica)["role"] for replica, _ in survivors)
            assert survivor_roles == ["follower", "owner"]
