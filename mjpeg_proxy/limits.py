"""Admission limits: viewers per camera and in all, requests per client address, and
the count of every refusal."""

from __future__ import annotations

import collections
import ipaddress
import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from mjpeg_proxy.appkeys import CAMERAS, CONFIG, REFUSALS
from mjpeg_proxy.camera import Camera
from mjpeg_proxy.pages import Handler

log = logging.getLogger(__name__)

REASONS = ("camera_full", "server_full", "client_limit", "bad_request")
"""Why a request was refused: a camera's ``max_viewers_per_camera`` or the server's
``max_viewers`` reached (503), a client's ``max_connections_per_client`` reached (429),
or a malformed request, header lines over ``max_header_bytes`` included (400)."""
RETRY_AFTER_S = 10
_IN_PROGRESS = web.AppKey("requests_in_progress", collections.Counter)


def client_address(request: web.Request) -> str:
    """The address of the client a request is for.

    The peer's address, unless the peer is in ``trusted_proxies``: then the rightmost
    address in ``X-Forwarded-For`` that is not itself a trusted proxy (each proxy appends
    the address it got the request from; the ones left of an untrusted hop could be
    forged). A malformed header counts as no header.
    """
    peer = request.remote or ""
    trusted = request.app[CONFIG].server.trusted_proxies
    if not trusted or not _is_in(peer, trusted):
        return peer
    forwarded = ",".join(request.headers.getall("X-Forwarded-For", ()))
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer
        if not _is_in(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _is_in(address: str, networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def refuse(request: web.Request, reason: str, error: type[web.HTTPException], message: str) -> web.HTTPException:
    """Count a refusal of ``reason`` (one of REASONS) and return the error to raise, with
    ``Retry-After``; the refusal is logged at info level."""
    request.app[REFUSALS][reason] += 1
    log.info("refused %s %s from %s: %s", request.method, request.path, client_address(request), message)
    return error(text=message, headers={"Retry-After": str(RETRY_AFTER_S)})


def check_viewer_limits(request: web.Request, camera: Camera) -> None:
    """Refuse a new stream viewer of ``camera`` past ``max_viewers_per_camera`` or ``max_viewers``.

    Raises:
        web.HTTPServiceUnavailable: a limit is reached (counted in ``app[REFUSALS]``).
    """
    server = request.app[CONFIG].server
    if camera.hub.viewers >= server.max_viewers_per_camera:
        raise refuse(
            request,
            "camera_full",
            web.HTTPServiceUnavailable,
            f"camera {camera.id!r} has {server.max_viewers_per_camera} viewers, the most it serves; try again later",
        )
    if sum(c.hub.viewers for c in request.app[CAMERAS].values()) >= server.max_viewers:
        raise refuse(
            request,
            "server_full",
            web.HTTPServiceUnavailable,
            f"the server has {server.max_viewers} viewers, the most it serves; try again later",
        )


MONITORING_PATHS = frozenset({"/healthz", "/metrics"})
"""Paths the per-client limit never refuses: monitoring must get through even from an
address whose viewers use up the limit (a NAT, or nginx without ``trusted_proxies``)."""


@web.middleware
async def per_client_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a request with 429 while its client already has ``max_connections_per_client``
    requests in progress (a stream is in progress for as long as it plays); requests for
    MONITORING_PATHS are neither refused nor counted."""
    if request.path in MONITORING_PATHS:
        return await handler(request)
    address = client_address(request)
    in_progress = request.app[_IN_PROGRESS]
    limit = request.app[CONFIG].server.max_connections_per_client
    if in_progress[address] >= limit:
        raise refuse(
            request,
            "client_limit",
            web.HTTPTooManyRequests,
            f"this address already has {limit} requests in progress, the most allowed; close some streams",
        )
    in_progress[address] += 1
    try:
        return await handler(request)
    finally:
        in_progress[address] -= 1
        if not in_progress[address]:
            del in_progress[address]


def setup(app: web.Application) -> None:
    """Install the per-client limit and the refusal counters on ``app``."""
    app[REFUSALS] = collections.Counter({reason: 0 for reason in REASONS})
    app[_IN_PROGRESS] = collections.Counter()
    app.middlewares.append(per_client_limit)


def access_logger_class(app: web.Application) -> type[AbstractAccessLogger]:
    """An aiohttp access-logger class that counts, in ``app[REFUSALS]["bad_request"]``,
    the requests answered 400: ones aiohttp could not parse or whose request line or a
    header field is over ``max_header_bytes`` (refused before routing, so no middleware
    sees them), and ones with bad query parameters. It logs nothing; pass it to
    ``run_app`` as ``access_log_class``."""
    refusals = app[REFUSALS]

    class RefusalCounter(AbstractAccessLogger):
        def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
            if response.status == 400:
                refusals["bad_request"] += 1

    return RefusalCounter
