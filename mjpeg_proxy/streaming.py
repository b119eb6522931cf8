"""The viewer-facing media: ``stream.mjpg`` (MJPEG) and ``snapshot.jpg`` (latest frame)."""

from __future__ import annotations

import asyncio
import logging

import aiohttp_jinja2
from aiohttp import web

from mjpeg_proxy.appkeys import BROWSER_WRITER, CONFIG, WRITER, camera_from_request
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


class WriteStalled(Exception):
    """The viewer's connection took no bytes for ``write_timeout`` seconds."""


class _WriteWatchdog:
    """Cancels the viewer's task when a write makes no progress for ``timeout_s`` seconds.

    Progress is the transport's write buffer shrinking: a viewer that reads slowly keeps
    its connection, one that stopped reading is closed. Armed only around a write.
    """

    def __init__(self, transport: asyncio.Transport, timeout_s: float) -> None:
        self._transport = transport
        self._timeout_s = timeout_s
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._buffered = 0
        self.fired = False

    def arm(self, queued: int) -> None:
        """Start watching a write of ``queued`` bytes."""
        self._task = asyncio.current_task()
        # What the buffer will hold once the write is queued: progress is going below it.
        self._buffered = self._transport.get_write_buffer_size() + queued
        self._handle = self._loop.call_later(self._timeout_s, self._check)

    def disarm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _check(self) -> None:
        buffered = self._transport.get_write_buffer_size()
        if buffered < self._buffered:
            self._buffered = buffered
            self._handle = self._loop.call_later(self._timeout_s, self._check)
            return
        self.fired = True
        self._handle = None
        if self._task is not None:
            self._task.cancel()


class _Viewer:
    """One stream response and the rules of its writes (timeout, closing delimiter)."""

    def __init__(self, request: web.Request, response: web.StreamResponse, write_timeout_s: float) -> None:
        self.request = request
        self.response = response
        self._write_timeout_s = write_timeout_s
        self._watchdog: _WriteWatchdog | None = None

    async def write(self, data: bytes) -> None:
        """Write ``data``; raises WriteStalled when the viewer takes no bytes for too long."""
        if self._watchdog is None:
            transport = self.request.transport
            if transport is None:
                raise ConnectionResetError("the viewer has gone")
            self._watchdog = _WriteWatchdog(transport, self._write_timeout_s)
        self._watchdog.arm(len(data))
        try:
            await self.response.write(data)
        except asyncio.CancelledError:
            if self._watchdog.fired:
                raise WriteStalled from None
            raise
        finally:
            self._watchdog.disarm()


def _float_param(request: web.Request, name: str, low: float, high: float) -> float | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:  # also refuses nan
        raise web.HTTPBadRequest(text=f"?{name}= must be a number from {low:g} to {high:g}, got {raw[:20]!r}")
    return value


def wants_page(request: web.Request) -> bool:
    """True for a browser's top-level navigation (the address bar), not an ``<img>``.

    Browsers send ``Sec-Fetch-Dest: document`` (Fetch Metadata) and an ``Accept`` that
    starts with ``text/html`` for navigations; ``<img>``, curl, ffmpeg and VLC do not.
    """
    dest = request.headers.get("Sec-Fetch-Dest")
    if dest is not None:
        return dest == "document"
    return request.headers.get("Accept", "").startswith("text/html")


async def stream(request: web.Request) -> web.StreamResponse:
    """``GET /cameras/{camera_id}/stream.mjpg``: the camera's frames as ``multipart/x-mixed-replace``.

    The viewer gets the latest frame at once, then every newer one; a slow viewer
    skips to the newest. While the camera sends nothing new, the latest frame is
    re-sent every ``resend_seconds``. Query parameters: ``fps`` caps this viewer's rate
    (frames are skipped, never queued); ``max_seconds`` ends the stream after that long,
    at most the server's ``max_stream_seconds``. Ends with the close delimiter then, and
    when the server stops; ends at once when the viewer goes away or takes no bytes for
    ``write_timeout`` seconds. A browser navigating to the URL gets a page showing the
    stream; a HEAD request gets the headers alone.
    """
    camera = camera_from_request(request)
    if request.method == "GET" and wants_page(request):
        # The address bar would show a never-ending download in some browsers; a page
        # holding the stream as <img> shows the picture in all of them.
        query = f"?{request.query_string}" if request.query_string else ""
        context = {"camera": camera, "stream_src": f"stream.mjpg{query}"}
        return aiohttp_jinja2.render_template("kiosk.html", request, context)
    server = request.app[CONFIG].server
    # <img> requests carry Sec-Fetch-Dest: image (Fetch Metadata); they get the framing
    # browsers paint at once. Everything else gets parts with exact Content-Length.
    browser = request.headers.get("Sec-Fetch-Dest") == "image"
    writer = request.app[BROWSER_WRITER if browser else WRITER]
    fps = _float_param(request, "fps", 0.01, 100)
    max_seconds = _float_param(request, "max_seconds", 1, 31_536_000)
    if server.max_stream_seconds is not None:
        max_seconds = min(max_seconds or server.max_stream_seconds, server.max_stream_seconds)
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
    viewer = _Viewer(request, response, server.write_timeout)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_seconds if max_seconds else None
    interval = 1.0 / fps if fps else 0.0
    with hub.viewer():
        log.debug("camera %s: viewer %s connected (%d watching)", camera.id, peer, hub.viewers)
        try:
            await response.prepare(request)
            await viewer.write(writer.opening)
            sent_seq, sent_at = 0, -interval
            while True:
                if interval:
                    # ?fps=: let frames pass until this viewer's next slot; the newest is sent then.
                    await asyncio.sleep(sent_at + interval - loop.time())
                wait = server.resend_seconds if deadline is None else min(server.resend_seconds, deadline - loop.time())
                try:
                    part = await hub.next_part(sent_seq, max(wait, 0))
                except HubClosed:
                    part, deadline = hub.latest, loop.time()  # the server is stopping: end cleanly
                if deadline is not None and loop.time() >= deadline:
                    last = part or hub.latest
                    if last is not None:
                        await viewer.write(writer.closing(last.browser_data if browser else last.data))
                    break
                if part is None:
                    # Idle upstream: re-send so the viewer's connection is not idle either
                    # (proxies and players time out on silent streams).
                    part = hub.latest
                    if part is None:
                        continue
                await viewer.write(part.browser_data if browser else part.data)
                sent_seq, sent_at = part.frame.seq, loop.time()
        except ConnectionError:
            # The viewer went away while we wrote; the usual end of a stream.
            pass
        except WriteStalled:
            camera.viewers_timed_out += 1
            log.info("camera %s: viewer %s took no data for %g s; closed", camera.id, peer, server.write_timeout)
            if request.transport is not None:
                request.transport.abort()
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
