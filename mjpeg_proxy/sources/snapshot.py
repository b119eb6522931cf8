"""The snapshot camera: GET a JPEG URL at a steady rate."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from mjpeg_proxy.camera.errors import BadFrame
from mjpeg_proxy.camera.frame import Frame
from mjpeg_proxy.camera.source import Source
from mjpeg_proxy.config.camera import CameraConfig
from mjpeg_proxy.sources.http_answers import read_capped
from mjpeg_proxy.sources.http_client import HttpCameraSource
from mjpeg_proxy.sources.http_config import HTTP_CAMERA_KEYS, HttpCameraConfig
from mjpeg_proxy.sources.pacer import Pacer
from mjpeg_proxy.sources.registry import SourceKind, register
from mjpeg_proxy.sources.upstream_hosts import UpstreamHosts
from mjpeg_proxy.sources.upstreams import Upstreams
from mjpeg_proxy.wire.errors import BadJpeg
from mjpeg_proxy.wire.jpeg import cut_jpeg

REQUEST_TIMEOUT_S = 10.0
"""The longest, in seconds, one snapshot request may take, from its start to the body's end."""


@dataclass(frozen=True)
class SnapshotConfig(HttpCameraConfig):
    """A snapshot camera's section: ``url`` answers one JPEG per GET."""

    kind = "snapshot"


def _build(camera: CameraConfig, section: SnapshotConfig, upstreams: Upstreams) -> Source:
    return SnapshotSource(section, Pacer(camera.fps, upstreams.clock), upstreams.http, upstreams.hosts)


register(SourceKind(SnapshotConfig, HTTP_CAMERA_KEYS, SnapshotConfig.parse, _build))


class SnapshotSource(HttpCameraSource):
    """Fetches ``config.url`` on each tick of ``pacer``: steadily, ``fps`` times a second.

    ``http`` is the application's shared client session; each request is a short request
    of its host (``HttpCameraSource.get``, ``hosts``). With ``username`` set,
    ``auth`` chooses HTTP Basic (RFC 7617) or Digest (RFC 7616, via aiohttp's
    ``DigestAuthMiddleware``). A body over ``max_frame_bytes`` bytes is refused
    without being read whole.

    Bytes after the JPEG's end marker are cut off (``mjpeg_proxy.wire.jpeg.cut_jpeg``).

    Raises (from ``frames()``): AuthError on 401, ForbiddenError on 403, NotFoundError
    on 404, UpstreamUnavailable on any other non-2xx answer, network error or a
    request that takes over ``REQUEST_TIMEOUT_S``, BadFrame on a body that is not one
    complete JPEG or is too large.
    """

    def __init__(
        self, config: HttpCameraConfig, pacer: Pacer, http: aiohttp.ClientSession, hosts: UpstreamHosts
    ) -> None:
        super().__init__(config, http, hosts)
        self._pacer = pacer

    async def frames(self) -> AsyncIterator[Frame]:
        """Yield one fetched frame per tick of the pacer; raise as described on the class."""
        await self.turn()  # before the grid starts, so the grids of one device's cameras differ
        self._pacer.restart()
        while True:
            await self._pacer.tick()
            yield await self.fetch()

    async def fetch(self) -> Frame:
        """GET the URL once and return its JPEG as a frame; raises as described on the class."""
        async with self.get(aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S), REQUEST_TIMEOUT_S) as response:
            body = await read_capped(response, self._max_frame_bytes, self.where)
        try:
            cut = cut_jpeg(body)
        except BadJpeg as e:
            raise BadFrame(f"{self.where}: {e}") from None
        return Frame(cut.jpeg, trimmed=cut.trimmed)
