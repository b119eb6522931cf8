"""The Eagle Eye Networks camera: its live preview JPEGs, fetched through the account's session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp

from mjpeg_proxy.camera.errors import BadFrame, NotFoundError
from mjpeg_proxy.camera.frame import Frame
from mjpeg_proxy.camera.source import Source
from mjpeg_proxy.camera.timing import Clock
from mjpeg_proxy.config.camera import CameraConfig
from mjpeg_proxy.sources.een_config import EEN_CAMERA_KEYS, EenCameraConfig, parse_een
from mjpeg_proxy.sources.een_session import EenSession
from mjpeg_proxy.sources.een_v3 import build_v3
from mjpeg_proxy.sources.een_v3_config import EenV3Config
from mjpeg_proxy.sources.http_answers import status_error
from mjpeg_proxy.sources.pacer import RequestGap
from mjpeg_proxy.sources.registry import SourceKind, register, register_table
from mjpeg_proxy.sources.upstreams import Upstreams
from mjpeg_proxy.wire.errors import BadJpeg
from mjpeg_proxy.wire.jpeg import cut_jpeg

PREVIEW_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=30)
"""``next`` blocks until the camera's next preview exists (1 s apart by default, up to
16 s): a read that takes ``sock_read`` seconds means "no preview yet", not a failure."""


def _build(camera: CameraConfig, section: EenCameraConfig, upstreams: Upstreams) -> Source:
    if isinstance(section.account, EenV3Config):
        return build_v3(section, section.account, upstreams)
    account = section.account
    session = upstreams.shared(section, EenSession, lambda: EenSession(account, upstreams.clock, upstreams.records))
    return EenPreviewSource(session, section.esn, section.max_frame_bytes, upstreams.clock)


register_table("een", parse_een)
register(SourceKind(EenCameraConfig, EEN_CAMERA_KEYS, EenCameraConfig.parse, _build))


def parse_een_timestamp(header: str | None) -> float | None:
    """Seconds since the epoch from an ``x-ee-timestamp`` header, or None.

    The value is ``<type>-<EEN timestamp>``, e.g. ``preview-20180917213405.700``; an EEN
    timestamp is ``YYYYMMDDhhmmss.xxx`` in UTC (EEN API v1 docs, Asset: "EEN Timestamp").
    """
    if not header:
        return None
    _, _, stamp = header.partition("-")
    try:
        return datetime.strptime(stamp, "%Y%m%d%H%M%S.%f").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


class EenPreviewSource(Source):
    """Yields the live preview of the camera with ESN ``esn`` (8 hexadecimal characters).

    Follows EEN's recommended live loop (EEN API v1 docs, Asset, "Get image"):
    ``GET /asset/prev/image.jpeg?id=<ESN>&timestamp=now&asset_class=pre`` once for an
    immediate picture, then ``GET /asset/next/image.jpeg`` with the same parameters
    again and again; each blocks until the next preview exists. One request at a time.
    A preview whose ``x-ee-timestamp`` equals the last one yielded is skipped (``prev``
    after a reconnect returns the picture we already have). Requests start at least
    ``session.timing.min_request_gap_s`` seconds apart (``EenTiming``) on ``clock``.

    Raises (from ``frames()``): the errors of ``EenSession.get``; UpstreamUnavailable
    for another non-2xx answer (with ``retry_after_s`` for a 429 or 503 that says when
    to come back); BadFrame for a body that does not hold one complete JPEG (bytes after
    its end marker are cut off, ``mjpeg_proxy.wire.jpeg.cut_jpeg``).
    """

    def __init__(self, session: EenSession, esn: str, max_frame_bytes: int, clock: Clock | None = None) -> None:
        self.session = session
        self.esn = esn
        self._max_frame_bytes = max_frame_bytes
        self._last_stamp: str | None = None
        self._gap = RequestGap(session.timing.min_request_gap_s, clock)

    async def frames(self) -> AsyncIterator[Frame]:
        """Yield each new preview: ``prev`` once, then ``next`` again and again."""
        which = "prev"
        while True:
            frame = await self._fetch(which)
            which = "next"
            if frame is not None:
                yield frame

    async def _fetch(self, which: str) -> Frame | None:
        path = f"/asset/{which}/image.jpeg"
        params = {"id": self.esn, "timestamp": "now", "asset_class": "pre"}
        await self._gap.start()
        self.upstream_requests += 1
        try:
            status, body, headers = await self.session.get(path, params, PREVIEW_TIMEOUT, self._max_frame_bytes)
        except TimeoutError:
            return None
        except NotFoundError:
            if which == "prev":
                return None  # "Image not found": no preview stored yet; next waits for the first
            raise
        if status == 408:  # "Time out limit occurred before asset arrived"
            return None
        if not 200 <= status < 300:
            message = f"EEN answered HTTP {status} for {path} of camera {self.esn}"
            raise status_error(status, message, headers)
        try:
            cut = cut_jpeg(body)
        except BadJpeg as e:
            raise BadFrame(f"EEN {path} of camera {self.esn}: {e}") from None
        stamp = headers.get("x-ee-timestamp")
        if stamp is not None and stamp == self._last_stamp:
            return None
        self._last_stamp = stamp
        return Frame(cut.jpeg, upstream_time=parse_een_timestamp(stamp), trimmed=cut.trimmed)
