"""A scripted fake MJPEG camera on 127.0.0.1: each connection plays a script of writes."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Sequence

from aiohttp import web

from tests.fake_camera import digest_authorised, digest_challenge

HANG = object()
"""Script step: keep the connection open and send nothing more."""
GATE = object()
"""Script step: wait until the test sets ``FakeMjpegCamera.gate`` (e.g. once its viewers are in)."""


class Pause(float):
    """Script step: wait this many seconds before the next write."""


Script = Sequence[bytes | Pause | object]


def part(jpeg: bytes, boundary: str = "myboundary", *, length: bool = True, extra: bytes = b"") -> bytes:
    """One well-formed part: delimiter line, headers, blank line, the JPEG, CRLF."""
    headers = b"Content-Type: image/jpeg\r\n" + (b"Content-Length: %d\r\n" % len(jpeg) if length else b"") + extra
    return b"--" + boundary.encode() + b"\r\n" + headers + b"\r\n" + jpeg + b"\r\n"


class FakeMjpegCamera:
    """Serves ``/video.mjpg``: the n-th connection (from 0) plays ``scripts(n)``, then ends.

    ``content_type`` is sent as given, so tests control how the boundary is spelled.
    With ``username`` set, HTTP Digest is required; a failed check answers 401 with an
    HTML body. ``status`` other than 200 answers that status with an HTML body.
    """

    def __init__(
        self,
        scripts: Callable[[int], Script],
        content_type: str = "multipart/x-mixed-replace; boundary=myboundary",
        *,
        username: str | None = None,
        password: str | None = None,
        status: int = 200,
    ) -> None:
        self.scripts = scripts
        self.content_type = content_type
        self.username = username
        self.password = password
        self.status = status
        self.nonce = secrets.token_hex(16)
        self.connections = 0
        self.open_connections = 0
        self.max_open_connections = 0
        self.challenges = 0
        self.gate = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/video.mjpg", self._video)
        return app

    async def _video(self, request: web.Request) -> web.StreamResponse:
        if self.username is not None and not digest_authorised(request, self.username, self.password, self.nonce):
            self.challenges += 1
            html = "<html><body><h1>401 Unauthorized</h1></body></html>"
            return web.Response(status=401, text=html, content_type="text/html", headers=digest_challenge(self.nonce))
        if self.status != 200:
            return web.Response(status=self.status, text=f"<html>{self.status}</html>", content_type="text/html")
        script = self.scripts(self.connections)
        self.connections += 1
        self.open_connections += 1
        self.max_open_connections = max(self.max_open_connections, self.open_connections)
        try:
            response = web.StreamResponse(headers={"Content-Type": self.content_type})
            await response.prepare(request)
            for step in script:
                if step is HANG:
                    await asyncio.Event().wait()
                elif step is GATE:
                    await self.gate.wait()
                elif isinstance(step, Pause):
                    await asyncio.sleep(step)
                else:
                    await response.write(step)
            return response
        finally:
            self.open_connections -= 1
