"""Connection pools: one camera never waits for another camera's connections."""

from __future__ import annotations

import asyncio

from mjpeg_proxy.config import CameraConfig
from mjpeg_proxy.sources.mjpeg import MjpegConfig
from mjpeg_proxy.sources.snapshot import SnapshotConfig
from tests.fake_camera import FakeSnapshotCamera
from tests.fake_mjpeg import HANG, FakeMjpegCamera, part
from tests.helpers import MjpegViewer, eventually, real_frames

PETS = real_frames()
SILENT_CAMERAS = 101
"""One more than aiohttp's default pool of 100 connections per client session."""


async def test_a_snapshot_camera_streams_beside_more_than_100_silent_mjpeg_upstreams(aiohttp_server, start_proxy):
    # Each MJPEG upstream sends one frame, then nothing, keeping its connection open.
    silent = FakeMjpegCamera(lambda n: [part(PETS[0]), HANG])
    silent_url = str((await aiohttp_server(silent.app())).make_url("/video.mjpg"))
    snapshot_camera = FakeSnapshotCamera(PETS[1:])
    snapshot_url = str((await aiohttp_server(snapshot_camera.app())).make_url("/snapshot.jpg"))
    mjpeg = [
        CameraConfig(id=f"silent-{n}", source=MjpegConfig(url=silent_url), stall_timeout=3600, always_on=True)
        for n in range(SILENT_CAMERAS)
    ]
    # On demand: its first request comes once the silent streams hold their connections.
    snapshot = CameraConfig(id="snapshot", source=SnapshotConfig(url=snapshot_url), fps=2)
    proxy = await start_proxy(*mjpeg, snapshot, on_demand=True)
    await eventually(lambda: silent.open_connections >= 100, timeout_s=30)

    async with MjpegViewer(proxy.url("/cameras/snapshot/stream.mjpg")) as viewer:
        async with asyncio.timeout(10):
            while (await viewer.next_new_part()).jpeg not in PETS[1:]:
                pass  # offline pictures, if any, until the first frame

    await eventually(lambda: silent.open_connections == SILENT_CAMERAS)
    assert all(proxy.camera(f"silent-{n}").state == "live" for n in range(SILENT_CAMERAS))
