"""A fake Eagle Eye Networks v1 API on 127.0.0.1, for the tests.

It behaves as the project's EEN notes (section 5.3) describe the real service: the two
login calls, the auth_key cookie, blocking ``next`` previews, 401 on an expired session,
403 for a camera the user may not see, 404 for an unknown one; and it has knobs for the
failures a real deployment meets (expiry, 503 bursts, stalls, garbage bodies, refused
logins). Every camera serves real JPEG frames from tests/data, in turn.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import unquote

from aiohttp import web

TOKEN_TTL_S = 30.0


def een_timestamp(wall: float) -> str:
    """``YYYYMMDDhhmmss.xxx`` in UTC, EEN's timestamp format."""
    return datetime.fromtimestamp(wall, UTC).strftime("%Y%m%d%H%M%S.%f")[:-3]


@dataclass
class Preview:
    stamp: str
    jpeg: bytes


@dataclass
class FakeEenCamera:
    """One camera of the fake. ``emit()`` makes a new preview now; with ``interval_s``
    set, ``FakeEen`` emits one every ``interval_s`` seconds unless ``stalled``."""

    esn: str
    frames: list[bytes]
    interval_s: float | None = None
    stalled: bool = False
    garbage: bool = False
    fail_with: list[int] = field(default_factory=list)
    fail_headers: dict[str, str] = field(default_factory=dict)  # sent with each fail_with answer
    previews: list[Preview] = field(default_factory=list)
    served: list[bytes] = field(default_factory=list)
    image_requests: int = 0
    request_times: list[float] = field(default_factory=list)
    open_next: int = 0
    max_open_next: int = 0
    _new: asyncio.Event = field(default_factory=asyncio.Event)

    def emit(self) -> Preview:
        # EEN stamps to the millisecond; keep stamps unique even when emitted faster.
        wall = time.time()
        if self.previews:
            last = datetime.strptime(self.previews[-1].stamp, "%Y%m%d%H%M%S.%f").replace(tzinfo=UTC).timestamp()
            wall = max(wall, last + 0.001)
        preview = Preview(een_timestamp(wall), self.frames[len(self.previews) % len(self.frames)])
        self.previews.append(preview)
        woken, self._new = self._new, asyncio.Event()
        woken.set()
        return preview

    async def wait_for_preview_after(self, count: int) -> Preview:
        while len(self.previews) <= count:
            await self._new.wait()
        return self.previews[count]


class FakeEen:
    """The fake service. ``app()`` is the aiohttp application to serve.

    ``access`` lists the ESNs the user may see; cameras outside it answer 403, ESNs
    unknown to the fake answer 404. Counters: ``authenticate_calls``, ``logins`` (successful
    authorize calls), ``logouts``. ``log`` records every request as (method, path, esn).
    """

    def __init__(
        self,
        username: str = "preview-user@example.com",
        password: str = "correct horse battery staple",
        api_key: str | None = None,
        brand_subdomain: str = "c001",
    ) -> None:
        self.username = username
        self.password = password
        self.api_key = api_key
        self.brand_subdomain = brand_subdomain
        self.cameras: dict[str, FakeEenCamera] = {}
        self.access: set[str] = set()
        self.login_status: int | None = None  # force authenticate to answer this status
        self.login_headers: dict[str, str] = {}  # sent with that forced answer
        self.login_delay_s = 0.0  # a slow login service
        self.redirect_images_to: str | None = None  # answer image requests with a 301 to this prefix
        self.tokens: dict[str, float] = {}
        self.sessions: set[str] = set()
        self.issued_keys: list[str] = []
        self.authenticate_calls = 0
        self.authenticate_times: list[float] = []  # time.time() of each authenticate call
        self.logins = 0
        self.logouts = 0
        self.log: list[tuple[str, str, str | None]] = []
        self._tickers: list[asyncio.Task] = []

    def add_camera(self, esn: str, frames: list[bytes], interval_s: float | None = None, *, allowed: bool = True):
        camera = FakeEenCamera(esn, frames, interval_s)
        self.cameras[esn] = camera
        if allowed:
            self.access.add(esn)
        return camera

    def expire_sessions(self) -> None:
        """Every auth_key handed out so far stops working (the next call gets 401)."""
        self.sessions.clear()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/g/aaa/authenticate", self._authenticate)
        app.router.add_post("/g/aaa/authorize", self._authorize)
        app.router.add_get("/g/aaa/isauth", self._isauth)
        app.router.add_post("/g/aaa/logout", self._logout)
        app.router.add_get("/asset/{kind:prev|next|after|asset}/image.jpeg", self._image)
        # Where a 301 sends image requests: "Asset has been moved to a different archiver".
        app.router.add_get("/archiver/asset/{kind:prev|next|after|asset}/image.jpeg", self._image)
        app.on_startup.append(self._start_tickers)
        app.on_cleanup.append(self._stop_tickers)
        return app

    # --- login -------------------------------------------------------------------------

    def _api_key_ok(self, request: web.Request) -> bool:
        if self.api_key is None:
            return True
        sent = request.headers.get("Authorization") or request.headers.get("Authentication") or ""
        return sent.rstrip(":") == self.api_key

    async def _form(self, request: web.Request) -> dict[str, str]:
        if request.content_type == "application/json":
            body = await request.json()
            return body if isinstance(body, dict) else {}
        return {k: str(v) for k, v in (await request.post()).items()}

    async def _authenticate(self, request: web.Request) -> web.Response:
        self.authenticate_calls += 1
        self.authenticate_times.append(time.time())
        self.log.append((request.method, request.path, None))
        await asyncio.sleep(self.login_delay_s)
        if self.login_status is not None:
            return web.json_response(
                {"status_code": self.login_status}, status=self.login_status, headers=self.login_headers
            )
        if not self._api_key_ok(request):
            return web.json_response({"status_code": 401, "message": "missing API key"}, status=401)
        form = await self._form(request)
        if "username" not in form or "password" not in form:
            return web.json_response({"status_code": 400, "message": "username and password required"}, status=400)
        if (form["username"], form["password"]) != (self.username, self.password):
            return web.json_response({"status_code": 401, "reason": "InvalidPassword"}, status=401)
        token = secrets.token_urlsafe(256)[:344]
        self.tokens[token] = time.monotonic() + TOKEN_TTL_S
        return web.json_response({"token": token})

    async def _authorize(self, request: web.Request) -> web.Response:
        self.log.append((request.method, request.path, None))
        if not self._api_key_ok(request):
            return web.json_response({"status_code": 401}, status=401)
        token = (await self._form(request)).get("token", "")
        expires = self.tokens.pop(token, None)  # single use
        if expires is None or expires < time.monotonic():
            return web.json_response({"status_code": 401, "message": "invalid token"}, status=401)
        auth_key = f"{self.brand_subdomain}~{secrets.token_hex(16)}"
        self.sessions.add(auth_key)
        self.issued_keys.append(auth_key)
        self.logins += 1
        user = {
            "id": "ca0e1cf2",
            "user_id": "ca0e1cf2",
            "email": self.username,
            "active_account_id": "00004206",
            "owner_account_id": "00004206",
            "camera_access": [[esn, "r"] for esn in sorted(self.access)],
            "is_view_preview_video": 1,
            "is_branded": 1,
            "active_brand_subdomain": self.brand_subdomain,
        }
        response = web.json_response(user)
        response.set_cookie("auth_key", auth_key, path="/")
        response.set_cookie("videobank_sessionid", auth_key, path="/")
        return response

    def _session_of(self, request: web.Request, query: dict[str, str]) -> str | None:
        key = query.get("A") or request.cookies.get("auth_key")
        return key if key in self.sessions else None

    async def _isauth(self, request: web.Request) -> web.Response:
        if self._session_of(request, _query(request)) is None:
            return web.Response(status=401)
        return web.Response(text="true")

    async def _logout(self, request: web.Request) -> web.Response:
        self.log.append((request.method, request.path, None))
        key = self._session_of(request, _query(request))
        if key is None:
            return web.Response(status=401)
        self.sessions.discard(key)
        self.logouts += 1
        return web.Response(status=204)

    # --- images ------------------------------------------------------------------------

    async def _image(self, request: web.Request) -> web.StreamResponse:
        query = _query(request)
        esn = query.get("id") or query.get("c")
        self.log.append((request.method, request.path, esn))
        if self._session_of(request, query) is None:
            return web.json_response(
                {"status_code": 401, "message": "Unauthorized due to invalid session cookie"}, status=401
            )
        timestamp = query.get("timestamp") or query.get("t")
        asset_class = query.get("asset_class") or query.get("a")
        if not esn or not timestamp or asset_class not in ("all", "pre", "thumb"):
            return web.json_response({"status_code": 400}, status=400)
        camera = self.cameras.get(esn)
        if camera is None:
            return web.json_response({"status_code": 404, "message": "Image not found"}, status=404)
        if esn not in self.access:
            return web.json_response({"status_code": 403}, status=403)
        camera.image_requests += 1
        camera.request_times.append(time.monotonic())
        if self.redirect_images_to and not request.path.startswith("/archiver/"):
            raise web.HTTPMovedPermanently(self.redirect_images_to + request.path_qs)
        if camera.fail_with:
            return web.Response(status=camera.fail_with.pop(0), text="Service Unavailable", headers=camera.fail_headers)
        kind = request.match_info["kind"]
        if kind == "prev":
            if not camera.previews:
                return web.json_response({"status_code": 404, "message": "Image not found"}, status=404)
            preview = camera.previews[-1]
        elif kind == "next" and timestamp == "now":
            preview = await self._wait_next(camera, query.get("timeout"))
            if preview is None:
                return web.json_response({"status_code": 408}, status=408)
        else:
            return web.json_response({"status_code": 404, "message": "Image not found"}, status=404)
        if camera.garbage:
            return web.Response(text="<html><body>Internal error</body></html>", content_type="image/jpeg")
        camera.served.append(preview.jpeg)
        index = camera.previews.index(preview)
        return web.Response(
            body=preview.jpeg,
            content_type="image/jpeg",
            headers={
                "x-ee-timestamp": f"preview-{preview.stamp}",
                "x-ee-prev": f"preview-{camera.previews[index - 1].stamp}" if index else "unknown",
                "x-ee-next": "unknown",
                "location": f"/asset/asset/image.jpeg?timestamp={preview.stamp}&id={esn}&asset_class=pre",
            },
        )

    async def _wait_next(self, camera: FakeEenCamera, timeout_ms: str | None) -> Preview | None:
        camera.open_next += 1
        camera.max_open_next = max(camera.max_open_next, camera.open_next)
        try:
            async with asyncio.timeout(float(timeout_ms) / 1000 if timeout_ms else None):
                return await camera.wait_for_preview_after(len(camera.previews))
        except TimeoutError:
            return None
        finally:
            camera.open_next -= 1

    async def _start_tickers(self, app: web.Application) -> None:
        for camera in self.cameras.values():
            if camera.interval_s:
                self._tickers.append(asyncio.create_task(_tick(camera)))

    async def _stop_tickers(self, app: web.Application) -> None:
        for task in self._tickers:
            task.cancel()
        await asyncio.gather(*self._tickers, return_exceptions=True)


async def _tick(camera: FakeEenCamera) -> None:
    assert camera.interval_s
    while True:
        if not camera.stalled:
            camera.emit()
        await asyncio.sleep(camera.interval_s)


def _query(request: web.Request) -> dict[str, str]:
    # EEN accepts ';' as well as '&' between parameters (EEN API v1 docs, Asset examples).
    pairs = (item.partition("=") for item in request.query_string.replace(";", "&").split("&") if item)
    return {unquote(key): unquote(value) for key, _, value in pairs}
