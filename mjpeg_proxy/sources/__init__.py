"""Sources: one module per upstream protocol, each yielding frames for one camera."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from mjpeg_proxy.config import CameraConfig
from mjpeg_proxy.pictures.fonts import TextFonts
from mjpeg_proxy.sources.base import Source
from mjpeg_proxy.sources.demo import DemoSource
from mjpeg_proxy.sources.een import EenPreviewSource
from mjpeg_proxy.sources.een_session import EenSession
from mjpeg_proxy.sources.mjpeg import MjpegSource
from mjpeg_proxy.sources.snapshot import SnapshotSource
from mjpeg_proxy.sources.upstream_hosts import UpstreamHosts

__all__ = ["Source", "Upstreams", "build_source"]


@dataclass(frozen=True)
class Upstreams:
    """Clients shared by cameras: one HTTP session for plain cameras, the registry of
    their upstream hosts, the EEN account's session (None when no camera uses EEN), and
    the fonts the demo camera draws its text with (None for ``fonts.shared_fonts()``).
    """

    http: aiohttp.ClientSession
    hosts: UpstreamHosts
    een: EenSession | None = None
    fonts: TextFonts | None = None


def build_source(camera: CameraConfig, upstreams: Upstreams) -> Source:
    """Return the Source for ``camera``'s ``source`` kind, using the shared ``upstreams``."""
    if camera.source == "demo":
        return DemoSource(camera.display_name, camera.fps, camera.width, camera.height, upstreams.fonts)
    if camera.source in ("snapshot", "mjpeg"):
        assert camera.url is not None  # checked by the config loader
        http_camera = {
            "username": camera.username,
            "password": camera.password,
            "auth": camera.auth,
            "max_frame_bytes": camera.max_frame_bytes,
            "hosts": upstreams.hosts,
        }
        if camera.source == "snapshot":
            return SnapshotSource(camera.url, camera.fps, upstreams.http, **http_camera)
        return MjpegSource(camera.url, upstreams.http, **http_camera)
    if camera.source == "een":
        assert camera.esn is not None and upstreams.een is not None  # checked by the config loader
        return EenPreviewSource(upstreams.een, camera.esn, camera.max_frame_bytes)
    raise ValueError(f"unknown source kind {camera.source!r}")
