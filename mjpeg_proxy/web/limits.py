"""Admission limits: viewers per camera and in all, requests per client address.

Every refusal is counted by reason (``REASONS``, in ``app[REFUSALS]``) and logged,
summarised (``FLOOD_LOG``). The client's address is the peer's, or the one a trusted
reverse proxy forwards (``client_address``).
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler

from mjpeg_proxy.camera.camera import Camera
from mjpeg_proxy.web.appkeys import CAMERAS, CONFIG, FLOOD_LOG, REFUSALS

log = logging.getLogger(__name__)

REASONS = ("camera_full", "server_full", "client_limit", "bad_request", "hotlink", "operator_only", "signed_link")
"""Why a request was refused: a camera's ``max_viewers_per_camera`` or the server's
``max_viewers`` reached (503), a client's ``max_connections_per_client`` reached (429),
a malformed request, header lines over ``max_header_bytes`` included (400), a page of
a site not in ``embed_origins`` showing a stream or snapshot (403, ``web.hotlink``), or an
operator page asked for by someone the operator settings do not admit (401 or 403,
``web.operators``), or a signed camera asked for without a valid link (403, ``web.access``)."""
RETRY_AFTER_S = 10
"""The ``Retry-After`` of a refusal, in seconds."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# An X-Forwarded-For hop with a port, as Azure Application Gateway and IIS ARR write it.
_ADDRESS_WITH_PORT_RE = re.compile(r"\[(?P<v6>[^\]]+)\](?::\d+)?|(?P<v4>[\d.]+):\d+")


@dataclass
class _Admission:
    """Per-client state of one application.

    Requests in progress by client address, and which hints about a reverse proxy were
    logged (each once per process).
    """

    in_progress: collections.Counter[str] = field(default_factory=collections.Counter)
    hints_logged: set[str] = field(default_factory=set)


_ADMISSION = web.AppKey("admission", _Admission)


def client_address(request: web.Request) -> str:
    """The address of the client a request is for.

    The peer's address, unless the peer is in ``trusted_proxies``: then the rightmost
    address in ``X-Forwarded-For`` that is not itself a trusted proxy (each proxy appends
    the address it got the request from; the ones left of an untrusted hop could be
    forged), or the leftmost when all are trusted. A malformed header counts as no header.
    An IPv4-mapped IPv6 address counts as its IPv4 address, and a hop may carry a port.
    """
    peer, peer_is_trusted = _peer(request)
    if not peer_is_trusted:
        return peer
    trusted = request.app[CONFIG].server.trusted_proxies
    forwarded = ",".join(request.headers.getall("X-Forwarded-For", ()))
    hop_ips = [parse_address(hop) for hop in forwarded.split(",") if hop.strip()]
    for hop_ip in reversed(hop_ips):
        if hop_ip is None:
            return peer
        if not _is_in(hop_ip, trusted):
            return str(hop_ip)
    return str(hop_ips[0] if hop_ips else peer)


def from_trusted_proxy(request: web.Request) -> bool:
    """Whether ``request`` comes from an address in ``trusted_proxies``.

    Those are reverse proxies whose ``X-Forwarded-*`` headers are believed.
    """
    return _peer(request)[1]


def _peer(request: web.Request) -> tuple[str, bool]:
    """The peer's address and whether it is in ``trusted_proxies``.

    The address is as ``parse_address`` reads it, when it can; else as the socket gave it.
    """
    peer_ip = parse_address(request.remote or "")
    if peer_ip is None:
        return request.remote or "", False
    return str(peer_ip), _is_in(peer_ip, request.app[CONFIG].server.trusted_proxies)


def parse_address(text: str) -> IPAddress | None:
    """The IP address in ``text`` (a peer address or an ``X-Forwarded-For`` hop), or None.

    Takes ``192.0.2.1``, ``2001:db8::1``, and with a port ``192.0.2.1:4711`` or
    ``[2001:db8::1]:4711``; an IPv4-mapped IPv6 address (``::ffff:192.0.2.1``, a
    dual-stack socket's view of an IPv4 peer) is returned as the IPv4 address.
    """
    text = text.strip()
    match = _ADDRESS_WITH_PORT_RE.fullmatch(text)
    if match:
        text = match["v6"] or match["v4"]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _is_in(ip: IPAddress, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    """Whether ``ip`` is in one of ``networks``."""
    return any(ip in network for network in networks)


def refuse(
    request: web.Request,
    reason: str,
    error: type[web.HTTPException],
    message: str,
    retry_after_s: int | None = RETRY_AFTER_S,
) -> web.HTTPException:
    """Count a refusal of ``reason`` (one of ``REASONS``) and return the error to raise.

    The error carries ``message`` and ``Retry-After: retry_after_s`` (none for None: a
    refusal that waiting does not end). The refusal is logged (``count_refusal``).
    """
    count_refusal(request, reason, message)
    return error(text=message, headers=None if retry_after_s is None else {"Retry-After": str(retry_after_s)})


def count_refusal(request: web.Request, reason: str, message: str) -> None:
    """Count a refusal of ``request`` for ``reason`` (one of ``REASONS``) and log it at info level.

    The log line carries ``message`` and is summarised (``FLOOD_LOG``).
    """
    request.app[REFUSALS][reason] += 1
    address = client_address(request)
    request.app[FLOOD_LOG].event(
        log,
        f"refusals ({reason})",
        address,
        f"refused {request.method} {request.path} from {address} ({reason}): {message}",
    )


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
    """Refuse a request with 429 while its client has ``max_connections_per_client`` in progress.

    A stream is in progress for as long as it plays. Requests for ``MONITORING_PATHS`` are
    neither refused nor counted.
    """
    if request.path in MONITORING_PATHS:
        return await handler(request)
    address = client_address(request)
    admission = request.app[_ADMISSION]
    in_progress = admission.in_progress
    limit = request.app[CONFIG].server.max_connections_per_client
    if in_progress[address] >= limit:
        _hint_at_proxy_settings(request, admission.hints_logged, limit)
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


def _hint_at_proxy_settings(request: web.Request, hints_logged: set[str], limit: int) -> None:
    """Say once, at warning, which setting to change when clients seem to share an address.

    That is when a refusal by the per-client limit looks like a reverse proxy's clients
    sharing one address: nginx without ``trusted_proxies``, or without ``X-Forwarded-For``
    (nginx sends none by default).
    """
    peer, peer_is_trusted = _peer(request)
    forwarded = "X-Forwarded-For" in request.headers
    if not peer_is_trusted and forwarded and "untrusted" not in hints_logged:
        hints_logged.add("untrusted")
        log.warning(
            "requests from %s carry X-Forwarded-For, but that address is not in [server] trusted_proxies, so "
            "every client behind it shares one per-client limit (max_connections_per_client = %d); if %s is "
            "your reverse proxy, add it to trusted_proxies",
            peer,
            limit,
            peer,
        )
    elif peer_is_trusted and not forwarded and "unforwarded" not in hints_logged:
        hints_logged.add("unforwarded")
        log.warning(
            "requests from %s, a trusted proxy, carry no X-Forwarded-For, so every client behind it shares one "
            "per-client limit (max_connections_per_client = %d); if %s is a reverse proxy, have it send the "
            "client's address (nginx: proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;)",
            peer,
            limit,
            peer,
        )


def setup(app: web.Application) -> None:
    """Install the per-client limit and the refusal counters on ``app``."""
    app[REFUSALS] = collections.Counter({reason: 0 for reason in REASONS})
    app[_ADMISSION] = _Admission()
    app.middlewares.append(per_client_limit)


def access_logger_class(app: web.Application) -> type[AbstractAccessLogger]:
    """An aiohttp access-logger class that counts the requests answered 400.

    They are counted in ``app[REFUSALS]["bad_request"]``: ones aiohttp could not parse or
    whose request line or a header field is over ``max_header_bytes`` (refused before
    routing, so no middleware sees them), and ones with bad query parameters. It logs
    nothing; pass it to ``run_app`` as ``access_log_class``.
    """
    refusals = app[REFUSALS]

    class RefusalCounter(AbstractAccessLogger):
        """Counts, and logs nothing."""

        def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
            if response.status == 400:
                refusals["bad_request"] += 1

    return RefusalCounter
