"""EEN accounts across replicas: one login for the cluster (v1 and v3), one refresh per rotation (issue 14, item 4).

Two replicas in one event loop with their token files in two folders, as on two machines:
only one of them was logged in with een-login; Redis carries the tokens to the other.
"""

from __future__ import annotations

import pytest

from mjpeg_proxy.cluster.feed import ClusterFeed, Role
from mjpeg_proxy.cluster.node import ClusterNode, ClusterTiming
from mjpeg_proxy.config import CameraConfig
from mjpeg_proxy.sources.een_config import EenCameraConfig, EenConfig
from mjpeg_proxy.sources.een_timing import EenTiming
from mjpeg_proxy.sources.een_tokens import read_tokens
from mjpeg_proxy.sources.een_v3_config import EenV3Config
from tests.fake_een import FakeEen
from tests.fake_een_v3 import FakeEenV3
from tests.helpers import Proxy, camera_frames, eventually, real_frames, watching

PETS = real_frames()
RUNWAY = real_frames("axis-runway-webcam-640x480")
FRONT, GATE = "1006073b", "100d4c41"
REDIRECT = "http://127.0.0.1:3333/callback"
QUICK = ClusterTiming(lease_s=1.0, check_s=0.1, retry_s=0.2)
QUICK_EEN = EenTiming(
    refused_login_backoff_s=(0.05, 0.2), failed_login_backoff_s=(0.05, 0.2), min_request_gap_s=0.0, login_poll_s=0.05
)

pytestmark = pytest.mark.usefixtures("fast_retries")


def feed(proxy: Proxy) -> ClusterFeed:
    cluster_feed = proxy.camera(FRONT).feed
    assert isinstance(cluster_feed, ClusterFeed)
    return cluster_feed


async def test_one_login_serves_the_cluster_and_a_rotation_is_one_refresh(
    aiohttp_server, start_proxy, redis_server, tmp_path
):
    fake = FakeEenV3(redirect_uris=(REDIRECT,))
    fake.add_camera(FRONT, PETS, interval_s=0.1)
    een = (await aiohttp_server(fake.app())).make_url("")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    await fake.log_in(een, tmp_path / "a" / "een.json")  # on machine a only
    replicas = []
    for name in ("a", "b"):
        account = EenV3Config(
            fake.client_id, fake.client_secret, str(tmp_path / name / "een.json"), str(een), timing=QUICK_EEN
        )
        camera = CameraConfig(id=FRONT, source=EenCameraConfig(esn=FRONT, account=account, preview="image"))
        node = ClusterNode(redis_server.url, f"replica-{name}", timing=QUICK)
        replicas.append(await start_proxy(camera, on_demand=True, app_options={"cluster": node}))
    a, b = replicas
    async with watching([a.url(f"/cameras/{FRONT}/stream.mjpg")], PETS) as (on_a,):
        async with watching([b.url(f"/cameras/{FRONT}/stream.mjpg")], PETS) as (on_b,):
            assert (feed(a).role, feed(b).role) == (Role.OWNER, Role.FOLLOWER)
            fake.expire_access_tokens()  # the owner's next request: 401, one refresh
            await camera_frames(on_a, 3, PETS)
            assert fake.token_requests["refresh_token"] == 1
            await a.server.close()  # b takes over with the tokens a rotated, from Redis
            await eventually(lambda: feed(b).role is Role.OWNER, 10)
            await camera_frames(on_b, 3, PETS)
            del on_a
    assert fake.token_requests["refresh_token"] == 1 and fake.dead_refreshes == 0
    assert b.camera(FRONT).stats.errors.get("login_needed", 0) == 0
    record = read_tokens(tmp_path / "a" / "een.json")
    assert record is not None and record.access_token in fake.access_tokens


async def test_v1_replicas_log_in_once_between_them_and_once_again_after_an_expiry(
    aiohttp_server, start_proxy, redis_server
):
    fake = FakeEen()
    fake.add_camera(FRONT, PETS, interval_s=0.1)
    fake.add_camera(GATE, RUNWAY, interval_s=0.1)
    server = await aiohttp_server(fake.app())
    account = EenConfig(fake.username, fake.password, base_url=str(server.make_url("")).rstrip("/"))
    cameras = [CameraConfig(id=esn, source=EenCameraConfig(esn=esn, account=account)) for esn in (FRONT, GATE)]
    a, b = [
        await start_proxy(
            *cameras, on_demand=True, app_options={"cluster": ClusterNode(redis_server.url, name, timing=QUICK)}
        )
        for name in ("replica-a", "replica-b")
    ]
    # Each replica owns one camera, so each needs the account's session.
    async with watching([a.url(f"/cameras/{FRONT}/stream.mjpg")], PETS) as (front,):
        async with watching([b.url(f"/cameras/{GATE}/stream.mjpg")], RUNWAY) as (gate,):
            assert (a.camera(FRONT).upstream_requests > 0, b.camera(GATE).upstream_requests > 0) == (True, True)
            assert fake.logins == 1
            fake.expire_sessions()
            await camera_frames(front, 3, PETS)
            await camera_frames(gate, 3, RUNWAY)
            assert fake.logins == 2
    await a.server.close()
    await b.server.close()
    assert fake.logouts == 0  # the session is the cluster's: nobody logs it out
