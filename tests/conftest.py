"""Shared fixtures: a running proxy whose cameras the test controls, mocked upstreams,
cameras that are down, a browser, a Redis server. The tools these use are in ``tests/helpers.py``
and ``tests/redis_server.py``."""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from pytest_aiohttp import AiohttpServer

from mjpeg_proxy.camera.source import Source
from mjpeg_proxy.camera.timing import CameraTiming
from mjpeg_proxy.config import CameraConfig, Config, ServerConfig
from mjpeg_proxy.sources import build_source
from mjpeg_proxy.sources.snapshot import SnapshotConfig
from mjpeg_proxy.sources.upstreams import Upstreams
from mjpeg_proxy.web.app import create_app
from tests.fake_camera import FakeSnapshotCamera, RefusingCamera
from tests.helpers import (
    CHROMIUM_ARGS,
    FAST_RETRIES,
    MockedUpstream,
    Proxy,
    PushConfig,
    PushSource,
    StartProxy,
    need_binary,
    real_frames,
)
from tests.redis_server import RedisServer


@pytest.fixture
def start_proxy(aiohttp_server: AiohttpServer, request: pytest.FixtureRequest) -> StartProxy:
    """Start a proxy. Cameras whose ``source`` is ``"push"`` get a PushSource the test feeds
    with ``proxy.push(id, jpeg)``; any other source is built as in production. The cameras'
    timing is ``FAST_RETRIES`` in a test that asks for ``fast_retries``, else the defaults."""
    default_timing = FAST_RETRIES if "fast_retries" in request.fixturenames else CameraTiming()

    async def start(
        *cameras: CameraConfig,
        on_demand: bool = False,
        timing: CameraTiming | None = None,
        app_options: Mapping[str, Any] | None = None,
        **server_options: Any,
    ) -> Proxy:
        """``server_options`` are ServerConfig fields, ``app_options`` keyword arguments of
        ``create_app``, ``timing`` the cameras' timing instead of the test's default. Cameras
        are ``always_on`` unless ``on_demand``, so a test's frames flow before anyone watches."""
        pushed: dict[str, PushSource] = {}

        def source_factory(camera: CameraConfig, upstreams: Upstreams) -> Source:
            if isinstance(camera.source, PushConfig):
                pushed[camera.id] = PushSource()
                return pushed[camera.id]
            return build_source(camera, upstreams)

        # Tests open hundreds of viewers, all from 127.0.0.1.
        server_options.setdefault("max_connections_per_client", 100_000)
        if not on_demand:
            cameras = tuple(dataclasses.replace(camera, always_on=True) for camera in cameras)
        config = Config(server=ServerConfig(**server_options), cameras=cameras)
        server = await aiohttp_server(
            create_app(config, source_factory, timing=timing or default_timing, **(app_options or {}))
        )
        return Proxy(server, pushed)

    return start


@pytest.fixture
def fast_retries() -> CameraTiming:
    """``FAST_RETRIES``: the timing ``start_proxy`` gives the cameras in a test that asks for this."""
    return FAST_RETRIES


@pytest.fixture
def upstream() -> Iterator[MockedUpstream]:
    """Mocked HTTP upstreams for aiohttp client code (nothing reaches the network)."""
    mocked = MockedUpstream()
    with mocked:
        yield mocked


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    executable = need_binary("chromium")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("playwright is not installed; it is in the 'test' extra")
        pytest.skip("playwright is not installed")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def down_cameras(aiohttp_server: AiohttpServer) -> AsyncIterator[dict[str, CameraConfig]]:
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


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A started ``redis-server`` of its own (free loopback port, persistence off, no password),
    stopped at the end. In CI a missing ``redis-server`` fails the test, elsewhere it skips."""
    server = RedisServer(need_binary("redis-server"), tmp_path / "redis")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
