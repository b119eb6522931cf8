"""Cluster mode in one event loop: three replicas, one Redis (Debian's redis-server), one fake camera.

Each replica is a whole application with its own ``ClusterNode``; they share only Redis,
as processes on three machines would. Short leases keep takeovers within a second.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging

import aiohttp
import pytest
from redis.asyncio import Redis

from mjpeg_proxy.cluster.bus import Message
from mjpeg_proxy.cluster.feed import ClusterFeed, Role
from mjpeg_proxy.cluster.node import KEY_PREFIX, ClusterNode, ClusterTiming
from mjpeg_proxy.config import CameraConfig
from mjpeg_proxy.sources.snapshot import SnapshotConfig
from mjpeg_proxy.web.appkeys import CLUSTER
from tests.fake_camera import FakeSnapshotCamera
from tests.helpers import MjpegViewer, Proxy, camera_frames, eventually, need_binary, real_frames, watching
from tests.redis_server import RedisServer

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
    """Start ``count`` replicas of one proxy with camera ``cam`` (a snapshot camera at 10 fps, no linger by default)."""

    async def start(count: int = 3, linger_s: float = 0, **options) -> list[Proxy]:
        _, url = camera_url
        camera = CameraConfig(id="cam", source=SnapshotConfig(url=url), fps=10, linger_seconds=linger_s)
        replicas = []
        for number in range(count):
            node = ClusterNode(redis_server.url, f"replica-{number}", timing=QUICK)
            replicas.append(await start_proxy(camera, on_demand=True, app_options={"cluster": node}, **options))
        return replicas

    return start


async def open_viewers(replicas: list[Proxy]) -> list[MjpegViewer]:
    viewers = [MjpegViewer(url) for url in streams(replicas)]
    for viewer in viewers:
        await viewer.__aenter__()
    return viewers


async def close_viewers(viewers: list[MjpegViewer]) -> None:
    for viewer in viewers:
        await viewer.__aexit__(None, None, None)


def streams(replicas: list[Proxy]) -> list[str]:
    return [replica.url("/cameras/cam/stream.mjpg") for replica in replicas]


async def frames_of(viewer: MjpegViewer, count: int) -> list[bytes]:
    return await camera_frames(viewer, count, PETS)


def feed(proxy: Proxy) -> ClusterFeed:
    cluster_feed = proxy.camera("cam").feed
    assert isinstance(cluster_feed, ClusterFeed)
    return cluster_feed


def roles(replicas: list[Proxy]) -> list[Role]:
    return sorted(feed(replica).role for replica in replicas)


async def test_one_replica_fetches_and_viewers_on_every_replica_get_its_frames(start_replicas):
    replicas = await start_replicas(3)
    async with watching(streams(replicas), PETS) as viewers:
        for viewer in viewers:
            assert len(await frames_of(viewer, 3)) == 3
        assert roles(replicas) == [Role.FOLLOWER, Role.FOLLOWER, Role.OWNER]
        fetching = [replica for replica in replicas if replica.camera("cam").upstream_requests > 0]
        assert len(fetching) == 1 and feed(fetching[0]).role is Role.OWNER
        for replica in replicas:
            if replica is not fetching[0]:
                assert feed(replica).frames_from_bus > 0


async def test_the_owner_keeps_fetching_for_other_replicas_after_its_own_viewers_leave(start_replicas):
    replicas = await start_replicas(2)
    (first,) = await open_viewers(replicas[:1])
    await frames_of(first, 1)
    assert feed(replicas[0]).role is Role.OWNER
    (second,) = await open_viewers(replicas[1:])
    await frames_of(second, 1)
    await eventually(lambda: replicas[0].camera("cam").interest_elsewhere == 1)  # its next lease renewal
    await close_viewers([first])
    before = replicas[0].camera("cam").upstream_requests
    await frames_of(second, 5)  # no linger: replica 0 fetches for replica 1's viewer alone
    assert replicas[0].camera("cam").upstream_requests > before
    assert replicas[0].camera("cam").hub.viewers == 0 and replicas[0].camera("cam").interest_elsewhere == 1
    assert feed(replicas[1]).role is Role.FOLLOWER
    await close_viewers([second])


async def test_a_replica_that_stops_hands_the_camera_over_on_the_same_viewer_connections(start_replicas):
    replicas = await start_replicas(3)
    async with watching(streams(replicas), PETS) as viewers:
        owner = next(replica for replica in replicas if feed(replica).role is Role.OWNER)
        old_epoch = feed(owner).epoch
        survivors = [
            (replica, viewer) for replica, viewer in zip(replicas, viewers, strict=True) if replica is not owner
        ]
        await owner.server.close()
        await eventually(lambda: sorted(feed(r).role for r, _ in survivors) == [Role.FOLLOWER, Role.OWNER], 10)
        for replica, viewer in survivors:
            assert len(await frames_of(viewer, 3)) == 3
            assert feed(replica).epoch > old_epoch


async def test_without_redis_every_replica_fetches_alone_then_rejoins(start_replicas, redis_server):
    replicas = await start_replicas(2)
    async with watching(streams(replicas), PETS) as viewers:
        await redis_server.stop()
        await eventually(lambda: roles(replicas) == [Role.STANDALONE, Role.STANDALONE], 10)
        for viewer in viewers:
            assert len(await frames_of(viewer, 3)) == 3
        await redis_server.start()
        await eventually(lambda: roles(replicas) == [Role.FOLLOWER, Role.OWNER], 10)
        for viewer in viewers:
            assert len(await frames_of(viewer, 3)) == 3


async def test_an_operator_sees_each_replicas_role_in_the_api_the_status_page_and_the_metrics(start_replicas):
    replicas = await start_replicas(2)
    async with watching(streams(replicas), PETS):
        async with aiohttp.ClientSession() as session:
            answers = []
            for replica in replicas:
                async with session.get(replica.url("/api/cameras/cam")) as answer:
                    answers.append((await answer.json())["cluster"])
            owner = next(answer["owner"] for answer in answers if answer["role"] == "owner")
            assert sorted(answer["role"] for answer in answers) == ["follower", "owner"]
            assert {answer["owner"] for answer in answers} == {owner} and owner in ("replica-0", "replica-1")
            assert answers[0]["epoch"] == answers[1]["epoch"] > 0
            async with session.get(replicas[0].url("/status")) as answer:
                page = await answer.text()
            assert "<th>Cluster</th>" in page and "Replica replica-0 of a cluster" in page
            follower = next(r for r, a in zip(replicas, answers, strict=True) if a["role"] == "follower")
            async with session.get(follower.url("/metrics")) as answer:
                metrics = await answer.text()
        assert 'mjpeg_proxy_cluster_role{camera="cam",role="follower"} 1.0' in metrics
        assert 'mjpeg_proxy_cluster_viewers{camera="cam"}' in metrics
        from_bus = [
            line for line in metrics.splitlines() if line.startswith("mjpeg_proxy_cluster_frames_from_bus_total")
        ]
        assert from_bus and float(from_bus[0].split()[-1]) > 0


async def test_a_cut_subscription_resubscribes_and_catches_up(start_replicas, redis_server):
    replicas = await start_replicas(2)
    async with watching(streams(replicas), PETS) as viewers:
        follower = next(replica for replica in replicas if feed(replica).role is Role.FOLLOWER)
        node = follower.server.app[CLUSTER]
        killer = Redis.from_url(redis_server.url)
        try:
            assert await killer.client_kill_filter(_type="pubsub") >= 1  # as Redis does over its output limit
        finally:
            await killer.aclose()
        await eventually(lambda: node.subscription.cuts == 1)
        viewer = viewers[replicas.index(follower)]
        before = feed(follower).frames_from_bus
        assert len(await frames_of(viewer, 3)) == 3
        assert feed(follower).frames_from_bus > before


async def test_frames_from_an_older_epoch_are_dropped(start_replicas, redis_server):
    (replica,) = await start_replicas(1)
    # A lease that outlasts the test, held without renewals: a slow machine must not see
    # the replica take the camera back before the late frame comes.
    other = ClusterNode(redis_server.url, "someone-else", timing=dataclasses.replace(QUICK, lease_s=60))
    try:
        (viewer,) = await open_viewers([replica])
        await frames_of(viewer, 1)
        assert feed(replica).role is Role.OWNER
        # Another replica takes the lease (as after a failover), publishes, then an old owner's frame comes late.
        lease = other.lease("cam")
        await other.redis.delete(f"{KEY_PREFIX}lease:cam")
        mine = await lease.acquire()
        assert lease.mine is not None and mine.epoch > feed(replica).epoch
        await eventually(lambda: feed(replica).role is Role.FOLLOWER, 5)
        # Pub/sub keeps nothing for a subscriber still joining: the new owner sends frames
        # until the follower has one (each newer, so none of them counts as stale).
        seq = 0
        async with asyncio.timeout(5):
            while replica.camera("cam").last_frame.jpeg != PETS[5]:  # type: ignore[union-attr]
                seq += 1
                await other.bus.publish("cam", Message(mine.epoch, seq, 0.0, False, "live", PETS[5]))
                await asyncio.sleep(0.05)
        dropped = feed(replica).stale_dropped
        await other.bus.publish("cam", Message(mine.epoch - 1, 99, 0.0, False, "live", PETS[6]))
        await eventually(lambda: feed(replica).stale_dropped == dropped + 1)
        assert replica.camera("cam").last_frame.jpeg == PETS[5]  # type: ignore[union-attr]
        await lease.release()
        await close_viewers([viewer])
    finally:
        await other.close()


async def test_a_followers_linger_keeps_the_owner_fetching(start_replicas):
    owner, follower = await start_replicas(2, linger_s=30)
    (first,) = await open_viewers([owner])
    await frames_of(first, 1)
    (second,) = await open_viewers([follower])
    await frames_of(second, 1)
    await close_viewers([second])  # the follower lingers: the owner goes on, nobody else starts fetching
    await close_viewers([first])
    await camera_frames_on(owner, 5)
    assert (feed(owner).role, feed(follower).role) == (Role.OWNER, Role.FOLLOWER)
    assert follower.camera("cam").upstream_requests == 0


async def camera_frames_on(replica: Proxy, count: int) -> None:
    """Wait until the replica's camera has received ``count`` more frames."""
    camera = replica.camera("cam")
    before = camera.stats.frames_received
    await eventually(lambda: camera.stats.frames_received >= before + count, 10)


async def test_a_message_of_a_foreign_epoch_cannot_stop_a_followers_frames(start_replicas, redis_server):
    replicas = await start_replicas(2)
    viewers = await open_viewers(replicas)
    other = ClusterNode(redis_server.url, "intruder", timing=QUICK)
    try:
        for viewer in viewers:
            await frames_of(viewer, 1)
        owner, follower = sorted(replicas, key=lambda replica: feed(replica).role is Role.FOLLOWER)
        await other.bus.publish("cam", Message(2**64 - 1, 2**64 - 1, 0.0, False, "live", PETS[9]))
        await eventually(lambda: feed(follower).stale_dropped >= 1)
        await camera_frames_on(follower, 5)
        assert feed(follower).role is Role.FOLLOWER and feed(follower).epoch == feed(owner).epoch
    finally:
        await other.close()
        await close_viewers(viewers)


async def test_an_owner_nobody_else_listens_to_publishes_nothing_and_keeps_the_latest_now_and_then(
    start_replicas, redis_server
):
    owner, follower = await start_replicas(2)
    (first,) = await open_viewers([owner])
    probe = Redis.from_url(redis_server.url)
    try:
        await frames_of(first, 1)
        before = await probe.info("commandstats")
        await camera_frames_on(owner, 25)  # 2.5 s at 10 fps
        after = await probe.info("commandstats")
        published = calls(after, "publish") - calls(before, "publish")
        kept = calls(after, "set") - calls(before, "set")
        assert published == 0 and 1 <= kept <= 4  # once a second
        (second,) = await open_viewers([follower])  # someone listens: every frame goes out again
        await frames_of(second, 3)
        await close_viewers([second])
    finally:
        await probe.aclose()
        await close_viewers([first])


def calls(stats: dict, command: str) -> int:
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def test_the_start_up_line_says_whether_redis_answers_and_names_a_refused_password(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    server = RedisServer(need_binary("redis-server"), tmp_path / "redis", password="right-one")
    (tmp_path / "redis").mkdir()
    await server.start()
    try:
        for password, said in (("right-one", "answers"), ("wrong-one", "refused the password")):
            node = ClusterNode(server.url, "replica-x", password=password, timing=QUICK)
            try:
                await node.announce()
            finally:
                await node.close()
            line = [r.getMessage() for r in caplog.records if "cluster mode: replica replica-x" in r.getMessage()][-1]
            assert said in line and password not in line
    finally:
        await server.stop()
