"""Cross-origin use of streams, snapshots and the JSON API (CORS), preflight included.

The CORS protocol is the WHATWG Fetch standard's
(https://fetch.spec.whatwg.org/#http-cors-protocol).

Without it a page on another site can show a stream in an ``<img>`` but not draw it into a
``<canvas>`` it reads back, nor ``fetch()`` a snapshot or the API. No credentials are
involved (the cameras are public), so ``Access-Control-Allow-Credentials`` is never sent.

aiohttp-cors is not used: it always echoes the request's ``Origin`` instead of sending
``*``, and sends no ``Vary: Origin`` (aio-libs/aiohttp-cors#351, #384), so a shared cache
in front of the proxy could hand one site's answer to another.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractResource

from mjpeg_proxy.config import ANY_ORIGIN
from mjpeg_proxy.web.appkeys import CONFIG

ALLOWED_METHODS = "GET, HEAD"
"""The methods a cross-origin request may use (everything the proxy serves is read-only)."""
EXPOSED_HEADERS = "Retry-After"
"""Response headers a page may read besides the CORS-safelisted ones (Fetch, "CORS-safelisted
response-header name"): when to ask again after a 429 or 503."""
PREFLIGHT_MAX_AGE_S = 7200
"""How long, in seconds, a browser may cache a preflight answer: the most Chromium accepts."""

_RESOURCES = web.AppKey("cors_resources", set[AbstractResource])


def setup(app: web.Application, resources: Iterable[AbstractResource]) -> None:
    """Answer CORS on ``resources`` of ``app``.

    Preflights (``OPTIONS``) get ``preflight``'s answer, and every other response of
    theirs, errors included, gets the CORS headers for the request's ``Origin`` as
    ``[server] cors_origins`` allows it.
    """
    app[_RESOURCES] = set(resources)
    for resource in app[_RESOURCES]:
        assert isinstance(resource, web.Resource), resource  # a route's own resource, not a static folder
        resource.add_route("OPTIONS", preflight)
    app.on_response_prepare.append(_add_headers)


def allowed_origin(request: web.Request) -> str | None:
    """The ``Access-Control-Allow-Origin`` value for ``request``, or None.

    It is ``ANY_ORIGIN`` when any origin is allowed, the request's ``Origin`` when it is in
    ``cors_origins``, else None (no CORS headers).
    """
    origins = request.app[CONFIG].server.cors_origins
    if ANY_ORIGIN in origins:
        return ANY_ORIGIN
    origin = request.headers.get("Origin")
    return origin if origin in origins else None


async def preflight(request: web.Request) -> web.Response:
    """``OPTIONS`` on a CORS resource: 204 with ``Allow`` (RFC 9110, 9.3.7).

    For a CORS preflight (it carries ``Access-Control-Request-Method``) also
    ``ALLOWED_METHODS``, the request headers it asked for and ``Access-Control-Max-Age``
    (``PREFLIGHT_MAX_AGE_S``; Fetch, "CORS-preflight request"). The origin itself is
    answered by the response hook, as for every request.

    Raises:
        web.HTTPForbidden: a preflight from an origin ``cors_origins`` does not list.
    """
    headers = {"Allow": f"{ALLOWED_METHODS}, OPTIONS"}
    if "Access-Control-Request-Method" in request.headers:
        if allowed_origin(request) is None:
            raise web.HTTPForbidden(
                text=f"origin {request.headers.get('Origin', '(none)')[:100]!r} is not in [server] cors_origins"
            )
        headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
        headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_S)
        asked = request.headers.get("Access-Control-Request-Headers")
        if asked:
            headers["Access-Control-Allow-Headers"] = asked
    return web.Response(status=204, headers=headers)


async def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Add the CORS headers to a response of a CORS resource, just before it is sent."""
    if request.match_info.route.resource not in request.app[_RESOURCES]:
        return
    if ANY_ORIGIN not in request.app[CONFIG].server.cors_origins:
        # The answer depends on the Origin: a shared cache must keep one per origin
        # (Fetch, "CORS protocol and HTTP caches"). With "*" it is the same for all.
        vary = response.headers.get("Vary")
        response.headers["Vary"] = f"{vary}, Origin" if vary else "Origin"
    origin = allowed_origin(request)
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
