"""Shared fixtures: a running proxy whose cameras the test controls."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestServer

from mjpeg_proxy.app import create_app
from mjpeg_proxy.appkeys import CAMERAS
from mjpeg_proxy.camera import Camera
from mjpeg_proxy.config import CameraConfig, Config, ServerConfig
from mjpeg_proxy.sources import build_source
from tests.helpers import PushSource


class Proxy:
    """A proxy serving on 127.0.0.1 in this test's event loop."""

    def __init__(self, server: TestServer, pushed: dict[str, PushSource]) -> None:
        self.server = server
        self.pushed = pushed

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    def camera(self, camera_id: str) -> Camera:
        return self.server.app[CAMERAS][camera_id]

    def push(self, camera_id: str, jpeg: bytes) -> None:
        self.pushed[camera_id].push(jpeg)

    async def publish(self, camera_id: str, jpeg: bytes) -> None:
        """Push a frame and wait until the camera's hub has published it."""
        hub = self.camera(camera_id).hub
        after = hub.latest.frame.seq if hub.latest else 0
        self.push(camera_id, jpeg)
        assert await hub.next_part(after, 5) is not None


StartProxy = Callable[..., Awaitable[Proxy]]


@pytest.fixture
def start_proxy(aiohttp_server) -> StartProxy:
    """Start a proxy. Cameras whose ``source`` is ``"push"`` get a PushSource the test feeds
    with ``proxy.push(id, jpeg)``; any other source is built as in production."""

    async def start(*cameras: CameraConfig, resend_seconds: float = 2.0) -> Proxy:
        pushed: dict[str, PushSource] = {}

        def source_factory(camera: CameraConfig, http):
            if camera.source == "push":
                pushed[camera.id] = PushSource()
                return pushed[camera.id]
            return build_source(camera, http)

        config = Config(server=ServerConfig(resend_seconds=resend_seconds), cameras=cameras)
        server = await aiohttp_server(create_app(config, source_factory))
        return Proxy(server, pushed)

    return start


def push_camera(camera_id: str = "cam", **changes) -> CameraConfig:
    """A camera fed by the test (see ``start_proxy``)."""
    return CameraConfig(id=camera_id, source="push", **changes)
