"""A fake NVR on 127.0.0.1: many camera channels behind one small web server that answers
401 when it is busy, as Dahua and similar devices do."""

from __future__ import annotations

import asyncio
import itertools
import secrets

from aiohttp import web

from tests.fake_camera import digest_authorised, digest_challenge
from tests.fake_mjpeg import part


class FakeNvr:
    """Channels 1 to ``channels`` at ``/cam/<n>/video.mjpg`` (MJPEG, a frame every
    ``frame_interval_s``) and ``/cam/<n>/snapshot.jpg``, behind HTTP Digest for
    ``username`` and ``password``; ``frames`` are served in turn.

    Each request is in its *start-up* from its arrival until the snapshot, or the stream's
    first part, is sent; that takes ``startup_s``. Like a Dahua device, the NVR answers
    401 with a Digest challenge, just as for a wrong password, to any request that
    arrives while ``max_startups`` others are in their start-up, and to a stream request
    while ``max_streams`` streams are open.

    Channels in ``silent_channels`` answer a stream request (after the start-up) with the
    headers and then send nothing: a camera input with no signal.

    Counters: ``max_startups_seen`` (the most requests in start-up at once, counting each
    one as it arrives, refused or not: over ``max_startups`` exactly when one was refused
    for it), ``busy_refusals`` (401s for being busy), ``streams`` (open now),
    ``max_streams_seen``.
    """

    def __init__(
        self,
        frames: list[bytes],
        *,
        channels: int = 16,
        username: str = "admin",
        password: str = "nvr-password-1",
        max_startups: int = 4,
        max_streams: int = 64,
        startup_s: float = 0.2,
        frame_interval_s: float = 0.1,
        silent_channels: frozenset[int] = frozenset(),
    ) -> None:
        self.frames = frames
        self.channels = channels
        self.username = username
        self.password = password
        self.max_startups = max_startups
        self.max_streams = max_streams
        self.startup_s = startup_s
        self.frame_interval_s = frame_interval_s
        self.silent_channels = silent_channels
        self.nonce = secrets.token_hex(16)
        self.startups = 0
        self.max_startups_seen = 0
        self.busy_refusals = 0
        self.streams = 0
        self.max_streams_seen = 0
        self._next_frame = itertools.cycle(frames)

    def url(self, server_url: str, channel: int, kind: str) -> str:
        """The URL of ``channel``'s ``kind`` (``"mjpeg"`` or ``"snapshot"``) on the server at ``server_url``."""
        return f"{server_url.rstrip('/')}/cam/{channel}/" + ("video.mjpg" if kind == "mjpeg" else "snapshot.jpg")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/cam/{channel:[0-9]+}/snapshot.jpg", self._snapshot)
        app.router.add_get("/cam/{channel:[0-9]+}/video.mjpg", self._video)
        return app

    def _refusal(self) -> web.Response:
        html = "<html><body><h1>401 Unauthorized</h1></body></html>"
        return web.Response(status=401, text=html, content_type="text/html", headers=digest_challenge(self.nonce))

    def _arrive(self) -> bool:
        """Count a request into its start-up; False if the NVR is too busy for it."""
        self.startups += 1
        self.max_startups_seen = max(self.max_startups_seen, self.startups)
        return self.startups <= self.max_startups

    async def _snapshot(self, request: web.Request) -> web.Response:
        try:
            if not self._arrive():
                self.busy_refusals += 1
                return self._refusal()
            if not digest_authorised(request, self.username, self.password, self.nonce):
                return self._refusal()
            await asyncio.sleep(self.startup_s)
            return web.Response(body=next(self._next_frame), content_type="image/jpeg")
        finally:
            self.startups -= 1

    async def _video(self, request: web.Request) -> web.StreamResponse:
        starting = True
        try:
            if not self._arrive() or self.streams >= self.max_streams:
                self.busy_refusals += 1
                return self._refusal()
            if not digest_authorised(request, self.username, self.password, self.nonce):
                return self._refusal()
            self.streams += 1
            self.max_streams_seen = max(self.max_streams_seen, self.streams)
            try:
                await asyncio.sleep(self.startup_s)
                response = web.StreamResponse(
                    headers={"Content-Type": "multipart/x-mixed-replace; boundary=myboundary"}
                )
                await response.prepare(request)
                if int(request.match_info["channel"]) in self.silent_channels:
                    starting = False
                    self.startups -= 1
                    await asyncio.Event().wait()  # no signal: nothing ever comes
                for count in range(600):  # a minute at 10 fps, more than any test watches
                    await response.write(part(next(self._next_frame)))
                    if count == 0:
                        starting = False
                        self.startups -= 1
                    await asyncio.sleep(self.frame_interval_s)
                return response
            finally:
                self.streams -= 1
        finally:
            if starting:
                self.startups -= 1
