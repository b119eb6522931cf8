"""``?width=N`` on streams and snapshots: a smaller picture, at a width of the ladder.

The ladder is ``[server] widths``. A request gets the largest rung not above N, or the
smallest rung when N is below them all; a frame no wider than the rung passes as it is
(``pictures.resize``), so a picture is never made wider than the camera's. Each frame is
resized once per rung for every viewer and snapshot of it (``camera.scaled``).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence

from aiohttp import web

from mjpeg_proxy.camera.camera import Camera
from mjpeg_proxy.camera.frame import Frame
from mjpeg_proxy.pictures.resize import ResizeError
from mjpeg_proxy.web.appkeys import CONFIG

MAX_REQUESTED_WIDTH = 100_000
"""The widest ``?width=`` accepted, in pixels; more is a typo or a probe (400)."""
RESIZE_RETRY_AFTER_S = 1
"""``Retry-After`` of a snapshot whose frame could not be resized, in seconds: the next
frame most likely can be."""
_WIDTH_RE = re.compile(r"[0-9]{1,6}")  # ASCII digits only: str.isdigit() also takes "²" and "٣"


def rung_for(widths: Sequence[int], requested: int) -> int:
    """The rung of ``widths`` (ascending, at least one) for ``requested`` pixels.

    The largest not above ``requested``; the smallest when all are above it.
    """
    return widths[max(0, bisect.bisect_right(widths, requested) - 1)]


def requested_rung(request: web.Request) -> int | None:
    """The rung ``request``'s ``?width=`` asks for (``rung_for`` the ``widths`` in force); None without one.

    Raises:
        web.HTTPBadRequest: ``width`` is given twice, or is not a whole number of pixels
            from 1 to ``MAX_REQUESTED_WIDTH``.
    """
    given = request.query.getall("width", [])
    if not given:
        return None
    if len(given) > 1:
        raise web.HTTPBadRequest(text=f"?width= must be given once, got {len(given)} values")
    raw = given[0]
    if not _WIDTH_RE.fullmatch(raw) or not 1 <= int(raw) <= MAX_REQUESTED_WIDTH:
        raise web.HTTPBadRequest(
            text=f"?width= must be a whole number of pixels from 1 to {MAX_REQUESTED_WIDTH}, got {raw[:20]!r}"
        )
    return rung_for(request.app[CONFIG].server.widths, int(raw))


async def snapshot_jpeg(camera: Camera, frame: Frame, rung: int | None) -> bytes:
    """``frame`` (the latest of ``camera``'s hub) as a snapshot at ``rung`` pixels; the frame's own JPEG for None.

    Raises:
        web.HTTPServiceUnavailable: the frame cannot be resized (the log says why).
    """
    if rung is None:
        return frame.jpeg
    try:
        return await camera.scaled.resized(frame, rung)
    except ResizeError:
        raise web.HTTPServiceUnavailable(
            text=f"camera {camera.id!r}: the latest frame cannot be made {rung} pixels wide; try again",
            headers={"Retry-After": str(RESIZE_RETRY_AFTER_S), "Cache-Control": "no-store"},
        ) from None
