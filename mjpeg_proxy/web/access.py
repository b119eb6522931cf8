"""Who may open a camera: anyone (``access = "public"``), or whoever has a signed link (``"signed"``)."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from mjpeg_proxy.camera.camera import Camera
from mjpeg_proxy.web.appkeys import CAMERA_SET, CONFIG
from mjpeg_proxy.web.signing import EXPIRES, LinkRefused, sign, verify


def require_link(request: web.Request, camera: Camera) -> None:
    """Let ``request`` through to a signed camera only with a valid link to its path (``signing.verify``).

    Raises:
        web.HTTPForbidden: the link is missing, tampered with, expired or signed with a
            key no longer accepted; the text is the short reason (a page for a browser,
            JSON for tools, through ``pages.error_pages``).
    """
    if camera.config.access != "signed":
        return
    keys = request.app[CONFIG].server.signing_keys
    try:
        verify(keys, request.path, request.query.items(), request.app[CAMERA_SET].timing.clock.wall())
    except LinkRefused as refused:
        raise web.HTTPForbidden(text=str(refused)) from None


def signed_like(request: web.Request, camera: Camera, path: str, relative: str) -> str:
    """``relative`` (a link a page of ``request`` holds to ``path``), signed to expire with the page's own link.

    Public cameras' links are returned as they are.
    """
    if camera.config.access != "signed":
        return relative
    key = request.app[CONFIG].server.signing_keys[0]
    query = urlsplit(sign(key, path, int(request.query[EXPIRES]))).query
    return f"{relative}?{query}"
