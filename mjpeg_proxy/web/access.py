"""Who may open a camera: anyone (``access = "public"``), or whoever has a signed link (``"signed"``)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from mjpeg_proxy.camera.camera import Camera
from mjpeg_proxy.config import ServerConfig
from mjpeg_proxy.web.appkeys import CAMERA_SET, CONFIG
from mjpeg_proxy.web.limits import refuse
from mjpeg_proxy.web.signing import EXPIRES, LinkRefused, sign, verify


def require_link(request: web.Request, camera: Camera) -> None:
    """Let ``request`` through to a signed camera only with a valid link to its path (``signing.verify``).

    Raises:
        web.HTTPForbidden: the link is missing, tampered with, expired or signed with a
            key no longer accepted; the text is the short reason (a page for a browser,
            JSON for tools, through ``pages.error_pages``). Counted and logged as
            ``signed_link`` (``limits.refuse``).
    """
    if camera.config.access != "signed":
        return
    keys = request.app[CONFIG].server.signing_keys
    try:
        verify(keys, request.path, request.query.items(), request.app[CAMERA_SET].timing.clock.wall())
    except LinkRefused as refused:
        raise refuse(request, "signed_link", web.HTTPForbidden, str(refused), retry_after_s=None) from None


Link = tuple[str, tuple[tuple[str, str], ...]]
"""A request's path and query parameters, in their order: what ``require_link`` checks."""


def request_link(request: web.Request) -> Link:
    """The ``Link`` of ``request``, kept by a stream to be checked again (``still_admits``)."""
    return request.path, tuple(request.query.items())


def still_admits(server: ServerConfig, camera: Camera, link: Link) -> bool:
    """Whether ``camera`` still admits a stream opened with ``link`` (a reload may make it signed, or drop a key).

    The expiry is not checked again: a stream playing when its link expires runs on,
    bounded by ``max_stream_seconds``.
    """
    if camera.config.access != "signed":
        return True
    try:
        verify(server.signing_keys, *link, now=0)  # as at the epoch: no link has expired then
    except LinkRefused:
        return False
    return True


def signed_like(request: web.Request, camera: Camera, path: str, relative: str) -> str:
    """``relative`` (a link a page of ``request`` holds to ``path``), signed to expire with the page's own link.

    Public cameras' links are returned as they are.
    """
    if camera.config.access != "signed":
        return relative
    key = request.app[CONFIG].server.signing_keys[0]
    query = urlsplit(sign(key, path, int(request.query[EXPIRES]))).query
    return f"{relative}?{query}"


INDEX_LINK_S = 3600
"""Signed links on the index are good for at least this many seconds, and at most twice that."""


def index_link_expiry(now: float) -> int:
    """When the index's signed links expire, seeing the page at ``now`` (both in seconds since the epoch).

    At the end of the next whole ``INDEX_LINK_S`` period: the page's links stay the same
    for a period (a reload asks for the same URLs), and are good for at least one.
    """
    return (int(now) // INDEX_LINK_S + 2) * INDEX_LINK_S


def index_link(request: web.Request, camera: Camera, path: str, params: Mapping[str, str] | None = None) -> str:
    """A link of the index to ``path`` (from the site's root, without its first slash) with ``params``.

    Signed with the first key to expire at ``index_link_expiry`` when ``camera`` is signed.
    """
    if camera.config.access != "signed":
        return f"{path}?{urlencode(params)}" if params else path
    key = request.app[CONFIG].server.signing_keys[0]
    expires = index_link_expiry(request.app[CAMERA_SET].timing.clock.wall())
    return sign(key, f"/{path}", expires, params).removeprefix("/")
