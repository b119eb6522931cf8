"""Shared fixtures: a running proxy whose cameras the test controls."""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from aioresponses import aioresponses

from mjpeg_proxy.camera.camera import Camera
from mjpeg_proxy.camera.timing import CameraTiming
from mjpeg_proxy.config import CameraConfig, Config, ServerConfig, SourceConfig
from mjpeg_proxy.sources import build_source
from mjpeg_proxy.web.app import create_app
from mjpeg_proxy.web.appkeys import CAMERAS
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

FAST_RETRIES = CameraTiming(backoff_s=(0.05, 0.2), auth_backoff_s=(0.05, 0.2), min_stall_timeout_s=1.0)
"""Retry delays shrunk and the stall floor lowered, so recoveries take a fraction of a second."""


@pytest.fixture
def start_proxy(aiohttp_server, request) -> StartProxy:
    """Start a proxy. Cameras whose ``source`` is ``"push"`` get a PushSource the test feeds
    with ``proxy.push(id, jpeg)``; any other source is built as in production. The cameras'
    timing is ``FAST_RETRIES`` in a test that asks for ``fast_retries``, else the defaults."""
    default_timing = FAST_RETRIES if "fast_retries" in request.fixturenames else CameraTiming()

    async def start(
        *cameras: CameraConfig,
        on_demand: bool = False,
        timing: CameraTiming | None = None,
        app_options: Mapping[str, Any] | None = None,
        **server_options,
    ) -> Proxy:
        """``server_options`` are ServerConfig fields, ``app_options`` keyword arguments of
        ``create_app``, ``timing`` the cameras' timing instead of the test's default. Cameras
        are ``always_on`` unless ``on_demand``, so a test's frames flow before anyone watches."""
        pushed: dict[str, PushSource] = {}

        def source_factory(camera: CameraConfig, upstreams):
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


@dataclasses.dataclass(frozen=True)
class PushConfig(SourceConfig):
    """The section of a camera fed by the test (see ``start_proxy``)."""

    kind = "push"


def push_camera(camera_id: str = "cam", **changes) -> CameraConfig:
    """A camera fed by the test (see ``start_proxy``)."""
    return CameraConfig(id=camera_id, source=PushConfig(), **changes)


class _MockedResponse(aiohttp.ClientResponse):
    """aiohttp 3.14 made ``stream_writer`` a required argument that aioresponses 0.7.9
    does not pass (pnuckowski/aioresponses#289); a finished request needs only its size."""

    def __init__(self, method, url, **kwargs):
        kwargs.setdefault("stream_writer", types.SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


class MockedUpstream(aioresponses):
    """``aioresponses`` that works with aiohttp 3.14: every mocked answer uses the class above."""

    def add(self, url, method="GET", *args, **kwargs):
        kwargs.setdefault("response_class", _MockedResponse)
        return super().add(url, method, *args, **kwargs)


@pytest.fixture
def upstream():
    """Mocked HTTP upstreams for aiohttp client code (nothing reaches the network)."""
    with MockedUpstream() as m:
        yield m
