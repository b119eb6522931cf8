"""Cameras that are down, for tests of what viewers see then: a refused port, a camera that
refuses the proxy's password, and one that forbids it. Import ``down_cameras_fixture`` to
use the ``down_cameras`` fixture."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from mjpeg_proxy.config import CameraConfig
from mjpeg_proxy.sources.snapshot import SnapshotConfig
from tests.fake_camera import FakeSnapshotCamera
from tests.helpers import real_frames


class RefusingCamera:
    """A camera web server that answers every snapshot request with ``status``."""

    def __init__(self, status: int) -> None:
        self.status = status

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/snapshot.jpg", self._refuse)
        return app

    async def _refuse(self, request: web.Request) -> web.Response:
        return web.Response(status=self.status, text=f"<html>{self.status}</html>", content_type="text/html")


@pytest.fixture(name="down_cameras")
async def down_cameras_fixture(aiohttp_server) -> AsyncIterator[dict[str, CameraConfig]]:
    """Snapshot cameras that are down, by the state each ends in: a refused port (bound but
    not listening), a camera that refuses the proxy's password (401, Digest), and one that
    forbids it (403)."""
    password_camera = await aiohttp_server(FakeSnapshotCamera(real_frames(), username="admin", password="right").app())
    forbidding_camera = await aiohttp_server(RefusingCamera(403).app())
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as refusing_port:
        refusing_port.bind(("127.0.0.1", 0))
        yield {
            "offline": CameraConfig(
                id="refused",
                source=SnapshotConfig(url=f"http://127.0.0.1:{refusing_port.getsockname()[1]}/snapshot.jpg"),
            ),
            "auth_failed": CameraConfig(
                id="wrong-password",
                source=SnapshotConfig(
                    url=str(password_camera.make_url("/snapshot.jpg")),
                    username="admin",
                    password="wrong",
                    auth="digest",
                ),
            ),
            "forbidden": CameraConfig(
                id="forbidden", source=SnapshotConfig(url=str(forbidding_camera.make_url("/snapshot.jpg")))
            ),
        }
