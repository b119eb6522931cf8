"""Hot-linking: which sites' pages may show the cameras (``[server] embed_origins``).

With the default ``["*"]`` every site may, as before, and nothing here acts. With a list,
a stream or snapshot request (``check_embedder``, called by their handlers) is decided so,
first match wins:

1. A browser navigating (``ClientKind.PAGE``: the address bar, a link, a frame) is let
   through: it gets the proxy's own page or picture, at the proxy's address, and another
   site cannot frame that (below).
2. A request with neither ``Origin`` nor ``Referer`` is let through: players and tools
   (VLC, ffmpeg, curl), and browsers whose privacy settings, or the page's
   ``referrerpolicy="no-referrer"``, leave them out; unless the browser says the page is
   of another site (``Sec-Fetch-Site: cross-site`` or ``same-site``, sent over https and
   to localhost): another site hiding itself, refused as an unknown site (rule 4). Over
   plain http browsers do not say, and a site can hide itself that way.
3. The proxy's own pages are let through: the browser says ``Sec-Fetch-Site:
   same-origin`` (every current browser, to https and to localhost); without that
   header, the page's host and port are those of the request's ``Host`` (with the page's
   scheme: behind a TLS proxy the proxy cannot see the one the browser used). A reverse
   proxy that rewrites ``Host``, on plain http, needs the site's own origin in the list.
4. Otherwise the site is the origin of ``Origin``, else of ``Referer`` (the page's
   address; browsers send another site only its origin by default). A site in the list is
   served. Any other, ``null`` (a sandboxed or local page, whose site is hidden) and a
   header that is no URL are refused with 403 and a short reason, counted as ``hotlink``
   in the refusals; ``pages.error_pages`` answers an ``<img>`` with a picture of it, so the
   other site's owner sees why.

``Origin`` and ``Referer`` are what a browser says; any script or tool can send others, or
none. The list stops other sites from showing a camera to their visitors, not a determined
person: signed links (``web.access``) are the real protection.

Every answer (pages, errors, pictures) carries ``Content-Security-Policy: frame-ancestors
'self' <origins>`` when the list is set, so only those sites can show the proxy's pages in
a frame (CSP Level 2 and 3, every current browser); an IPv6 address cannot be written in a
CSP source, so a site at one cannot frame them. ``X-Frame-Options`` is not sent: it cannot
name other sites, and browsers ignore it beside ``frame-ancestors`` (CSP Level 3, 6.4.2).
"""

from __future__ import annotations

from aiohttp import web
from yarl import URL

from mjpeg_proxy.config import ANY_ORIGIN
from mjpeg_proxy.web.appkeys import CONFIG
from mjpeg_proxy.web.clients import ClientKind, client_kind, fetch_site
from mjpeg_proxy.web.limits import refuse

_OTHER_SITE = frozenset({"cross-site", "same-site"})
"""What ``Sec-Fetch-Site`` says of a page that is not the proxy's own."""
REFUSAL = "this camera may only be shown on its owner's site"
"""The reason a refused request is given (the page of another site shows it in the picture)."""


def check_embedder(request: web.Request) -> None:
    """Let a stream or snapshot ``request`` through only from a site ``embed_origins`` allows (module rules).

    Raises:
        web.HTTPForbidden: the page asking is of a site not in the list (counted as
            ``hotlink`` in ``REFUSALS``).
    """
    allowed = request.app[CONFIG].server.embed_origins
    if ANY_ORIGIN in allowed or client_kind(request) is ClientKind.PAGE:
        return
    header = request.headers.get("Origin") or request.headers.get("Referer")
    if header is None and fetch_site(request) not in _OTHER_SITE:
        return
    site = None if header is None else _origin(header)
    if site in allowed or _is_own_page(request, site):
        return
    shown = "an unknown site" if site is None else site[:100]
    raise refuse(request, "hotlink", web.HTTPForbidden, f"{REFUSAL}, not on {shown}", retry_after_s=None)


def _is_own_page(request: web.Request, site: str | None) -> bool:
    """Whether the page at ``site`` (an origin, None for an unknown one) is the proxy's own (rule 3)."""
    said = fetch_site(request)
    if said is not None:
        return said == "same-origin"
    return site is not None and _origin(f"{URL(site).scheme}://{request.headers.get('Host', '')}") == site


def _origin(address: str) -> str | None:
    """The origin of ``address`` as browsers write an ``Origin`` header, or None for what names no site.

    That is how ``config.server`` writes the lists; None is for ``null``, a relative or a
    malformed address.
    """
    try:
        url = URL(address)
        return str(url.origin()) if url.absolute and url.raw_host else None
    except ValueError:
        return None


def setup(app: web.Application) -> None:
    """Have every answer of ``app`` say which sites may frame it (``Content-Security-Policy: frame-ancestors``)."""
    app.on_response_prepare.append(_frame_ancestors)


async def _frame_ancestors(request: web.Request, response: web.StreamResponse) -> None:
    """Add ``frame-ancestors`` to a response, just before it is sent, when ``embed_origins`` is a list."""
    allowed = request.app[CONFIG].server.embed_origins
    if ANY_ORIGIN not in allowed:
        response.headers["Content-Security-Policy"] = " ".join(("frame-ancestors 'self'", *allowed))
