"""Who is asking: a browser navigating, a browser ``<img>``, or a player or tool.

Decided once per request, here only, from the request headers. What each kind gets:

=========  ======================================  =====================================
kind       ``stream.mjpg``                         an error
=========  ======================================  =====================================
``PAGE``   a page holding the stream as ``<img>``  the HTML error page
``IMAGE``  the browser framing (headers ahead)     a picture of the error
``TOOL``   parts with exact ``Content-Length``     JSON
=========  ======================================  =====================================

The rules, first match wins:

1. ``Sec-Fetch-Dest`` (W3C Fetch Metadata): ``document``, ``iframe`` or ``frame`` is a
   navigation, ``image`` an image, anything else (``empty`` for ``fetch()``) a tool, but
   for a ``fetch()`` that lists an image type first in ``Accept``: an image (the index's
   snapshot refresh, which shows what it gets as an ``<img>`` would).
   Browsers send it only to potentially trustworthy origins (https, localhost), so an
   ``<img>`` on a plain-http LAN page comes without it, and the next rules decide.
2. Without it, only a ``User-Agent`` that starts with ``Mozilla/`` can be a browser (every
   browser's has since the 1990s; of the tools below, only tornado's pycurl client, which
   motionEye uses, sends one, with ``Accept: */*``).
3. A browser navigating lists both ``text/html`` and ``application/xhtml+xml`` in
   ``Accept`` (the Fetch standard's navigation default, and what Chromium, Firefox and
   Safari send); Java's default ``Accept`` (``text/html, image/gif, image/jpeg, */*;
   q=0.2``) lists ``text/html`` but not XHTML.
4. A browser loading an image lists an image type first (``image/avif``, ``image/webp``,
   ``image/png``: the Fetch standard's image default and every current browser's).
5. Everything else is a tool: curl, wget, ffmpeg and OpenCV (``Lavf``), VLC, GStreamer,
   Python (requests, urllib, aiohttp), Go, Java, Home Assistant, motion and motionEye send
   ``Accept: */*`` or none. ``tests/client_headers.py`` holds each one's real headers.

Here too, for the hot-link check (``web.hotlink``): which site a browser says the request
comes from (``fetch_site``).
"""

from __future__ import annotations

import enum

from aiohttp import web
from multidict import CIMultiDictProxy

NAVIGATION_DESTINATIONS = frozenset({"document", "iframe", "frame"})
"""``Sec-Fetch-Dest`` values of a navigation (Fetch Metadata Request Headers, section 2.1)."""


class ClientKind(enum.StrEnum):
    """What kind of client sent a request (see the module's rules)."""

    PAGE = "page"
    """A browser navigating: the address bar, a link, an iframe."""
    IMAGE = "image"
    """A browser loading an ``<img>`` (or a CSS image)."""
    TOOL = "tool"
    """A player, a library, a script, a page's ``fetch()``: anything that is not one of the above."""


_KIND = web.RequestKey("client_kind", ClientKind)


def client_kind(request: web.Request) -> ClientKind:
    """The kind of client that sent ``request``, decided on first use and kept for the request."""
    kind = request.get(_KIND)
    if kind is None:
        kind = request[_KIND] = _classify(request.headers)
    return kind


def fetch_site(request: web.Request) -> str | None:
    """How the page that sent ``request`` stands to the proxy, as the browser says: ``Sec-Fetch-Site``.

    ``same-origin``, ``same-site``, ``cross-site`` or ``none`` (the user's own navigation),
    lowercase (W3C Fetch Metadata Request Headers, 2.4). None without the header: a tool,
    an old browser, or a page whose origin is not potentially trustworthy (plain http
    other than localhost), for which browsers do not send it.
    """
    site = request.headers.get("Sec-Fetch-Site")
    return None if site is None else site.strip().lower()


def _classify(headers: CIMultiDictProxy[str]) -> ClientKind:
    """The kind of client that sent ``headers``, by the module's rules."""
    destination = headers.get("Sec-Fetch-Dest")
    accepted = media_ranges(",".join(headers.getall("Accept", ())))
    if destination is not None:
        destination = destination.strip().lower()
        if destination in NAVIGATION_DESTINATIONS:
            return ClientKind.PAGE
        asks_image = destination == "empty" and bool(accepted) and accepted[0].startswith("image/")
        return ClientKind.IMAGE if destination == "image" or asks_image else ClientKind.TOOL
    if not headers.get("User-Agent", "").startswith("Mozilla/"):
        return ClientKind.TOOL
    if "text/html" in accepted and "application/xhtml+xml" in accepted:
        return ClientKind.PAGE
    if accepted and accepted[0].startswith("image/"):
        return ClientKind.IMAGE
    return ClientKind.TOOL


def media_ranges(accept: str) -> list[str]:
    """The media ranges an ``Accept`` value lists, in its order, lowercase, without parameters.

    Left out are those with ``q=0`` (not acceptable, RFC 9110, 12.4.2) and anything that
    is not ``type/subtype`` (Java's old default sends a bare ``*``).
    """
    ranges = []
    for item in accept.split(","):
        media_range, *parameters = (piece.strip() for piece in item.split(";"))
        if media_range.count("/") != 1 or not all(media_range.split("/")):
            continue
        weights = [value for name, _, value in (p.partition("=") for p in parameters) if name.strip().lower() == "q"]
        try:
            acceptable = float(weights[0]) > 0 if weights else True
        except ValueError:
            acceptable = True
        if acceptable:
            ranges.append(media_range.lower())
    return ranges
