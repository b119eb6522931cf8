"""Shared fixtures: a running proxy whose cameras the test controls, mocked upstreams, a
browser. The tools these use are in ``tests/helpers.py``."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from mjpeg_proxy.camera.timing import CameraTiming
from mjpeg_proxy.config import CameraConfig, Config, ServerConfig
from mjpeg_proxy.sources import build_source
from mjpeg_proxy.web.app import create_app
from tests.helpers import (
    CHROMIUM_ARGS,
    FAST_RETRIES,
    MockedUpstream,
    Proxy,
    PushConfig,
    PushSource,
    StartProxy,
    need_binary,
)


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


@pytest.fixture
def upstream():
    """Mocked HTTP upstreams for aiohttp client code (nothing reaches the network)."""
    with MockedUpstream() as m:
        yield m


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
