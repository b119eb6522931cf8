"""The viewer-facing media: ``stream.mjpg`` (MJPEG) and ``snapshot.jpg`` (latest frame)."""

from __future__ import annotations

import logging

from aiohttp import web

from mjpeg_proxy.appkeys import CONFIG, WRITER, camera_from_request
from mjpeg_proxy.hub import HubClosed

log = logging.getLogger(__name__)

SNAPSHOT_WAIT_S = 5.0
"""How long ``snapshot.jpg`` waits for a camera's first frame before answering 503."""

NO_CACHE_HEADERS = {
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
    "Expires": "0",
    "X-Content-Type-Options": "nosniff",
}


async def stream(request: web.Request) -> web.StreamResponse:
    """``GET /cameras/{camera_id}/stream.mjpg``: the camera's frames as ``multipart/x-mixed-replace``.

    The viewer gets the latest frame at once, then every newer one; a slow viewer
    skips to the newest. While the camera sends nothing new, the latest frame is
    re-sent every ``resend_seconds``. Ends when the viewer goes away or the server
    stops. A HEAD request gets the headers alone.
    """
    camera = camera_from_request(request)
    writer = request.app[WRITER]
    resend_s = request.app[CONFIG].server.resend_seconds
    response = web.StreamResponse(
        headers={
            "Content-Type": writer.content_type,
            **NO_CACHE_HEADERS,
            # nginx buffers proxied responses by default, which would hold frames back.
            "X-Accel-Buffering": "no",
        }
    )
    if request.method == "HEAD":
        # Headers only: a HEAD answer has no body (RFC 9110, 9.3.2), and uptime
        # checkers that use HEAD must not download the stream for ever.
        await response.prepare(request)
        return response
    hub = camera.hub
    peer = request.remote
    with hub.viewer():
        log.debug("camera %s: viewer %s connected (%d watching)", camera.id, peer, hub.viewers)
        try:
            await response.prepare(request)
            await response.write(writer.opening)
            sent_seq = 0
            while True:
                part = await hub.next_part(sent_seq, resend_s)
                if part is None:
                    # Idle upstream: re-send so the viewer's connection is not idle either
                    # (proxies and players time out on silent streams).
                    part = hub.latest
                    if part is None:
                        continue
                await response.write(part.data)
                sent_seq = part.frame.seq
        except ConnectionError:
            # The viewer went away while we wrote; the usual end of a stream.
            pass
        except HubClosed:
            pass  # the server is stopping
        finally:
            log.debug("camera %s: viewer %s left (%d watching)", camera.id, peer, hub.viewers - 1)
    return response


async def snapshot(request: web.Request) -> web.Response:
    """``GET /cameras/{camera_id}/snapshot.jpg``: the latest frame as ``image/jpeg``.

    Before the camera's first frame, waits up to 5 s for it, then answers 503 with
    ``Retry-After``.
    """
    camera = camera_from_request(request)
    try:
        part = camera.hub.latest or await camera.hub.next_part(0, SNAPSHOT_WAIT_S)
    except HubClosed:
        part = None
    if part is None:
        raise web.HTTPServiceUnavailable(
            text=f"camera {camera.id!r} has no frame yet ({camera.state})",
            headers={"Retry-After": "2", "Cache-Control": "no-store"},
        )
    return web.Response(body=part.frame.jpeg, content_type="image/jpeg", headers=NO_CACHE_HEADERS)
