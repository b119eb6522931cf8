"""The MJPEG camera: one long-lived GET of an upstream ``multipart/x-mixed-replace`` stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from mjpeg_proxy.camera.frame import Frame
from mjpeg_proxy.camera.source import Source
from mjpeg_proxy.config.camera import CameraConfig
from mjpeg_proxy.sources.http_client import HttpCameraSource
from mjpeg_proxy.sources.http_config import HTTP_CAMERA_KEYS, HttpCameraConfig
from mjpeg_proxy.sources.multipart_stream import stream_jpegs
from mjpeg_proxy.sources.registry import SourceKind, register
from mjpeg_proxy.sources.upstream_hosts import UpstreamHosts
from mjpeg_proxy.sources.upstreams import Upstreams
from mjpeg_proxy.wire.reader import ReaderStats

CONNECT_TIMEOUT_S = 10.0
"""The longest, in seconds, that opening the stream's connection may take."""


@dataclass(frozen=True)
class MjpegConfig(HttpCameraConfig):
    """An MJPEG camera's section: ``url`` answers a ``multipart/x-mixed-replace`` stream."""

    kind = "mjpeg"


def _build(camera: CameraConfig, section: MjpegConfig, upstreams: Upstreams) -> Source:
    return MjpegSource(section, upstreams.http, upstreams.hosts)


register(SourceKind(MjpegConfig, HTTP_CAMERA_KEYS, MjpegConfig.parse, _build))


class MjpegSource(HttpCameraSource):
    """Relays every complete JPEG of the MJPEG stream at ``config.url``.

    One connection at a time, read as it arrives and parsed by ``MultipartReader``
    (so a frame is yielded as soon as its last byte is in). Authentication as for
    snapshot cameras (Basic or Digest). Until its first frame is in, a connection is a
    short request of its host (``HttpCameraSource.get``); after that it is not counted.
    ``stats`` counts frames, dropped parts and resyncs over all connections; a connection
    that dropped parts or lost the framing says how often in the log when it ends. The stall
    watchdog (no complete frame for a while) is the Camera's.

    Raises (from ``frames()``): AuthError on 401, ForbiddenError on 403, NotFoundError
    on 404, UpstreamUnavailable on another non-2xx answer, an answer that is not a
    multipart stream, a network error, or the end of the stream.
    """

    def __init__(self, config: HttpCameraConfig, http: aiohttp.ClientSession, hosts: UpstreamHosts) -> None:
        super().__init__(config, http, hosts)
        self.stats = ReaderStats()

    async def frames(self) -> AsyncIterator[Frame]:
        """Yield each complete JPEG of the stream; raise as described on the class."""
        await self.turn()
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S)
        async with self.get(timeout, CONNECT_TIMEOUT_S) as response:
            hint = 'for a single picture use source = "snapshot"'
            async for cut in stream_jpegs(response, self.where, self._max_frame_bytes, self.stats, hint):
                self.started()  # an established stream holds no place in the host's cap
                yield Frame(cut.jpeg, trimmed=cut.trimmed)
