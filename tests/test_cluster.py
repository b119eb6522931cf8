"""Cluster mode in one event loop: three replicas, one Redis (Debian's redis-server), one fake camera.

Each replica is a whole application with its own ``ClusterNode``; they share only Redis,
as processes on three machines would. Short leases keep takeovers within a second.
"""

from __future__ import annotations

import itertools

import pytest

from mjpeg_proxy.cluster.feed import ClusterFeed, Role
from mjpeg_proxy.cluster.node import ClusterNode, ClusterTiming
from mjpeg_proxy.config import CameraConfig
from mjpeg_proxy.sources.snapshot import SnapshotConfig
from tests.fake_camera import FakeSnapshotCamera
from tests.helpers import MjpegViewer, Proxy, eventually, real_frames

PETS = real_frames()
QUICK = ClusterTiming(lease_s=1.0, check_s=0.1, retry_s=0.2)
"""A dead owner is replaced within 1.1 s; Redis is tried again every 0.2 s."""

pytestmark = pytest.mark.usefixtures("fast_retries")


@pytest.fixture
async def camera_url(aiohttp_server) -> tuple[FakeSnapshotCamera, str]:
    fake = FakeSnapshotCamera(list(itertools.islice(itertools.cycle(PETS), 10_000)))
    server = await aiohttp_server(fake.app())
    return fake, str(server.make_url("/snapshot.jpg"))


@pytest.fixture
def start_replicas(start_proxy, redis_server, camera_url):
    """Start ``count`` replicas of one proxy with camera ``cam`` (a snapshot camera at 10 fps, no linger)."""

    async def start(count: int = 3, **options) -> list[Proxy]:
        _, url = camera_url
        camera = CameraConfig(id="cam", source=SnapshotConfig(url=url), fps=10, linger_seconds=0)
        replicas = []
        for number in range(count):
            node = ClusterNode(redis_server.url, f"replica-{number}", timing=QUICK)
            replicas.append(await start_proxy(camera, on_demand=True, app_options={"cluster": node}, **options))
        return replicas

    return start


def feed(proxy: Proxy) -> ClusterFeed:
    cluster_feed = proxy.camera("cam").feed
    assert isinstance(cluster_feed, ClusterFeed)
    return cluster_feed


def roles(replicas: list[Proxy]) -> list[Role]:
    return sorted(feed(replica).role for replica in replicas)


async def open_viewers(replicas: list[Proxy]) -> list[MjpegViewer]:
    viewers = [MjpegViewer(replica.url("/cameras/cam/stream.mjpg")) for replica in replicas]
    for viewer in viewers:
        await viewer.__aenter__()
    return viewers


async def close_viewers(viewers: list[MjpegViewer]) -> None:
    for viewer in viewers:
        await viewer.__aexit__(None, None, None)


async def camera_frames(viewer: MjpegViewer, count: int) -> list[bytes]:
    """The viewer's next ``count`` new pictures that are camera frames (offline pictures skipped)."""
    frames: list[bytes] = []
    while len(frames) < count:
        jpeg = (await viewer.next_new_part()).jpeg
        if jpeg in PETS:
            frames.append(jpeg)
    return frames


async def test_one_replica_fetches_and_viewers_on_every_replica_get_its_frames(start_replicas):
    replicas = await start_replicas(3)
    viewers = await open_viewers(replicas)
    try:
        for viewer in viewers:
            assert len(await camera_frames(viewer, 3)) == 3
        assert roles(replicas) == [Role.FOLLOWER, Role.FOLLOWER, Role.OWNER]
        fetching = [replica for replica in replicas if replica.camera("cam").upstream_requests > 0]
        assert len(fetching) == 1 and feed(fetching[0]).role is Role.OWNER
        for replica in replicas:
            if replica is not fetching[0]:
                assert feed(replica).frames_from_bus > 0
    finally:
        await close_viewers(viewers)


async def test_the_owner_keeps_fetching_for_other_replicas_after_its_own_viewers_leave(start_replicas):
    replicas = await start_replicas(2)
    (first,) = await open_viewers(replicas[:1])
    await camera_frames(first, 1)
    assert feed(replicas[0]).role is Role.OWNER
    (second,) = await open_viewers(replicas[1:])
    await camera_frames(second, 1)
    await eventually(lambda: replicas[0].camera("cam").interest_elsewhere == 1)  # its next lease renewal
    await close_viewers([first])
    before = replicas[0].camera("cam").upstream_requests
    await camera_frames(second, 5)  # no linger: replica 0 fetches for replica 1's viewer alone
    assert replicas[0].camera("cam").upstream_requests > before
    assert replicas[0].camera("cam").hub.viewers == 0 and replicas[0].camera("cam").interest_elsewhere == 1
    assert feed(replicas[1]).role is Role.FOLLOWER
    await close_viewers([second])


async def test_a_replica_that_stops_hands_the_camera_over_on_the_same_viewer_connections(start_replicas):
    replicas = await start_replicas(3)
    viewers = await open_viewers(replicas)
    try:
        for viewer in viewers:
            await camera_frames(viewer, 1)
        owner = next(replica for replica in replicas if feed(replica).role is Role.OWNER)
        old_epoch = feed(owner).epoch
        survivors = [
            (replica, viewer) for replica, viewer in zip(replicas, viewers, strict=True) if replica is not owner
        ]
        await owner.server.close()
        await eventually(lambda: sorted(feed(r).role for r, _ in survivors) == [Role.FOLLOWER, Role.OWNER], 10)
        for replica, viewer in survivors:
            assert len(await camera_frames(viewer, 3)) == 3
            assert feed(replica).epoch > old_epoch
    finally:
        await close_viewers([viewer for replica, viewer in zip(replicas, viewers, strict=True) if replica is not owner])


async def test_without_redis_every_replica_fetches_alone_then_rejoins(start_replicas, redis_server):
    replicas = await start_replicas(2)
    viewers = await open_viewers(replicas)
    try:
        for viewer in viewers:
            await camera_frames(viewer, 1)
        await redis_server.stop()
        await eventually(lambda: roles(replicas) == [Role.STANDALONE, Role.STANDALONE], 10)
        for viewer in viewers:
            assert len(await camera_frames(viewer, 3)) == 3
        await redis_server.start()
        await eventually(lambda: roles(replicas) == [Role.FOLLOWER, Role.OWNER], 10)
        for viewer in viewers:
            assert len(await camera_frames(viewer, 3)) == 3
    finally:
        await close_viewers(viewers)
