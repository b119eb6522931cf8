"""Pages for people (camera list, kiosk), the health check, and error answers."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import re
import urllib.parse
from collections.abc import Mapping

import aiohttp_jinja2
from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import CIMultiDict

from mjpeg_proxy.camera.camera import Camera
from mjpeg_proxy.pictures.drawing import TEXT_COLOUR, TITLE_COLOUR, render_lines, utc_text
from mjpeg_proxy.web import operators
from mjpeg_proxy.web.access import INDEX_LINK_S, index_link, index_link_expiry, require_link, signed_like
from mjpeg_proxy.web.appkeys import CAMERA_SET, CAMERAS, CONFIG, camera_from_request
from mjpeg_proxy.web.clients import ClientKind, client_kind
from mjpeg_proxy.web.limits import from_trusted_proxy
from mjpeg_proxy.web.signing import EXPIRES

log = logging.getLogger(__name__)

# A path prefix as a reverse proxy names it: "/webcam", "/cams/lobby"; segments of URL
# path characters, checked again once percent-decoded (no "." or ".." segment, no "//").
_PREFIX_RE = re.compile(r"(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+")


MAX_LIVE_TILES = 4
"""Browsers open at most 6 HTTP/1.1 connections to one host and a live stream holds one
for as long as it plays; past this many cameras the index shows refreshed snapshots, so
the page, its other requests and every tile keep working."""
SNAPSHOT_REFRESH_S = 1
"""How often, in seconds, the index reloads each snapshot when it shows snapshots."""
RELOAD_DELAY_S = 2
"""A page with live streams reloads itself this many seconds after its streams end."""
TILE_WIDTH = 640
"""The ``?width=`` the index asks for its tiles, in pixels: a tile is 320 to about 640
CSS pixels wide, and 640 pixels stay sharp on most screens at a fraction of a
full-size frame's bytes (the rung for it, ``web.widths``)."""


async def index(request: web.Request) -> web.Response:
    """``GET /``: every camera shown to this request (``shows_signed_cameras``) with its name.

    Live ``<img>`` streams for up to ``MAX_LIVE_TILES`` cameras, else snapshots reloaded
    every ``SNAPSHOT_REFRESH_S`` (each linking to its live page), at ``TILE_WIDTH``. A
    signed camera's links are signed to expire at ``access.index_link_expiry``; the page
    then reloads itself when they have ``access.INDEX_LINK_S`` left, so it always holds
    links that work. Never stored by caches (``Cache-Control: no-store``).
    """
    signed = shows_signed_cameras(request)
    cameras = [camera for camera in request.app[CAMERAS].values() if signed or camera.config.access == "public"]
    live = len(cameras) <= MAX_LIVE_TILES
    tile = {"width": str(TILE_WIDTH)}
    tiles = [
        {
            "camera": camera,
            "page": index_link(request, camera, f"cameras/{camera.id}"),
            "snapshot": index_link(request, camera, f"cameras/{camera.id}/snapshot.jpg", tile),
            "still": index_link(request, camera, f"cameras/{camera.id}/snapshot.jpg"),
            "stream": index_link(request, camera, stream_path(camera.id), tile),
        }
        for camera in cameras
    ]
    reload = reload_seconds(request) if live else None
    if any(camera.config.access == "signed" for camera in cameras):
        now = request.app[CAMERA_SET].timing.clock.wall()
        renew = max(1, math.ceil(index_link_expiry(now) - INDEX_LINK_S - now))
        reload = renew if reload is None else min(reload, renew)
    context = {"tiles": tiles, "live": live, "refresh_seconds": SNAPSHOT_REFRESH_S, "reload_seconds": reload}
    response = render("index.html", request, context)
    # What it lists depends on who asks (index_signed_cameras), and its signed links expire:
    # a shared cache in front must not hand one visitor's page to the next.
    response.headers["Cache-Control"] = "no-store"
    return response


def shows_signed_cameras(request: web.Request) -> bool:
    """Whether the index shows ``request`` the signed cameras (``[server] index_signed_cameras``)."""
    server = request.app[CONFIG].server
    mode = server.index_signed_cameras
    return mode == "everyone" or (mode == "operators" and operators.admitted(request, server))


async def kiosk(request: web.Request) -> web.Response:
    """``GET /cameras/{camera_id}``: one camera filling the window, for kiosk screens."""
    camera = camera_from_request(request)
    require_link(request, camera)
    stream_src = signed_like(request, camera, f"/{stream_path(camera.id)}", stream_path(camera.id))
    return camera_page(request, camera, stream_src)


def camera_page(request: web.Request, camera: Camera, stream_src: str) -> web.Response:
    """The page (``kiosk.html``) showing ``camera``'s stream at ``stream_src``, with the ``<img>`` snippet to copy.

    The snippet's address is made absolute in the browser, from the page's own. For a signed
    camera it says when the link expires (the request's, already checked by
    ``access.require_link``).
    """
    signed = camera.config.access == "signed"
    context = {
        "camera": camera,
        "stream_src": stream_src,
        "reload_seconds": reload_seconds(request),
        "link_expires": utc_text(int(request.query[EXPIRES])) if signed else None,
    }
    return render("kiosk.html", request, context)


def stream_path(camera_id: str, query: str = "") -> str:
    """The stream's path from the site's root (pages resolve it with ``<base href>``)."""
    return f"cameras/{camera_id}/stream.mjpg" + (f"?{query}" if query else "")


def reload_seconds(request: web.Request) -> int | None:
    """When, in seconds, a page with live streams should reload itself; None: never.

    That is ``RELOAD_DELAY_S`` after its streams end (``max_stream_seconds``), or never
    when streams do not end.
    """
    limit = request.app[CONFIG].server.max_stream_seconds
    return None if limit is None else int(limit) + RELOAD_DELAY_S


async def healthz(request: web.Request) -> web.Response:
    """``GET /healthz``: 200 ``ok`` while the server runs."""
    return web.Response(text="ok")


def root_path(request: web.Request) -> str:
    """How a page or a redirect of ``request`` refers to the site's root.

    A reverse proxy in ``trusted_proxies`` that serves the site under a path prefix and
    says so in ``X-Forwarded-Prefix`` (Traefik's StripPrefix does; nginx and Caddy with a
    header line) gets that prefix: ``/webcam/``. Otherwise a relative reference from the
    request's path: ``./`` for ``/status``, ``../`` for ``/cameras/garage``, ``../../``
    for ``/cameras/garage/stream.mjpg``, which leads to a proxy's prefix too, as long as
    the browser's address has the slash after it (``/webcam/``, not ``/webcam``).
    """
    prefix = request.headers.get("X-Forwarded-Prefix", "").rstrip("/")
    if _is_clean_prefix(prefix) and from_trusted_proxy(request):
        return prefix + "/"
    return "../" * (request.rel_url.raw_path.count("/") - 1) or "./"


def _is_clean_prefix(prefix: str) -> bool:
    """Whether ``prefix`` is a path under which a browser stays.

    That is segments of URL path characters, none of them empty, ``.`` or ``..`` once
    percent-decoded (``%2e%2e`` is ``..`` to a browser, ``%2f`` a slash).
    """
    if not _PREFIX_RE.fullmatch(prefix):
        return False
    segments = urllib.parse.unquote(prefix).split("/")[1:]
    return all(segment not in ("", ".", "..") and "\\" not in segment for segment in segments)


def render(template: str, request: web.Request, context: Mapping[str, object], status: int = 200) -> web.Response:
    """The page ``template`` (in ``templates/``) for ``request``.

    Its context is ``context`` and ``root``: the site's root for its ``<base href>`` (``root_path``), from which every
    link on a page is written, so that it works under a path prefix.
    """
    return aiohttp_jinja2.render_template(template, request, {**context, "root": root_path(request)}, status=status)


@web.middleware
async def remove_extra_slashes(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Redirect (308) a path without a route to the same without extra slashes, if that has one.

    Trailing or doubled slashes are what people type: ``/cameras/garage/``.

    The ``Location`` is relative (RFC 9110, 10.2.2, allows it), so the redirect stays under
    a reverse proxy's path prefix without a ``proxy_redirect`` rule.
    """
    if isinstance(request.match_info.http_exception, web.HTTPNotFound):
        path = request.rel_url.raw_path
        target = re.sub("/{2,}", "/", path).rstrip("/") or "/"
        if target != path:
            match_info = await request.app.router.resolve(request.clone(rel_url=target))
            if match_info.http_exception is None:
                query = request.rel_url.raw_query_string
                location = root_path(request) + target.lstrip("/") + (f"?{query}" if query else "")
                raise web.HTTPPermanentRedirect(location)
    return await handler(request)


ERROR_PICTURE_SIZE = (640, 360)
"""Width and height, in pixels, of the picture an ``<img>`` gets for an error."""
ERROR_PICTURE_MAX_CHARS = 100
"""The longest message an error picture shows; longer ones (a 404 repeats the camera id of
the request, up to ``max_header_bytes`` long) are cut, so drawing one costs a few ms."""


@functools.lru_cache(maxsize=32)
def error_picture(title: str, message: str) -> bytes:
    """What an ``<img>`` shows for an error instead of a broken-image icon: a JPEG.

    It is ``ERROR_PICTURE_SIZE``, saying ``title`` (``404 Not Found``) and ``message`` (cut
    to ``ERROR_PICTURE_MAX_CHARS``). Recent ones are kept (an index page asks for a down
    camera's snapshot every ``SNAPSHOT_REFRESH_S``).
    """
    if len(message) > ERROR_PICTURE_MAX_CHARS:
        message = message[: ERROR_PICTURE_MAX_CHARS - 3] + "..."
    return render_lines([(title, TITLE_COLOUR, 1.0), (message, TEXT_COLOUR, 0.55)], ERROR_PICTURE_SIZE)


KEPT_HEADERS = frozenset({"retry-after", "allow", "cache-control", "www-authenticate"})
"""Headers of an error that its answer keeps (lowercase), each value of a repeated one."""


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer errors in the form the client can show (``clients.client_kind``).

    That is a small HTML page for a browser navigating, a picture of the error for an
    ``<img>`` (browsers paint an image body whatever the status), JSON for everything else.

    An unexpected exception is logged with its traceback and answered 500 without it.
    """
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return await _error_response(request, error.status, error.reason, error.text or error.reason, error.headers)
    except Exception:
        log.exception("error while answering %s %s", request.method, request.path)
        return await _error_response(request, 500, "Internal Server Error", "internal error; see the server log", {})


async def _error_response(
    request: web.Request, status: int, reason: str, message: str, headers: Mapping[str, str]
) -> web.Response:
    """The error ``status`` for the kind of client of ``request``, keeping ``KEPT_HEADERS`` of ``headers``."""
    extra = CIMultiDict((name, value) for name, value in headers.items() if name.lower() in KEPT_HEADERS)
    kind = client_kind(request)
    if kind is ClientKind.PAGE:
        context = {"status": status, "reason": reason, "message": message}
        response = render("error.html", request, context, status=status)
        response.headers.extend(extra)
        return response
    if kind is ClientKind.IMAGE:
        jpeg = await asyncio.to_thread(error_picture, f"{status} {reason}", message)
        # An error picture held in a browser's cache would hide the camera once it is back.
        extra.update({"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
        return web.Response(status=status, body=jpeg, content_type="image/jpeg", headers=extra)
    return web.json_response({"error": reason, "status": status, "message": message}, status=status, headers=extra)
