"""Pages for people (camera list, kiosk), the health check, and error answers."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import aiohttp_jinja2
from aiohttp import web

from mjpeg_proxy.appkeys import CAMERAS, CONFIG, camera_from_request

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


MAX_LIVE_TILES = 4
"""Browsers open at most 6 HTTP/1.1 connections to one host and a live stream holds one
for as long as it plays; past this many cameras the index shows refreshed snapshots, so
the page, its other requests and every tile keep working."""
SNAPSHOT_REFRESH_S = 1


@aiohttp_jinja2.template("index.html")
async def index(request: web.Request) -> dict[str, object]:
    """``GET /``: every camera with its name: live ``<img>`` streams for up to 4 cameras,
    else snapshots refreshed every second (each linking to its live page)."""
    cameras = list(request.app[CAMERAS].values())
    live = len(cameras) <= MAX_LIVE_TILES
    return {
        "cameras": cameras,
        "live": live,
        "refresh_seconds": SNAPSHOT_REFRESH_S,
        "reload_seconds": reload_seconds(request) if live else None,
    }


@aiohttp_jinja2.template("kiosk.html")
async def kiosk(request: web.Request) -> dict[str, object]:
    """``GET /cameras/{camera_id}``: one camera filling the window, for kiosk screens."""
    camera = camera_from_request(request)
    # Relative to /cameras/{id}: works unchanged under a path prefix behind a proxy.
    return {"camera": camera, "stream_src": f"{camera.id}/stream.mjpg", "reload_seconds": reload_seconds(request)}


def reload_seconds(request: web.Request) -> int | None:
    """When a page with live streams should reload itself: just after its streams end
    (``max_stream_seconds``), or never when streams do not end."""
    limit = request.app[CONFIG].server.max_stream_seconds
    return None if limit is None else int(limit) + 2


async def healthz(request: web.Request) -> web.Response:
    """``GET /healthz``: 200 ``ok`` while the server runs."""
    return web.Response(text="ok")


def wants_html(request: web.Request) -> bool:
    """True when the client is a browser asking for a page (its Accept lists text/html)."""
    return "text/html" in request.headers.get("Accept", "")


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer errors as a small HTML page for browsers and JSON for everything else.

    An unexpected exception is logged with its traceback and answered 500 without it.
    """
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return _error_response(request, error.status, error.reason, error.text or error.reason, error.headers)
    except Exception:
        log.exception("error while answering %s %s", request.method, request.path)
        return _error_response(request, 500, "Internal Server Error", "internal error; see the server log", {})


def _error_response(request: web.Request, status: int, reason: str, message: str, headers: object) -> web.Response:
    extra = {k: v for k, v in dict(headers).items() if k in ("Retry-After", "Allow", "Cache-Control")}  # type: ignore[call-overload]
    if wants_html(request):
        response = aiohttp_jinja2.render_template(
            "error.html", request, {"status": status, "reason": reason, "message": message}, status=status
        )
        response.headers.update(extra)
        return response
    return web.json_response({"error": reason, "status": status, "message": message}, status=status, headers=extra)
