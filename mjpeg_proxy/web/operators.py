"""The operator pages (``/status``, ``/api/...``, ``/metrics``), kept to the owner when so configured.

A request is admitted when ``[server] operator_networks`` and ``operator_token_env`` are
both unset (open to all, the default), when its client address (``limits.client_address``:
``X-Forwarded-For`` only from ``trusted_proxies``) is in ``operator_networks``, or when it
carries the operator token: as ``Authorization: Bearer <token>`` (RFC 6750, section 2.1;
Prometheus' ``authorization`` or ``bearer_token_file``), or as the password of HTTP Basic
auth with any user name (RFC 7617), so that a person can open ``/status`` in a browser's
login prompt. Tokens are compared in constant time (``hmac.compare_digest``).

A request from a peer that is not in ``trusted_proxies`` but names a client in a
forwarding header (``FORWARDING_HEADERS``) comes through a relay the proxy does not
believe: nginx with ``trusted_proxies = []``, whose own address would otherwise lend every
client behind it the operator network. It is not admitted by network (the token still
works), and the log says once, at warning, which address to trust.

Anyone else gets 401 with both challenges when a token is configured (a browser offers its
login prompt for the Basic one), else 403; the text says no more than that the page is
for operators. Refusals are counted under ``operator_only`` (``limits.REASONS``).
CORS preflights (``OPTIONS``) are let through: browsers send no credentials with them.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp.web_urldispatcher import AbstractResource
from multidict import CIMultiDict

from mjpeg_proxy.config import ServerConfig
from mjpeg_proxy.web.appkeys import CONFIG
from mjpeg_proxy.web.limits import client_address, count_refusal, from_trusted_proxy, parse_address

log = logging.getLogger(__name__)

ROUTES = ("status", "api_cameras", "api_camera", "metrics")
"""The names of the operator routes (``web.app``)."""
CHALLENGES = ('Bearer realm="mjpeg-proxy"', 'Basic realm="mjpeg-proxy operator pages", charset="UTF-8"')
"""The ``WWW-Authenticate`` challenges of a refusal when a token is configured (RFC 6750, 3; RFC 7617, 2)."""
FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")
"""Headers by which a reverse proxy names the client it forwards for (RFC 7239 and the de facto ones)."""
_RESOURCES = web.AppKey("operator_resources", set[AbstractResource])
_RELAYS_WARNED = web.AppKey("operator_relays_warned", set[str])


def setup(app: web.Application, resources: Iterable[AbstractResource]) -> None:
    """Keep ``resources`` of ``app`` (its operator routes) to the requests ``admitted`` admits."""
    app[_RESOURCES] = set(resources)
    app[_RELAYS_WARNED] = set()
    app.middlewares.append(operators_only)


def is_restricted(server: ServerConfig) -> bool:
    """Whether ``server`` keeps the operator pages to some (an operator network or token is set)."""
    return bool(server.operator_networks) or server.operator_token is not None


def admitted(request: web.Request, server: ServerConfig) -> bool:
    """Whether ``request`` may see the operator pages under ``server``'s settings (see the module)."""
    if not is_restricted(server):
        return True
    if server.operator_networks and _in_operator_networks(request, server):
        return True
    token = server.operator_token
    return token is not None and any(
        hmac.compare_digest(given.encode(), token.encode()) for given in _offered_tokens(request)
    )


def _in_operator_networks(request: web.Request, server: ServerConfig) -> bool:
    """Whether ``request``'s client is in ``operator_networks``; never through an untrusted relay (see the module)."""
    ip = parse_address(client_address(request))
    if ip is None or not any(ip in network for network in server.operator_networks):
        return False
    if from_trusted_proxy(request) or not any(name in request.headers for name in FORWARDING_HEADERS):
        return True
    if not request.app[_RELAYS_WARNED]:  # once: the relay forwards every client's requests
        request.app[_RELAYS_WARNED].add(str(ip))
        log.warning(
            "requests from %s name the client they are forwarded for, but %s is not in [server] trusted_proxies, "
            "so its own address in operator_networks does not admit them to the operator pages; if %s is your "
            "reverse proxy, add it to trusted_proxies",
            ip,
            ip,
            ip,
        )
    return False


def _offered_tokens(request: web.Request) -> list[str]:
    """The tokens ``request`` offers: a Bearer token, or a Basic password (any user name); none if malformed."""
    scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return [value]
    if scheme.lower() == "basic":
        try:
            _, colon, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return []
        return [password] if colon else []
    return []


@web.middleware
async def operators_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a request for an operator route that ``admitted`` does not admit.

    Raises:
        web.HTTPUnauthorized: a token is configured and the request carries no right one
            (with ``CHALLENGES``).
        web.HTTPForbidden: only ``operator_networks`` is set and the client is outside them.
    """
    if request.match_info.route.resource not in request.app[_RESOURCES] or request.method == "OPTIONS":
        return await handler(request)
    server = request.app[CONFIG].server
    if admitted(request, server):
        return await handler(request)
    message = "this page is for the proxy's operators"
    count_refusal(request, "operator_only", message)
    if server.operator_token is None:
        raise web.HTTPForbidden(text=message)
    headers = CIMultiDict(("WWW-Authenticate", challenge) for challenge in CHALLENGES)
    raise web.HTTPUnauthorized(text=f"{message}; sign in with the operator token", headers=headers)


def warn_if_open(server: ServerConfig) -> None:
    """Log once, as a warning, that the operator pages are open to all, when others than this machine can reach them."""
    ip = parse_address(server.host)
    loopback = server.host == "localhost" or (ip is not None and ip.is_loopback)
    if not is_restricted(server) and not loopback:
        log.warning(
            "the operator pages (/status, /api/, /metrics) are open to everyone who can reach %s: set [server] "
            "operator_networks or operator_token_env to keep them to yourself",
            server.host,
        )
