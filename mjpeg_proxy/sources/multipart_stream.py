"""Reading an upstream's ``multipart/x-mixed-replace`` answer into JPEGs, for every streaming source."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp

from mjpeg_proxy.camera.errors import UpstreamUnavailable
from mjpeg_proxy.sources.lenient_http import LenientResponse
from mjpeg_proxy.wire.jpeg import CutJpeg
from mjpeg_proxy.wire.reader import MultipartReader, ReaderStats, boundary_from_content_type

log = logging.getLogger(__name__)


async def stream_jpegs(
    response: aiohttp.ClientResponse | LenientResponse,
    where: str,
    max_frame_bytes: int,
    stats: ReaderStats,
    single_hint: str,
) -> AsyncIterator[CutJpeg]:
    """Yield each complete JPEG of the multipart stream ``response`` as its last byte arrives.

    The boundary comes from the ``Content-Type`` (RFC 2046 section 5.1.1); any type other
    than ``image/*`` or ``text/*`` is read as multipart (ffmpeg's mpjpeg server says
    ``application/octet-stream``), and without a declared boundary the first ``--`` line of
    the body names it. ``stats`` counts frames, dropped parts (not one JPEG, or over
    ``max_frame_bytes`` bytes) and resyncs; a connection that dropped parts or lost the
    framing says how often in the log when it ends. ``where`` names the upstream in
    messages (no credentials); ``single_hint`` is what to use instead when the answer is a
    single picture.

    Raises:
        UpstreamUnavailable: the answer is a single picture or text, or the stream ended
            (its close delimiter or the connection).
    """
    content_type = response.headers.get("Content-Type", "")
    kind = content_type.split(";")[0].strip().lower()
    if kind.startswith(("image/", "text/")):
        raise UpstreamUnavailable(f"{where} is not an MJPEG stream (Content-Type {content_type[:60]!r}); {single_hint}")
    reader = MultipartReader(
        boundary_from_content_type(content_type) if kind.startswith("multipart/") else None,
        max_frame_bytes=max_frame_bytes,
        stats=stats,
    )
    dropped, resyncs = stats.dropped, stats.resyncs
    try:
        async for chunk in response.content.iter_any():
            for cut in reader.feed(chunk):
                yield cut
        # Only the upstream ending its stream leaves a part unfinished by its fault;
        # a stall, an idle camera or a reload cutting a picture short is ours.
        reader.close()
    finally:
        if stats.dropped > dropped or stats.resyncs > resyncs:
            log.warning(
                "%s: %d parts dropped (not one complete JPEG, or over max_frame_bytes), "
                "framing lost %d times on this connection",
                where,
                stats.dropped - dropped,
                stats.resyncs - resyncs,
            )
    raise UpstreamUnavailable(f"{where} ended its stream")
