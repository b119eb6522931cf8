"""The viewer-facing media: ``stream.mjpg`` (MJPEG) and ``snapshot.jpg`` (latest frame)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import Protocol

from aiohttp import web

from mjpeg_proxy.camera.camera import Camera
from mjpeg_proxy.camera.hub import FrameHub, HubClosed, Part
from mjpeg_proxy.camera.stats import CameraStats
from mjpeg_proxy.logs import SummarisedLog
from mjpeg_proxy.pictures.drawing import utc_text
from mjpeg_proxy.web.access import Link, request_link, require_link
from mjpeg_proxy.web.appkeys import CAMERAS, CONFIG, FLOOD_LOG, FRAMINGS, camera_from_request
from mjpeg_proxy.web.clients import ClientKind, client_kind
from mjpeg_proxy.web.framings import StreamPart
from mjpeg_proxy.web.hotlink import check_embedder
from mjpeg_proxy.web.limits import check_viewer_limits, client_address
from mjpeg_proxy.web.pages import camera_page, stream_path
from mjpeg_proxy.web.widths import requested_rung, snapshot_jpeg
from mjpeg_proxy.wire.writer import MultipartWriter

log = logging.getLogger(__name__)

NO_CACHE_HEADERS = {
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
    "Expires": "0",
    "X-Content-Type-Options": "nosniff",
}
SNAPSHOT_RETRY_AFTER_S = 2
"""``Retry-After`` of a snapshot that has no camera frame to show, in seconds."""


SEND_BUFFER_BYTES = 256 * 1024
"""The kernel's send buffer for a stream socket. Left to itself Linux grows it to
megabytes, where a slow viewer's frames would wait for tens of seconds, out of reach
of latest-frame-wins (and the write timeout would see no progress for as long). This
is room for a few parts, and for 4 fps of 720p over a 100 ms round trip."""
HIGH_WATER_BYTES = 64 * 1024
"""A viewer whose connection holds more unsent bytes than this, or than the part to send
if that is larger, is behind: it skips parts until it catches up, then gets the newest.
So the server holds at most about two parts for any viewer, however slow, while a viewer
that is only briefly behind (the kernel had not yet taken the last part) skips nothing."""
CARE_INTERVAL_S = 1.0
"""The longest pause between two rounds of ``keep_streams``, in seconds."""


class _CloseDelimitedResponse(web.StreamResponse):
    """A stream response whose body ends when the connection closes, on HTTP/1.1 too.

    Without a length aiohttp uses chunked coding for HTTP/1.1, which copies every part
    for every viewer; a close-delimited body (RFC 9112, 6.3) lets the hub write one shared
    bytes object to each socket. aiohttp's own WebSocketResponse turns its length
    handling off the same way.
    """

    _length_check = False


class Transport(Protocol):
    """What a StreamViewer needs of its connection; an ``asyncio.Transport`` has it."""

    def write(self, data: bytes) -> None:
        """Send ``data``; what the kernel does not take at once waits in the buffer."""

    def is_closing(self) -> bool:
        """Whether the connection is closed or closing."""

    def get_write_buffer_size(self) -> int:
        """Bytes written and not yet taken by the kernel."""

    def abort(self) -> None:
        """Close the connection at once, dropping what is buffered."""


class StreamViewer:
    """One viewer of a stream, written to directly by the hub (no task switch per part).

    ``offer`` sends a part unless the viewer is behind (its connection holds more unsent
    bytes than ``HIGH_WATER_BYTES`` or than the part, if larger) or its ``?fps=`` slot
    (one part per ``interval_s`` seconds) has not come. ``tick`` (from ``keep_streams``)
    sends the hub's latest part to a viewer that skipped it and has caught up, re-sends
    it to an idle viewer every ``resend_s``, and closes one whose connection took no
    bytes for ``write_timeout_s``. ``finished`` is set when the stream is over. ``clock``
    gives the time in seconds (the event loop's in the server). ``stats`` is the
    camera's record, where the viewer counts what it sent or skipped; ``client`` (an
    address) and ``flood_log`` serve the log line of a write timeout. ``link`` is the
    request's path and query, checked again when a reload changes who may watch.
    """

    __slots__ = ("camera_id", "stats", "hub", "transport", "writer", "browser", "interval_s", "client", "flood_log",
                 "link", "sent_seq", "sent_at", "buffered", "progress_at", "finished", "_clock")  # fmt: skip

    def __init__(
        self,
        camera_id: str,
        stats: CameraStats,
        hub: FrameHub[StreamPart],
        transport: Transport,
        writer: MultipartWriter,
        *,
        interval_s: float,
        client: str,
        flood_log: SummarisedLog,
        clock: Callable[[], float],
        link: Link,
    ) -> None:
        self.camera_id = camera_id
        self.stats = stats
        self.hub = hub
        self.transport = transport
        self.writer = writer
        self.browser = writer.advance_headers  # the browsers' framing is the one with headers ahead
        self.interval_s = interval_s
        self.client = client
        self.flood_log = flood_log
        self._clock = clock
        self.link = link
        self.sent_seq = 0
        self.sent_at = -interval_s
        self.buffered = 0
        self.progress_at = clock()
        self.finished = asyncio.Event()

    def offer(self, part: Part[StreamPart]) -> None:
        """Send ``part`` now, or skip it if the viewer is behind or its ``?fps=`` slot has not come."""
        transport = self.transport
        if self.finished.is_set():
            return  # the stream has ended (close delimiter, timeout): nothing may follow
        if transport.is_closing():
            self.finished.set()
        elif self._behind(transport.get_write_buffer_size(), part):
            self.stats.frames_dropped += 1
        else:
            now = self._clock()
            if now - self.sent_at >= self.interval_s:
                self._send(part, now)

    def tick(self, resend_s: float, write_timeout_s: float) -> None:
        """Periodic care: the write timeout, catching up, and re-sends while idle (seconds)."""
        transport = self.transport
        if self.finished.is_set():
            return
        if transport.is_closing():
            self.finished.set()
            return
        now = self._clock()
        buffered = transport.get_write_buffer_size()
        if buffered < self.buffered or buffered == 0:
            self.progress_at = now
        self.buffered = buffered
        if buffered and now - self.progress_at >= write_timeout_s:
            self._time_out(write_timeout_s)
            return
        latest = self.hub.latest
        if latest is None or self._behind(buffered, latest) or now - self.sent_at < self.interval_s:
            return
        # A viewer that skipped the latest part while behind gets it now; an idle stream
        # gets it again, so players and proxies do not time out on a silent connection.
        if latest.frame.seq > self.sent_seq or now - self.sent_at >= resend_s:
            self._send(latest, now)

    def close(self, last: Part[StreamPart] | None) -> None:
        """End the stream after a whole part, with the close delimiter (RFC 2046, 5.1.1)."""
        if not self.finished.is_set() and not self.transport.is_closing() and last is not None:
            self.transport.write(self.writer.closing(self._data(last)))
        self.finished.set()

    def _data(self, part: Part[StreamPart]) -> bytes:
        return part.payload.browser if self.browser else part.payload.player

    @staticmethod
    def _behind(buffered: int, part: Part[StreamPart]) -> bool:
        return buffered > max(HIGH_WATER_BYTES, len(part.payload.player))

    def _send(self, part: Part[StreamPart], now: float) -> None:
        data = self._data(part)
        self.transport.write(data)
        stats = self.stats
        stats.frames_sent += 1
        stats.bytes_sent += len(data)
        self.sent_seq, self.sent_at = part.frame.seq, now
        self.buffered = self.transport.get_write_buffer_size()

    def _time_out(self, write_timeout_s: float) -> None:
        self.stats.viewers_timed_out += 1
        # One client can open hundreds of streams it never reads: summarised.
        self.flood_log.event(
            log,
            f"camera {self.camera_id}: viewers closed for taking no data",
            self.client,
            f"camera {self.camera_id}: a viewer ({self.client}) took no data for {write_timeout_s:g} s; closed",
        )
        self.transport.abort()
        self.finished.set()


STREAM_VIEWERS = web.AppKey("stream_viewers", set[StreamViewer])
"""Every stream viewer of the application, for ``keep_streams`` (each leaves as its stream ends)."""


async def keep_streams(app: web.Application) -> None:
    """Care for the streams for the application's life: ticks and offline pictures.

    Every quarter of ``resend_seconds`` or of ``write_timeout``, whichever is shorter (at
    most ``CARE_INTERVAL_S``), lets every camera redraw its offline picture when due and gives every
    stream viewer its ``tick``.
    """
    while True:
        server = app[CONFIG].server  # read anew each time: a reload may change it
        await asyncio.sleep(min(CARE_INTERVAL_S, server.resend_seconds / 4, server.write_timeout / 4))
        for camera in app[CAMERAS].values():
            camera.offline.redraw()
        for viewer in app[STREAM_VIEWERS]:
            viewer.tick(server.resend_seconds, server.write_timeout)


def _float_param(request: web.Request, name: str, low: float, high: float) -> float | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:  # also refuses nan
        raise web.HTTPBadRequest(text=f"?{name}= must be a number from {low:.15g} to {high:.15g}, got {raw[:20]!r}")
    return value


async def stream(request: web.Request) -> web.StreamResponse:
    """``GET /cameras/{camera_id}/stream.mjpg``: the camera's frames as ``multipart/x-mixed-replace``.

    The viewer gets the latest frame at once, then every newer one; a slow viewer
    skips to the newest. While the camera sends nothing new, the latest frame is
    re-sent every ``resend_seconds``. Query parameters: ``fps`` caps this viewer's rate
    (frames are skipped, never queued); ``max_seconds`` ends the stream after that long,
    at most the server's ``max_stream_seconds``; ``width`` asks for smaller pictures
    (``widths.requested_rung``). Ends with the close delimiter then, and
    when the server stops; ends at once when the viewer goes away or takes no bytes for
    ``write_timeout`` seconds. A browser navigating to the URL gets a page showing the
    stream; a HEAD request gets the headers alone (see ``clients`` for who is which).

    Raises:
        web.HTTPNotFound: no such camera.
        web.HTTPBadRequest: ``fps``, ``max_seconds`` or ``width`` is not a number in its range.
        web.HTTPForbidden: no valid signed link (``access.require_link``), or a page of a
            site ``embed_origins`` does not list (``hotlink.check_embedder``).
        web.HTTPServiceUnavailable: a viewer limit is reached (``limits.check_viewer_limits``).
    """
    camera = camera_from_request(request)
    require_link(request, camera)
    check_embedder(request)
    fps = _float_param(request, "fps", 0.01, 100)
    max_seconds = _float_param(request, "max_seconds", 1, 31_536_000)
    width = requested_rung(request)
    kind = client_kind(request)
    if request.method == "GET" and kind is ClientKind.PAGE:
        # The address bar would show a never-ending download in some browsers; a page
        # holding the stream as <img> shows the picture in all of them.
        return camera_page(request, camera, stream_path(camera.id, request.rel_url.raw_query_string))
    server = request.app[CONFIG].server
    check_viewer_limits(request, camera)
    # An <img> gets the framing browsers paint at once; everything else gets parts with
    # exact Content-Length.
    writer = request.app[FRAMINGS].writer(browser=kind is ClientKind.IMAGE)
    if server.max_stream_seconds is not None:
        max_seconds = min(max_seconds or server.max_stream_seconds, server.max_stream_seconds)
    headers = {
        "Content-Type": writer.content_type,
        **NO_CACHE_HEADERS,
        # nginx buffers proxied responses by default, which would hold frames back.
        "X-Accel-Buffering": "no",
    }
    if request.method == "HEAD":
        # Headers only: a HEAD answer has no body (RFC 9110, 9.3.2), and uptime
        # checkers that use HEAD must not download the stream for ever.
        head = web.StreamResponse(headers=headers)
        await head.prepare(request)
        return head
    response = _CloseDelimitedResponse(headers=headers)
    response.force_close()
    transport = request.transport
    if transport is None:
        return response  # the viewer left before we could answer
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_seconds if max_seconds else None
    try:
        await response.prepare(request)
        await response.write(writer.opening)  # the headers and the first delimiter, through aiohttp
    except ConnectionError:
        return response
    viewers = request.app[STREAM_VIEWERS]
    with camera.scaled.rung(width) as hub:
        viewer = StreamViewer(
            camera.id,
            camera.stats,
            hub,
            transport,
            writer,
            interval_s=1.0 / fps if fps else 0.0,
            client=client_address(request),
            flood_log=request.app[FLOOD_LOG],
            clock=loop.time,
            link=request_link(request),
        )
        with camera.viewer(viewer, hub):
            viewers.add(viewer)
            log.debug("camera %s: viewer %s connected (%d watching)", camera.id, request.remote, camera.hub.viewers)
            try:
                await _watch(camera, viewer, deadline)
            finally:
                viewers.discard(viewer)
                log.debug("camera %s: viewer %s left (%d watching)", camera.id, request.remote, camera.hub.viewers - 1)
    return response


async def _watch(camera: Camera, viewer: StreamViewer, deadline: float | None) -> None:
    """Serve ``viewer`` of ``camera`` until its stream ends, at ``deadline`` (event-loop time) at the latest."""
    hub = viewer.hub  # the camera's, or a resized stream's
    latest = camera.hub.latest
    if latest is not None and latest.frame.placeholder:
        await camera.offline.show(over_frames=False)  # its "since ... ago" as of now
    if hub.latest is not None:
        viewer.offer(hub.latest)  # the latest picture at once, not after the next frame
    try:
        async with asyncio.timeout_at(deadline):
            await viewer.finished.wait()
    except TimeoutError:
        viewer.close(hub.latest)  # ?max_seconds= or max_stream_seconds


async def snapshot(request: web.Request) -> web.Response:
    """``GET /cameras/{camera_id}/snapshot.jpg``: the latest frame as ``image/jpeg``.

    Starts the camera's upstream if it was idle. Before the camera's first frame, waits
    up to ``Camera.snapshot_wait_s`` for it; answers 503 with ``Retry-After`` if none
    comes, or while viewers see the offline picture: an ``<img>`` then gets that picture
    as the body, anyone else the reason in plain words and since when. ``?width=`` asks
    for a smaller picture (``widths``).

    Raises:
        web.HTTPNotFound: no such camera.
        web.HTTPBadRequest: ``width`` is not a number in its range.
        web.HTTPForbidden: as for ``stream``.
        web.HTTPServiceUnavailable: no frame to show (but for an ``<img>`` of a camera
            in an error state, which gets the offline picture), or it cannot be resized.
    """
    camera = camera_from_request(request)
    require_link(request, camera)
    check_embedder(request)
    width = requested_rung(request)
    camera.touch()
    part = camera.hub.latest
    try:
        if part is None and not camera.state.is_error:
            part = await camera.hub.next_part(0, camera.snapshot_wait_s)
    except HubClosed:
        part = None
    if part is not None and not part.frame.placeholder:
        jpeg = await snapshot_jpeg(camera, part.frame, width)
        return web.Response(body=jpeg, content_type="image/jpeg", headers=NO_CACHE_HEADERS)
    headers = {"Retry-After": str(SNAPSHOT_RETRY_AFTER_S), "Cache-Control": "no-store"}
    state = camera.state
    if not state.is_error:
        raise web.HTTPServiceUnavailable(text=f"camera {camera.id!r} has no frame yet ({state})", headers=headers)
    message = f"camera {camera.id!r}: {state.reason} ({state} since {utc_text(camera.error_since)})"
    if client_kind(request) is ClientKind.IMAGE and (offline := await camera.offline.picture()) is not None:
        # A 503 with a picture: browsers paint it (no broken-image icon on the index),
        # while the status still tells caches and checkers that this is no camera frame.
        headers.update(NO_CACHE_HEADERS)
        return web.Response(status=503, body=offline.jpeg, content_type="image/jpeg", headers=headers)
    raise web.HTTPServiceUnavailable(text=message, headers=headers)
