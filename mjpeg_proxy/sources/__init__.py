"""Sources: one module per upstream protocol, each yielding frames for one camera."""

from __future__ import annotations

import aiohttp

from mjpeg_proxy.config import CameraConfig
from mjpeg_proxy.sources.base import Source
from mjpeg_proxy.sources.demo import DemoSource
from mjpeg_proxy.sources.snapshot import SnapshotSource

__all__ = ["Source", "build_source"]


def build_source(camera: CameraConfig, http: aiohttp.ClientSession) -> Source:
    """Return the Source for ``camera``'s ``source`` kind, using the shared ``http`` session."""
    if camera.source == "demo":
        return DemoSource(camera.display_name, camera.fps, camera.width, camera.height)
    if camera.source == "snapshot":
        assert camera.url is not None  # checked by the config loader
        return SnapshotSource(
            camera.url,
            camera.fps,
            http,
            username=camera.username,
            password=camera.password,
            auth=camera.auth,
            max_frame_bytes=camera.max_frame_bytes,
        )
    raise ValueError(f"unknown source kind {camera.source!r}")
