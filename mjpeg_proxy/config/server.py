"""The ``[server]`` table: where to listen, and the settings every stream shares."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from yarl import URL

from mjpeg_proxy.config.checks import (
    Check,
    Fail,
    Problem,
    check_table,
    integer_in,
    is_int,
    number_in,
    read_fields,
    secret_from_env,
)
from mjpeg_proxy.pictures.fonts import FontError, read_font
from mjpeg_proxy.pictures.resize import DEFAULT_MAX_PIXELS, MAX_PIXELS_LIMIT

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1"))
"""The default ``trusted_proxies``: a reverse proxy on the same machine. gunicorn's
``forwarded_allow_ips`` defaults to ``127.0.0.1,::1`` and uvicorn's to ``127.0.0.1``; this
takes the whole IPv4 loopback network, which is all this machine."""
ANY_ORIGIN = "*"

# A host as yarl gives it: a name in lowercase punycode, an IPv4 or IPv6 address.
_ORIGIN_HOST_RE = re.compile(r"[0-9a-z._:-]+")
_FONT_EXAMPLE = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
DEFAULT_WIDTHS = (320, 640, 1280)
WIDTH_RANGE = (16, 7680)
"""The narrowest and widest rung of ``widths``, in pixels (7680: an 8K frame's width)."""


@dataclass(frozen=True)
class ServerConfig:
    """The ``[server]`` table: where to listen and stream-wide settings.

    ``resend_seconds``: while a camera sends no new frame, each viewer gets the latest
    frame again after this many seconds, so idle connections stay open and viewers
    never sit on a half-finished part.

    ``write_timeout``: a viewer whose connection takes no bytes for this many seconds is
    closed. ``max_stream_seconds``: streams end (with the closing delimiter) after this
    many seconds, so kiosk pages reload cleanly; None for no limit.

    Limits: ``max_viewers_per_camera`` and ``max_viewers`` (streams open at once, per
    camera and in all; 503 past them); ``max_connections_per_client`` (requests in
    progress from one client address, streams included; 429 past it), where the address
    is taken from ``X-Forwarded-For`` only for requests coming from an address or network
    in ``trusted_proxies``; ``max_header_bytes`` (longest request line or header field;
    400 past it); ``request_timeout`` (seconds a connection may take to send a complete
    request head, and may stay idle between requests). ``trusted_proxies`` defaults to
    LOOPBACK; an empty tuple trusts nobody.

    ``cors_origins``: the origins (``scheme://host[:port]``, lowercase, without a default
    port) whose pages may read streams, snapshots and the JSON API across origins;
    ``(ANY_ORIGIN,)`` for any origin, an empty tuple for none.

    ``embed_origins``: the origins (written as ``cors_origins``) whose pages may show
    streams and snapshots and frame the proxy's pages (``web.hotlink``); ``(ANY_ORIGIN,)``
    for any site, an empty tuple for the proxy's own pages alone.

    ``font``: the path of a TrueType or OpenType font file to draw the text on pictures
    (the offline picture, the demo camera) with, before the default fonts
    (``mjpeg_proxy.pictures.fonts``); None for the defaults.

    ``max_upstream_requests_per_host``: short requests to one upstream host (scheme, host,
    port) in progress at once: snapshots, and MJPEG streams until their first frame.
    The default stays below the 6 users at once that small Dahua cameras allow
    (``sources.upstream_hosts``), so the device's own web page still gets in; a wall of
    cameras on one device starts in rounds of that many.

    ``signing_keys``: the keys signed links are checked with (``web.signing``), the one
    that signs first (``signing_key_env``), then older ones still accepted
    (``previous_signing_keys_env``, comma-separated); secrets, kept out of ``repr``.

    ``widths``: the ladder of widths (pixels, ascending) that ``?width=`` picks from
    (``web.widths``); ``max_resize_pixels``: a frame whose header announces more pixels
    than this is never decoded to be resized (``pictures.resize``).

    Operator pages (``/status``, ``/api/...``, ``/metrics``; ``web.operators``): open to
    requests from ``operator_networks`` or carrying ``operator_token`` (a secret, from
    ``operator_token_env``, kept out of ``repr``); to everyone when neither is set.
    ``index_signed_cameras``: to whom the index shows ``access = "signed"`` cameras, one of
    ``INDEX_SIGNED_CAMERAS``.
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    resend_seconds: float = 2.0
    write_timeout: float = 30.0
    max_stream_seconds: float | None = None
    max_viewers_per_camera: int = 1000
    max_viewers: int = 5000
    max_connections_per_client: int = 100
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = LOOPBACK
    max_header_bytes: int = 8190
    request_timeout: float = 15.0
    cors_origins: tuple[str, ...] = (ANY_ORIGIN,)
    embed_origins: tuple[str, ...] = (ANY_ORIGIN,)
    font: str | None = None
    max_upstream_requests_per_host: int = 4
    signing_keys: tuple[bytes, ...] = field(default=(), repr=False)
    widths: tuple[int, ...] = DEFAULT_WIDTHS
    max_resize_pixels: int = DEFAULT_MAX_PIXELS
    operator_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    operator_token: str | None = field(default=None, repr=False)
    index_signed_cameras: str = "hidden"


def parse_server(data: Any, path: str, environ: Mapping[str, str]) -> ServerConfig:
    """Check the ``[server]`` table of the file at ``path``; absent keys keep their defaults; secrets from ``environ``.

    Raises:
        ConfigError: a key is unknown or a value is wrong.
    """
    checks = _server_checks(path)
    fail = check_table(data, path, "server", {*checks, *SIGNING_KEYS, "operator_token_env"})
    values = read_fields(data, checks, fail)
    token = _operator_token(data, environ, fail)
    if values.get("index_signed_cameras") == "operators" and token is None and not values.get("operator_networks"):
        raise fail(
            "index_signed_cameras", '"operators" needs operator_networks or operator_token_env to know who they are'
        )
    return ServerConfig(**values, signing_keys=_signing_keys(data, environ, fail), operator_token=token)


def parse_signing_keys(data: Any, path: str, environ: Mapping[str, str]) -> tuple[bytes, ...]:
    """Only the signing keys of the ``[server]`` table of the file at ``path`` (``ServerConfig.signing_keys``).

    For ``mjpeg-proxy sign``, which needs no other secret of the file: those variables
    (camera passwords, the operator token) need not be set.

    Raises:
        ConfigError: ``[server]`` is no table, or a signing key's variable is not set or too short.
    """
    known = set(data) if isinstance(data, dict) else set()  # the other keys are the proxy's to check
    return _signing_keys(data, environ, check_table(data, path, "server", known))


SIGNING_KEYS = ("signing_key_env", "previous_signing_keys_env")
"""The ``[server]`` keys naming the environment variables of the signing keys."""
MIN_SIGNING_KEY_CHARS = 16
"""The shortest signing key accepted: a short one could be guessed from links."""


def _signing_keys(data: Mapping[str, Any], environ: Mapping[str, str], fail: Fail) -> tuple[bytes, ...]:
    """The signing key (``signing_key_env``), then the older ones still accepted (``previous_signing_keys_env``)."""
    current = secret_from_env(data, "signing_key_env", environ, fail)
    previous = secret_from_env(data, "previous_signing_keys_env", environ, fail)
    if previous is not None and current is None:
        raise fail("previous_signing_keys_env", "needs signing_key_env: only the current key signs")
    keys = [current] if current is not None else []
    keys += [key.strip() for key in (previous or "").split(",") if key.strip()]
    for key in keys:
        if len(key) < MIN_SIGNING_KEY_CHARS:
            which = "signing_key_env" if key == current else "previous_signing_keys_env"
            raise fail(which, f"a signing key must be at least {MIN_SIGNING_KEY_CHARS} characters (a random one)")
    return tuple(key.encode() for key in keys)


INDEX_SIGNED_CAMERAS = ("hidden", "operators", "everyone")
"""Values of ``index_signed_cameras``: signed cameras left out of the index, shown to the
requests the operator check admits, or shown to all."""


def _operator_token(data: Mapping[str, Any], environ: Mapping[str, str], fail: Fail) -> str | None:
    """The operator token (``operator_token_env``), at least ``MIN_SIGNING_KEY_CHARS`` long, or None."""
    token = secret_from_env(data, "operator_token_env", environ, fail)
    if token is not None and len(token) < MIN_SIGNING_KEY_CHARS:
        raise fail("operator_token_env", f"the token must be at least {MIN_SIGNING_KEY_CHARS} characters (random)")
    return token


def _index_signed_cameras(value: Any) -> str:
    if value not in INDEX_SIGNED_CAMERAS:
        raise Problem(f"must be one of {', '.join(map(repr, INDEX_SIGNED_CAMERAS))}, got {value!r}")
    return str(value)


def _server_checks(path: str) -> dict[str, Check]:
    """The check of each ``[server]`` key, in the order they are reported."""
    viewers = integer_in(1, 1_000_000)
    return {
        "host": _host,
        "port": integer_in(1, 65535),
        "resend_seconds": number_in(0.1, 60),
        "write_timeout": number_in(1, 3600),
        "max_stream_seconds": number_in(1, 31_536_000),
        "max_viewers_per_camera": viewers,
        "max_viewers": viewers,
        "max_connections_per_client": viewers,
        "max_header_bytes": integer_in(1024, 1_048_576),
        "max_upstream_requests_per_host": integer_in(1, 1000),
        "request_timeout": number_in(1, 3600),
        "trusted_proxies": _trusted_proxies,
        "font": lambda font: _font(font, path),
        "cors_origins": _origins,
        "embed_origins": _origins,
        "widths": _widths,
        "max_resize_pixels": integer_in(1, MAX_PIXELS_LIMIT),
        "operator_networks": _trusted_proxies,
        "index_signed_cameras": _index_signed_cameras,
    }


def _host(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise Problem('must be a non-empty string such as "0.0.0.0"')
    return value


def _widths(value: Any) -> tuple[int, ...]:
    """The ladder of widths, ascending."""
    low, high = WIDTH_RANGE
    if not isinstance(value, list) or not value:
        raise Problem(f"must be a list of one or more widths in pixels, such as [320, 640, 1280], got {value!r}")
    for width in value:
        if not is_int(width) or not low <= width <= high:
            raise Problem(f"{width!r} is not a whole number of pixels from {low} to {high}")
    if len(set(value)) < len(value):
        raise Problem(f"lists a width twice: {value!r}")
    return tuple(sorted(value))


def _trusted_proxies(value: Any) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    if not isinstance(value, list):
        raise Problem(f'must be a list of addresses or networks such as ["127.0.0.1"], got {value!r}')
    networks = []
    for entry in value:
        if not isinstance(entry, str):
            raise Problem(f'{entry!r} is not a string such as "10.0.0.0/8" or "::1"')
        try:
            networks.append(ipaddress.ip_network(entry))
        except ValueError as e:  # names the problem: "... does not appear to be ...", "... has host bits set"
            raise Problem(f'{e} (expected an address or network such as "10.0.0.0/8" or "::1")') from None
    return tuple(networks)


def _font(value: Any, path: str) -> str:
    """The font file's path, taken from the folder of the configuration file at ``path``."""
    if not isinstance(value, str) or not value:
        raise Problem(f'must be the path of a font file, such as "{_FONT_EXAMPLE}", got {value!r}')
    # A relative path is taken from the configuration file's folder, as people read it.
    font = os.path.join(os.path.dirname(path), os.path.expanduser(value))
    try:
        read_font(font)
    except FontError as e:
        raise Problem(f"{font}: {e}") from None
    return font


def _origins(value: Any) -> tuple[str, ...]:
    """``cors_origins`` or ``embed_origins`` as browsers write an ``Origin`` header.

    That is the serialization of an origin (WHATWG HTML 7.1.1: lowercase scheme and host,
    the host in punycode, no default port), so that a header can be compared with it as a
    string.
    """
    if not isinstance(value, list):
        raise Problem(f'must be a list of origins such as ["https://www.example.com"], or ["*"], got {value!r}')
    if ANY_ORIGIN in value:
        if value != [ANY_ORIGIN]:
            raise Problem('"*" already allows every origin; list either "*" alone or origins')
        return (ANY_ORIGIN,)
    return tuple(_origin(entry) for entry in value)


def _origin(entry: Any) -> str:
    problem = f'{entry!r} is not an origin such as "https://www.example.com" (scheme and host, no path)'
    if not isinstance(entry, str):
        raise Problem(problem)
    try:
        url = URL(entry)
    except ValueError:
        raise Problem(problem) from None
    if url.user is not None or url.password is not None:
        raise Problem('an origin holds no user or password; write it as "https://www.example.com"')
    host = url.raw_host or ""
    if (
        url.scheme not in ("http", "https")
        or not _ORIGIN_HOST_RE.fullmatch(host)
        or url.raw_path not in ("", "/")
        or url.query_string
        or url.fragment
    ):
        raise Problem(problem)
    host = f"[{host}]" if ":" in host else host
    port = "" if url.is_default_port() else f":{url.port}"
    return f"{url.scheme}://{host}{port}"
