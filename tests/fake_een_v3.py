"""A fake Eagle Eye Networks API v3 on 127.0.0.1, for the tests.

It behaves as the project's EEN notes (shared/EEN-API.md, section 3 and 5.3 item 7)
describe the real service: the OAuth2 browser step that consents at once, the token
endpoint with HTTP Basic client credentials and rotating refresh tokens, base URL
discovery, ``feeds`` with a ``multipartUrl`` back at the fake, the multipart preview
stream, the blocking ``liveImage.jpeg``, and the v3 error body. Auth, API and media
paths are all served by this one application, so ``httpsBaseUrl`` names the fake itself.

Knobs the tests set: ``redirect_uris``, ``code_ttl_s``, ``access_token_ttl_s``,
``refuse_refreshes``, ``base_url_in_token``, ``account``, ``expire_access_tokens()``,
``fail()``, ``advance()`` (the fake's clock), ``stream_part_limit``, ``access`` and each camera's
``online`` and ``interval_s``.
Counters they assert on: ``requests`` (per path), ``camera_requests`` (per ESN),
``token_requests`` (per grant type), ``tokens_issued`` and ``tokens_invalidated`` (per
kind), ``dead_refreshes`` (a rotated-away refresh token used: one process logging another
out), ``open_streams`` and ``max_open_streams`` (here and per camera); ``issued_secrets`` lists the
client secret and every token issued, for scans of what the proxy shows.

Frames come from ``tick()`` on a camera (the test drives it) or from a timer when the
camera has ``interval_s``. aiohttp's TestServer cancels a handler whose client hangs up, so
``open_streams`` drops at once; under a plain AppRunner it drops at the stream's next tick.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from yarl import URL

from mjpeg_proxy.sources.een_oauth import Client, exchange_code
from mjpeg_proxy.sources.een_tokens import write_tokens

SCOPE = "vms.all"
CODE_TTL_S = 5 * 60.0  # "The code expires after 5 min." (3.1)
ACCESS_TOKEN_TTL_S = 43198  # the expires_in of the 3.1 example
MULTIPART_PATH = "/media/streams/preview/multipart"

# The v3 error statuses of 3.3 ("tooManyRequests" is listed without a code; 429 is its HTTP status).
STATUS_NAMES = {
    400: "invalidArgument",
    401: "unauthenticated",
    403: "permissionDenied",
    404: "notFound",
    429: "tooManyRequests",
    503: "unavailable",
}


def een_v3_timestamp(wall: float) -> str:
    """ISO 8601 with milliseconds and ``+00:00`` (3.3), e.g. ``2022-08-08T07:57:37.000+00:00``."""
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds")


def v3_error(status: int, path: str, message: str | None = None, headers: dict[str, str] | None = None) -> web.Response:
    """The v3 error body of 3.3 for ``status``."""
    name = STATUS_NAMES.get(status, "unknown")
    body = {
        "code": status,
        "status": name,
        "message": message or name,
        "details": [{"type": "errorInfo", "reason": name, "domain": "apiv3", "metadata": {"path": path}}],
    }
    return web.json_response(body, status=status, headers=headers)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt_like(subject: str) -> str:
    """An opaque access token shaped like the JWT of the 3.1 example (nothing checks its signature)."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64url(json.dumps({"sub": subject, "jti": secrets.token_hex(8)}).encode())
    return f"{header}.{payload}.{_b64url(secrets.token_bytes(32))}"


def _code() -> str:
    """An authorization code holding ``/``, ``+`` and ``=``, as standard base64 can: a client
    must percent-decode the redirect's query to get it right."""
    return base64.b64encode(secrets.token_bytes(18)).decode() + "/+" + base64.b64encode(secrets.token_bytes(4)).decode()


@dataclass
class LiveImage:
    timestamp: str  # X-Een-Timestamp
    jpeg: bytes


@dataclass
class FakeEenV3Camera:
    """One camera of the fake. ``tick()`` makes its next preview image now; with
    ``interval_s`` set, ``FakeEenV3`` ticks it every ``interval_s`` seconds while it is
    ``online``. An offline camera has no feed (``feeds`` answers empty ``results``)."""

    esn: str
    frames: list[bytes]
    interval_s: float | None = None
    online: bool = True
    images: list[LiveImage] = field(default_factory=list)
    live_image_requests: int = 0
    live_images_served: list[bytes] = field(default_factory=list)
    stream_requests: int = 0
    parts_sent: int = 0
    open_streams: int = 0
    max_open_streams: int = 0
    closed: bool = False
    _new: asyncio.Event = field(default_factory=asyncio.Event)
    _on_change: Callable[[], None] = lambda: None

    def tick(self) -> LiveImage:
        # Stamps are to the millisecond; keep them unique when ticked faster than that.
        wall = time.time()
        if self.images:
            last = datetime.fromisoformat(self.images[-1].timestamp).timestamp()
            wall = max(wall, last + 0.001)
        image = LiveImage(een_v3_timestamp(wall), self.frames[len(self.images) % len(self.frames)])
        self.images.append(image)
        self._wake()
        self._on_change()
        return image

    def _wake(self) -> None:
        woken, self._new = self._new, asyncio.Event()
        woken.set()

    async def image_after(self, count: int) -> LiveImage | None:
        """The image after the first ``count``, once there is one; None when the fake shuts down."""
        while len(self.images) <= count and not self.closed:
            await self._new.wait()
        return self.images[count] if len(self.images) > count else None


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    expires_at: float


class FakeEenV3:
    """The fake service. ``app()`` is the aiohttp application to serve.

    ``access`` lists the ESNs the user may see: cameras outside it answer 403, ESNs unknown
    to the fake answer 404. ``redirect_uris`` are the registered redirect URIs, compared
    as exact strings.
    """

    def __init__(
        self,
        client_id: str = "een-client-0a1b2c3d",
        client_secret: str = "een-secret-4e5f6a7b8c9d",
        redirect_uris: tuple[str, ...] = ("http://127.0.0.1:3333",),
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris: set[str] = set(redirect_uris)
        self.cameras: dict[str, FakeEenV3Camera] = {}
        self.access: set[str] = set()
        # Knobs.
        self.code_ttl_s = CODE_TTL_S
        self.access_token_ttl_s = ACCESS_TOKEN_TTL_S  # the token response's expires_in
        self.refuse_refreshes = 0  # the next N refreshes answer 401 (and that refresh token dies)
        self.stream_part_limit: int | None = None  # a multipart stream ends after this many parts
        self.base_url_in_token = True  # False: token answers name no httpsBaseUrl (ask clientSettings)
        self.account = {"id": "00001a2b", "name": "Fake Preview Account"}  # /accounts/self
        self.boundary = "een-" + secrets.token_hex(8)
        self._clock_offset_s = 0.0
        self._failures: dict[str, list[tuple[int, dict[str, str]]]] = {}
        # State.
        self.codes: dict[str, _Code] = {}
        self.access_tokens: dict[str, float] = {}  # token -> expiry on the fake's clock
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> the access token issued with it
        self.stream_sessions: dict[str, str] = {}  # stream_session -> ESN
        # Counters.
        self.requests: Counter[str] = Counter()  # per path
        self.camera_requests: Counter[str] = Counter()  # per ESN (deviceId or esn parameter)
        self.token_requests: Counter[str] = Counter()  # per grant_type
        self.tokens_issued: Counter[str] = Counter()  # "code", "access", "refresh"
        self.tokens_invalidated: Counter[str] = Counter()  # "access", "refresh": rotated away or refused
        self.dead_refreshes = 0  # refreshes with a refresh token already rotated away or refused
        # The client secret and every token issued: what no log line or page may show.
        self.issued_secrets: list[str] = [client_secret]
        self.open_streams = 0
        self.max_open_streams = 0
        self.log: list[tuple[str, str, str | None]] = []  # (method, path, ESN) of every request
        self._tickers: list[asyncio.Task] = []
        self._changed = asyncio.Event()

    # --- knobs -------------------------------------------------------------------------

    def add_camera(
        self, esn: str, frames: list[bytes], interval_s: float | None = None, *, allowed: bool = True
    ) -> FakeEenV3Camera:
        camera = FakeEenV3Camera(esn, frames, interval_s, _on_change=self._note)
        self.cameras[esn] = camera
        if allowed:
            self.access.add(esn)
        return camera

    async def log_in(self, base_url: URL, token_file: str | os.PathLike[str]) -> None:
        """What ``mjpeg-proxy een-login`` does once the browser came back: authorize at ``base_url``
        (where this fake is served) with a registered redirect URI, exchange the code, write ``token_file``."""
        redirect_uri = sorted(self.redirect_uris)[0]
        client = Client(self.client_id, self.client_secret, str(base_url).rstrip("/"))
        query = {"scope": SCOPE, "client_id": self.client_id, "response_type": "code", "redirect_uri": redirect_uri}
        async with aiohttp.ClientSession() as session:
            async with session.get(base_url / "oauth2/authorize", params=query, allow_redirects=False) as answer:
                code = URL(answer.headers["Location"]).query["code"]
            write_tokens(token_file, await exchange_code(session, client, code, redirect_uri, time.time))

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds; it is checked again whenever a request arrives,
        a camera ticks, or a stream opens, sends a part or ends. Bound it with a timeout."""
        while not predicate():
            await self._changed.wait()

    def _note(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def now(self) -> float:
        """The fake's clock (monotonic seconds), which ``advance()`` moves forward."""
        return time.monotonic() + self._clock_offset_s

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward: codes and access tokens age without waiting."""
        self._clock_offset_s += seconds

    def expire_access_tokens(self) -> None:
        """Every access token handed out so far expires now (refresh tokens stay good)."""
        now = self.now()
        for token in self.access_tokens:
            self.access_tokens[token] = min(self.access_tokens[token], now)

    def fail(self, path: str, status: int, count: int = 1, retry_after: str | None = None) -> None:
        """The next ``count`` requests of ``path`` answer ``status`` with the v3 error body;
        a 429 carries ``Retry-After: retry_after`` (default ``"1"``)."""
        headers = {}
        if status == 429 or retry_after is not None:
            headers["Retry-After"] = retry_after or "1"
        self._failures.setdefault(path, []).extend([(status, headers)] * count)

    # --- application -------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._count_and_fail])
        app.router.add_get("/oauth2/authorize", self._authorize)
        app.router.add_post("/oauth2/token", self._token)
        app.router.add_get("/api/v3.0/clientSettings", self._client_settings)
        app.router.add_get("/api/v3.0/accounts/self", self._account_self)
        app.router.add_get("/api/v3.0/feeds", self._feeds)
        app.router.add_get("/api/v3.0/media/liveImage.jpeg", self._live_image)
        app.router.add_get(MULTIPART_PATH, self._multipart)
        app.on_startup.append(self._start_tickers)
        app.on_shutdown.append(self._close_waits)
        app.on_cleanup.append(self._stop_tickers)
        return app

    @web.middleware
    async def _count_and_fail(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        esn = request.query.get("deviceId") or request.query.get("esn")
        self.requests[request.path] += 1
        if esn:
            self.camera_requests[esn] += 1
        self.log.append((request.method, request.path, esn))
        self._note()
        queued = self._failures.get(request.path)
        if queued:
            status, headers = queued.pop(0)
            return v3_error(status, request.path, headers=headers)
        return await handler(request)

    def _base_url(self, request: web.Request) -> dict[str, object]:
        return {"hostname": request.url.host, "port": request.url.port}

    # --- OAuth2 ------------------------------------------------------------------------

    async def _authorize(self, request: web.Request) -> web.Response:
        query = request.query
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id:
            return v3_error(400, request.path, "unknown client_id")
        if query.get("response_type") != "code" or query.get("scope") != SCOPE:
            return v3_error(400, request.path, "response_type=code and scope=vms.all are required")
        if redirect_uri not in self.redirect_uris:
            return v3_error(400, request.path, "redirect_uri is not registered")
        code = _code()
        self.codes[code] = _Code(self.client_id, redirect_uri, self.now() + self.code_ttl_s)
        self.tokens_issued["code"] += 1
        params = {"code": code}
        if "state" in query:
            params["state"] = query["state"]
        separator = "&" if "?" in redirect_uri else "?"
        # Set by hand: HTTPFound would pass it through yarl, which turns %2F back into '/'.
        return web.Response(status=302, headers={"Location": redirect_uri + separator + urlencode(params)})

    def _client_ok(self, request: web.Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            decoded = base64.b64decode(encoded, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        login, colon, password = decoded.partition(":")
        return scheme.lower() == "basic" and colon == ":" and (login, password) == (self.client_id, self.client_secret)

    async def _token(self, request: web.Request) -> web.Response:
        # V3-PY sends the parameters in the query string, the others as a form body: take both.
        params = dict(request.query)
        if request.content_type == "application/x-www-form-urlencoded":
            params.update({k: str(v) for k, v in (await request.post()).items()})
        grant_type = params.get("grant_type", "")
        self.token_requests[grant_type] += 1
        if not self._client_ok(request):
            return v3_error(401, request.path, "bad client credentials")
        if grant_type == "authorization_code":
            return self._exchange_code(request, params)
        if grant_type == "refresh_token":
            return self._refresh(request, params)
        return v3_error(400, request.path, "grant_type must be authorization_code or refresh_token")

    def _exchange_code(self, request: web.Request, params: dict[str, str]) -> web.Response:
        code = self.codes.pop(params.get("code", ""), None)  # single use, even when the rest is wrong
        if code is None or code.expires_at <= self.now():
            return v3_error(401, request.path, "bad or expired code")
        if params.get("redirect_uri") != code.redirect_uri:
            return v3_error(400, request.path, "redirect_uri differs from the authorize call's")
        return self._issue(request)

    def _refresh(self, request: web.Request, params: dict[str, str]) -> web.Response:
        old = params.get("refresh_token", "")
        if old not in self.refresh_tokens:
            self.dead_refreshes += 1
            return v3_error(401, request.path, "bad refresh token")
        # Rotation (3.1): the old refresh token and the access token derived from it die at once.
        self._invalidate(old)
        if self.refuse_refreshes > 0:
            self.refuse_refreshes -= 1
            return v3_error(401, request.path, "refresh refused: authorize again")
        return self._issue(request)

    def _invalidate(self, refresh_token: str) -> None:
        access = self.refresh_tokens.pop(refresh_token)
        self.tokens_invalidated["refresh"] += 1
        if self.access_tokens.pop(access, None) is not None:
            self.tokens_invalidated["access"] += 1

    def _issue(self, request: web.Request) -> web.Response:
        access = _jwt_like(self.client_id)
        refresh = secrets.token_urlsafe(48)
        self.access_tokens[access] = self.now() + self.access_token_ttl_s
        self.refresh_tokens[refresh] = access
        self.tokens_issued["access"] += 1
        self.tokens_issued["refresh"] += 1
        self.issued_secrets += [access, refresh]
        answer: dict[str, object] = {
            "access_token": access,
            "expires_in": self.access_token_ttl_s,
            "refresh_token": refresh,
            "scope": SCOPE,
            "token_type": "Bearer",
        }
        if self.base_url_in_token:
            answer["httpsBaseUrl"] = self._base_url(request)
        return web.json_response(answer)

    def _bearer_error(self, request: web.Request) -> web.Response | None:
        """None when the request carries a live access token, else the 401 to answer."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        expires_at = self.access_tokens.get(token) if scheme.lower() == "bearer" else None
        if expires_at is None or expires_at <= self.now():
            return v3_error(401, request.path, "missing, unknown or expired access token")
        return None

    def _camera_error(self, request: web.Request, esn: str) -> web.Response | None:
        if not esn:
            return v3_error(400, request.path, "deviceId is required")
        if esn not in self.cameras:
            return v3_error(404, request.path, f"no device {esn}")
        if esn not in self.access:
            return v3_error(403, request.path, f"no permission for device {esn}")
        return None

    # --- API ---------------------------------------------------------------------------

    async def _client_settings(self, request: web.Request) -> web.Response:
        return self._bearer_error(request) or web.json_response({"httpsBaseUrl": self._base_url(request)})

    async def _account_self(self, request: web.Request) -> web.Response:
        # getSelfAccount of EEN's v3 OpenAPI ("Account"): the logged-in account object.
        return self._bearer_error(request) or web.json_response(self.account)

    async def _feeds(self, request: web.Request) -> web.Response:
        query = request.query
        esn = query.get("deviceId", "")
        error = self._bearer_error(request) or self._camera_error(request, esn)
        if error:
            return error
        if query.get("type", "preview") != "preview":
            return v3_error(400, request.path, "the fake serves type=preview only")
        results = []
        if self.cameras[esn].online:
            feed: dict[str, str] = {"id": f"{esn}-preview", "type": "preview", "deviceId": esn, "mediaType": "video"}
            if "multipartUrl" in query.get("include", "").split(","):
                session = secrets.token_hex(16)
                self.stream_sessions[session] = esn
                url = request.url.with_path(MULTIPART_PATH).with_query(esn=esn, stream_session=session)
                feed["multipartUrl"] = str(url)
            results.append(feed)
        return web.json_response(
            {"results": results, "nextPageToken": "", "prevPageToken": "", "totalSize": len(results)}
        )

    async def _live_image(self, request: web.Request) -> web.Response:
        esn = request.query.get("deviceId", "")
        error = self._bearer_error(request) or self._camera_error(request, esn)
        if error:
            return error
        if request.query.get("type") != "preview":
            return v3_error(400, request.path, "type=preview is required")
        camera = self.cameras[esn]
        camera.live_image_requests += 1
        self._note()
        # "This call will wait until the image is available" (3.3): the camera's next tick.
        image = await camera.image_after(len(camera.images))
        if image is None:
            return v3_error(503, request.path, "shutting down")
        camera.live_images_served.append(image.jpeg)
        return web.Response(
            body=image.jpeg,
            content_type="image/jpeg",
            headers={"X-Een-Timestamp": image.timestamp, "X-Een-PrevToken": _b64url(image.timestamp.encode())},
        )

    async def _multipart(self, request: web.Request) -> web.StreamResponse:
        esn = request.query.get("esn", "")
        error = self._bearer_error(request) or self._camera_error(request, esn)
        if error:
            return error
        if self.stream_sessions.get(request.query.get("stream_session", "")) != esn:
            return v3_error(404, request.path, "unknown stream_session")
        camera = self.cameras[esn]
        camera.stream_requests += 1
        response = web.StreamResponse(
            headers={
                "Content-Type": f"multipart/x-mixed-replace; boundary={self.boundary}",
                "Cache-Control": "no-cache",
            }
        )
        await response.prepare(request)
        self.open_streams += 1
        camera.open_streams += 1
        self.max_open_streams = max(self.max_open_streams, self.open_streams)
        camera.max_open_streams = max(camera.max_open_streams, camera.open_streams)
        self._note()
        try:
            await self._stream_parts(camera, response)
        finally:
            self.open_streams -= 1
            camera.open_streams -= 1
            self._note()
        return response

    async def _stream_parts(self, camera: FakeEenV3Camera, response: web.StreamResponse) -> None:
        seen, sent = len(camera.images), 0
        while self.stream_part_limit is None or sent < self.stream_part_limit:
            image = await camera.image_after(seen)
            if image is None:
                return
            seen += 1
            head = f"--{self.boundary}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(image.jpeg)}\r\n\r\n"
            await response.write(head.encode() + image.jpeg + b"\r\n")
            sent += 1
            camera.parts_sent += 1
            self._note()
        await response.write(f"--{self.boundary}--\r\n".encode())

    # --- timers ------------------------------------------------------------------------

    async def _start_tickers(self, app: web.Application) -> None:
        for camera in self.cameras.values():
            camera.closed = False
            if camera.interval_s:
                self._tickers.append(asyncio.create_task(_tick(camera)))

    async def _close_waits(self, app: web.Application) -> None:
        # Waiting liveImage calls and open streams end, so the server can stop.
        for camera in self.cameras.values():
            camera.closed = True
            camera._wake()

    async def _stop_tickers(self, app: web.Application) -> None:
        for task in self._tickers:
            task.cancel()
        await asyncio.gather(*self._tickers, return_exceptions=True)
        self._tickers.clear()


async def _tick(camera: FakeEenV3Camera) -> None:
    assert camera.interval_s
    while True:
        await asyncio.sleep(camera.interval_s)
        if camera.online:
            camera.tick()
