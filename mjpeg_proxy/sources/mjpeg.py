"""The MJPEG camera: one long-lived GET of an upstream ``multipart/x-mixed-replace`` stream."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from mjpeg_proxy.camera.errors import UpstreamUnavailable
from mjpeg_proxy.camera.frame import Frame
from mjpeg_proxy.camera.source import Source
from mjpeg_proxy.config.camera import CameraConfig
from mjpeg_proxy.sources.http_client import HttpCameraSource
from mjpeg_proxy.sources.http_config import HTTP_CAMERA_KEYS, HttpCameraConfig
from mjpeg_proxy.sources.registry import SourceKind, register
from mjpeg_proxy.sources.upstream_hosts import UpstreamHosts
from mjpeg_proxy.sources.upstreams import Upstreams
from mjpeg_proxy.wire.reader import MultipartReader, ReaderStats, boundary_from_content_type

log = logging.getLogger(__name__)

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
            content_type = response.headers.get("Content-Type", "")
            kind = content_type.split(";")[0].strip().lower()
            if kind.startswith(("image/", "text/")):
                raise UpstreamUnavailable(
                    f"{self.where} is not an MJPEG stream (Content-Type {content_type[:60]!r}); "
                    'for a single picture use source = "snapshot"'
                )
            # Any other type is read as multipart: ffmpeg's mpjpeg server, for one, says
            # application/octet-stream; without a declared boundary the first "--" line
            # of the body names it.
            reader = MultipartReader(
                boundary_from_content_type(content_type) if kind.startswith("multipart/") else None,
                max_frame_bytes=self._max_frame_bytes,
                stats=self.stats,
            )
            dropped, resyncs = self.stats.dropped, self.stats.resyncs
            try:
                async for chunk in response.content.iter_any():
                    for cut in reader.feed(chunk):
                        self.started()  # an established stream holds no place in the host's cap
                        yield Frame(cut.jpeg, trimmed=cut.trimmed)
                # Only the upstream ending its stream leaves a part unfinished by its fault;
                # a stall, an idle camera or a reload cutting a picture short is ours.
                reader.close()
            finally:
                if self.stats.dropped > dropped or self.stats.resyncs > resyncs:
                    log.warning(
                        "%s: %d parts dropped (not one complete JPEG, or over max_frame_bytes), "
                        "framing lost %d times on this connection",
                        self.where,
                        self.stats.dropped - dropped,
                        self.stats.resyncs - resyncs,
                    )
        raise UpstreamUnavailable(f"{self.where} ended its stream")
