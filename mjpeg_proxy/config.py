"""The configuration: a TOML file (read with ``tomllib``) checked into typed records.

Every mistake becomes one ``ConfigError`` whose message names the file, the camera
id and the field, so start-up can stop with one clear line.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from yarl import URL

from mjpeg_proxy.pictures.fonts import FontError, read_font

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024
MIN_FPS, MAX_FPS = 1 / 16, 30.0
"""Frames per second a camera may be set to: EEN previews come every 0.25 to 16 s (EEN API
v1 docs, Asset), and camera streams rarely exceed 30."""
SOURCES = ("demo", "snapshot", "mjpeg", "een")
EEN_DEFAULT_BASE_URL = "https://login.eagleeyenetworks.com"
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1"))
"""The default ``trusted_proxies``: a reverse proxy on the same machine. gunicorn's
``forwarded_allow_ips`` defaults to ``127.0.0.1,::1`` and uvicorn's to ``127.0.0.1``; this
takes the whole IPv4 loopback network, which is all this machine."""
ANY_ORIGIN = "*"

_CAMERA_ID_RE = re.compile(r"[a-z0-9_-]{1,64}")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A host as yarl gives it: a name in lowercase punycode, an IPv4 or IPv6 address.
_ORIGIN_HOST_RE = re.compile(r"[0-9a-z._:-]+")
_COMMON_KEYS = {"id", "name", "source", "fps", "stall_timeout", "linger_seconds", "always_on"}
_HTTP_CAMERA_KEYS = {"url", "username", "password_env", "auth", "max_frame_bytes"}
_SOURCE_KEYS = {
    "demo": _COMMON_KEYS | {"width", "height"},
    "snapshot": _COMMON_KEYS | _HTTP_CAMERA_KEYS,
    "mjpeg": _COMMON_KEYS | _HTTP_CAMERA_KEYS,
    "een": _COMMON_KEYS | {"esn", "max_frame_bytes"},
}
_SERVER_KEYS = {
    "host",
    "port",
    "resend_seconds",
    "write_timeout",
    "max_stream_seconds",
    "max_viewers_per_camera",
    "max_viewers",
    "max_connections_per_client",
    "trusted_proxies",
    "max_header_bytes",
    "request_timeout",
    "cors_origins",
    "font",
    "max_upstream_requests_per_host",
}
_FONT_EXAMPLE = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
_EEN_KEYS = {"username", "password_env", "api_key_env", "base_url", "use_brand_subdomain"}
# An EEN camera's ESN: "a 8 character hexadecimal string" (EEN API v1 docs, Definition of terms).
_ESN_RE = re.compile(r"[0-9a-fA-F]{8}")
# Characters a reader cannot see: controls, line and paragraph separators, format
# characters (zero-width space, byte-order mark, direction marks), and the other Unicode
# Default_Ignorable_Code_Point ranges (DerivedCoreProperties.txt) that are not format
# characters: fillers such as U+3164, variation selectors.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
_DEFAULT_IGNORABLE = (
    (0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
    (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0), (0xE0000, 0xE0FFF),
)  # fmt: skip
# A host name's labels (RFC 1123, section 2.1), after IDNA encoding; "_" is let through, as
# resolvers do for internal names.
_HOST_LABEL_RE = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


class ConfigError(Exception):
    """The configuration cannot be used; the message is one line for the site owner."""


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

    ``font``: the path of a TrueType or OpenType font file to draw the text on pictures
    (the offline picture, the demo camera) with, before the default fonts
    (``mjpeg_proxy.pictures.fonts``); None for the defaults.

    ``max_upstream_requests_per_host``: short requests to one upstream host (scheme, host,
    port) in progress at once: snapshots, and MJPEG streams until their first frame.
    The default, 4, stays below the 6 users at once that small Dahua cameras allow, so
    the device's own web page still gets in, and starts a wall of 16 channels in 4 rounds.
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
    font: str | None = None
    max_upstream_requests_per_host: int = 4


@dataclass(frozen=True)
class CameraConfig:
    """One ``[[cameras]]`` entry.

    ``fps`` is frames per second to fetch (demo: to render). ``password`` is the value
    read from the environment variable named by ``password_env``; it is kept out of
    ``repr`` so it cannot reach a log line. ``auth`` is ``"basic"`` or ``"digest"`` when
    a username is set. ``width`` and ``height`` (pixels) apply to the demo source;
    ``max_frame_bytes`` caps one upstream frame. ``esn`` is an EEN camera's ESN, in
    lowercase. ``stall_timeout`` (seconds without a complete frame before the camera
    counts as stalled and is reconnected) is None for the default: the larger of 10 s
    and three frame intervals. The camera fetches only while someone watches and for
    ``linger_seconds`` after the last viewer leaves or the last snapshot, unless
    ``always_on``.
    """

    id: str
    source: str
    name: str = ""
    fps: float = 1.0
    url: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    auth: str | None = None
    width: int = 640
    height: int = 360
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    esn: str | None = None
    stall_timeout: float | None = None
    linger_seconds: float = 30.0
    always_on: bool = False

    @property
    def display_name(self) -> str:
        """The name shown to people: ``name``, or the id when no name is set."""
        return self.name or self.id

    @property
    def picture_size(self) -> tuple[int, int]:
        """The size, in pixels (width, height), of a picture drawn before any frame came."""
        return self.width, self.height


@dataclass(frozen=True)
class EenConfig:
    """The ``[een]`` table: the Eagle Eye Networks account every ``een`` camera uses.

    ``username``, ``password`` and ``api_key`` are secrets (the latter two read from the
    environment) and are kept out of ``repr``. ``base_url`` is where to log in;
    with ``use_brand_subdomain``, later calls go to the account's branded host
    (EEN API v1 docs, Authentication: "API calls should then use the branded subdomain").
    """

    username: str = field(repr=False)
    password: str = field(repr=False)
    api_key: str | None = field(default=None, repr=False)
    base_url: str = EEN_DEFAULT_BASE_URL
    use_brand_subdomain: bool = True


@dataclass(frozen=True)
class Config:
    """The whole configuration. ``path`` is the file it came from, or None for defaults."""

    server: ServerConfig
    cameras: tuple[CameraConfig, ...]
    path: str | None = None
    een: EenConfig | None = None


RESTART_KEYS = ("host", "port", "request_timeout", "max_header_bytes", "font", "max_upstream_requests_per_host")
"""``[server]`` keys taken at start-up (by the listening socket, the HTTP parser, what every
camera shares: the fonts, the upstream hosts' caps): a reload cannot change them."""


class LiveConfig:
    """The configuration in force: the one the proxy started with, then each one a reload
    applied (``apply``). Read it like a ``Config``: ``server``, ``cameras``, ``een``, ``path``.
    """

    def __init__(self, config: Config) -> None:
        self.current = config

    @property
    def server(self) -> ServerConfig:
        """The ``[server]`` settings in force."""
        return self.current.server

    @property
    def cameras(self) -> tuple[CameraConfig, ...]:
        """The cameras in force, in configuration order."""
        return self.current.cameras

    @property
    def een(self) -> EenConfig | None:
        """The EEN account in force, if any."""
        return self.current.een

    @property
    def path(self) -> str | None:
        """The file the configuration in force came from."""
        return self.current.path

    def apply(self, config: Config) -> tuple[list[str], list[str]]:
        """Put ``config`` in force, except the ``RESTART_KEYS``, which keep their values.

        Returns the ``[server]`` keys that changed, as ``key: old -> new`` texts: those now
        in force, and the ``RESTART_KEYS`` that wait for a restart.
        """
        old = self.current.server
        changed = {
            f.name: f"{f.name}: {getattr(old, f.name)!r} -> {getattr(config.server, f.name)!r}"
            for f in fields(ServerConfig)
            if getattr(old, f.name) != getattr(config.server, f.name)
        }
        kept = {key: getattr(old, key) for key in RESTART_KEYS}
        self.current = replace(config, server=replace(config.server, **kept))
        applied = [text for key, text in changed.items() if key not in RESTART_KEYS]
        return applied, [text for key, text in changed.items() if key in RESTART_KEYS]


def default_config() -> Config:
    """The configuration used without ``--config``: one demo camera with id ``demo``."""
    return Config(
        server=ServerConfig(),
        cameras=(CameraConfig(id="demo", source="demo", name="Demo camera", fps=5.0),),
    )


def load_config(path: str, environ: Mapping[str, str] = os.environ, *, require_cameras: bool = True) -> Config:
    """Read and check the TOML file at ``path``; secrets come from ``environ``.

    ``require_cameras=False`` accepts a file without cameras (``--een-esn`` adds them).

    Raises:
        ConfigError: the file cannot be read or parsed, or any value is wrong.
    """
    try:
        with open(path, "rb") as f:
            # utf-8-sig: editors such as Windows Notepad start UTF-8 files with a byte-order mark.
            data = tomllib.loads(f.read().decode("utf-8-sig"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}); save the file as UTF-8") from None
    return parse_config(data, path, environ, require_cameras=require_cameras)


def parse_config(
    data: Mapping[str, Any], path: str, environ: Mapping[str, str], *, require_cameras: bool = True
) -> Config:
    """Check an already-parsed TOML document; see ``load_config``."""
    unknown = set(data) - {"server", "een", "cameras"}
    if unknown:
        raise ConfigError(
            f"{path}: unknown table or key {sorted(unknown)[0]!r} (expected [server], [een] and [[cameras]])"
        )
    server = _parse_server(data.get("server", {}), path)
    een = _parse_een(data["een"], path, environ) if "een" in data else None
    cameras_data = data.get("cameras", None if require_cameras else [])
    if cameras_data is None:
        raise ConfigError(f"{path}: no cameras: add at least one [[cameras]] table")
    if not isinstance(cameras_data, list) or not all(isinstance(c, dict) for c in cameras_data):
        raise ConfigError(f"{path}: 'cameras' must be a list of tables, written [[cameras]]")
    if not cameras_data and require_cameras:
        raise ConfigError(f"{path}: no cameras: add at least one [[cameras]] table")
    cameras: list[CameraConfig] = []
    seen: set[str] = set()
    for index, entry in enumerate(cameras_data, start=1):
        camera = _parse_camera(entry, index, path, environ)
        if camera.id in seen:
            raise ConfigError(f"{path}: camera {camera.id!r}: field 'id': duplicate id, already used by another camera")
        seen.add(camera.id)
        cameras.append(camera)
        if camera.source == "een" and een is None:
            raise ConfigError(
                f"{path}: camera {camera.id!r}: field 'source': \"een\" cameras need an [een] table "
                "with the account's username and password_env"
            )
    return Config(server=server, cameras=tuple(cameras), path=path, een=een)


def with_een_cameras(config: Config | None, esns: Sequence[str], environ: Mapping[str, str]) -> Config:
    """Add one ``een`` camera per ESN (its id is the ESN) to ``config``, or to an empty one.

    The account comes from ``config``'s ``[een]`` table, else from the environment
    variables ``EEN_USERNAME``, ``EEN_PASSWORD`` and, optionally, ``EEN_API_KEY`` and
    ``EEN_BASE_URL``.

    Raises:
        ConfigError: an ESN is not 8 hexadecimal characters, is already a camera id, or
            no account is configured.
    """
    cameras = list(config.cameras) if config else []
    for esn in esns:
        if not _ESN_RE.fullmatch(esn):
            raise ConfigError(f"--een-esn: {esn!r} is not an ESN (8 hexadecimal characters, such as 1006073b)")
        if any(camera.id == esn.lower() for camera in cameras):
            raise ConfigError(f"--een-esn: a camera with id {esn.lower()!r} is already configured")
        cameras.append(CameraConfig(id=esn.lower(), source="een", name=f"EEN camera {esn.lower()}", esn=esn.lower()))
    een = config.een if config else None
    if een is None:
        missing = [name for name in ("EEN_USERNAME", "EEN_PASSWORD") if name not in environ]
        if missing:
            raise ConfigError(f"--een-esn needs the EEN account: set {' and '.join(missing)} in the environment")
        for name, secret in (("EEN_USERNAME", False), ("EEN_PASSWORD", True), ("EEN_API_KEY", True)):
            problem = _text_problem(environ[name], secret=secret) if name in environ else None
            if problem is not None:
                raise ConfigError(f"--een-esn: environment variable {name} {problem}")
        base_url = environ.get("EEN_BASE_URL") or EEN_DEFAULT_BASE_URL

        def fail(key: str, problem: str) -> ConfigError:
            return ConfigError(f"--een-esn: environment variable EEN_BASE_URL: {problem}")

        _check_url(base_url, fail)
        een = EenConfig(
            environ["EEN_USERNAME"], environ["EEN_PASSWORD"], environ.get("EEN_API_KEY") or None, base_url.rstrip("/")
        )
    server = config.server if config else ServerConfig()
    return Config(server=server, cameras=tuple(cameras), path=config.path if config else None, een=een)


def _check_table(data: Any, path: str, name: str, known: set[str]) -> Callable[[str, str], ConfigError]:
    """Check that the table ``[name]`` is a table of ``known`` keys; return its error maker."""

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{path}: [{name}]: field {key!r}: {problem}")

    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {name!r} must be a table, written [{name}]")
    for key in data:
        if key not in known:
            raise fail(key, f"unknown key (known: {', '.join(sorted(known))})")
    return fail


def _parse_server(data: Any, path: str) -> ServerConfig:
    fail = _check_table(data, path, "server", _SERVER_KEYS)
    host = data.get("host", DEFAULT_HOST)
    if not isinstance(host, str) or not host:
        raise fail("host", 'must be a non-empty string such as "0.0.0.0"')
    port = data.get("port", DEFAULT_PORT)
    if not _is_int(port) or not 1 <= port <= 65535:
        raise fail("port", f"must be an integer from 1 to 65535, got {port!r}")
    resend = data.get("resend_seconds", 2.0)
    if not _is_number(resend) or not 0.1 <= resend <= 60:
        raise fail("resend_seconds", f"must be a number of seconds from 0.1 to 60, got {resend!r}")
    write_timeout = data.get("write_timeout", 30.0)
    if not _is_number(write_timeout) or not 1 <= write_timeout <= 3600:
        raise fail("write_timeout", f"must be a number of seconds from 1 to 3600, got {write_timeout!r}")
    max_stream = data.get("max_stream_seconds")
    if max_stream is not None and (not _is_number(max_stream) or not 1 <= max_stream <= 31_536_000):
        raise fail("max_stream_seconds", f"must be a number of seconds from 1 to 31536000, got {max_stream!r}")
    limits = {}
    for key, low, high in (
        ("max_viewers_per_camera", 1, 1_000_000),
        ("max_viewers", 1, 1_000_000),
        ("max_connections_per_client", 1, 1_000_000),
        ("max_header_bytes", 1024, 1_048_576),
        ("max_upstream_requests_per_host", 1, 1000),
    ):
        value = data.get(key, getattr(ServerConfig, key))
        if not _is_int(value) or not low <= value <= high:
            raise fail(key, f"must be an integer from {low} to {high}, got {value!r}")
        limits[key] = value
    request_timeout = data.get("request_timeout", ServerConfig.request_timeout)
    if not _is_number(request_timeout) or not 1 <= request_timeout <= 3600:
        raise fail("request_timeout", f"must be a number of seconds from 1 to 3600, got {request_timeout!r}")
    proxies = data.get("trusted_proxies", [str(network) for network in LOOPBACK])
    if not isinstance(proxies, list):
        raise fail("trusted_proxies", f'must be a list of addresses or networks such as ["127.0.0.1"], got {proxies!r}')
    networks = []
    for entry in proxies:
        if not isinstance(entry, str):
            raise fail("trusted_proxies", f'{entry!r} is not a string such as "10.0.0.0/8" or "::1"')
        try:
            networks.append(ipaddress.ip_network(entry))
        except ValueError as e:  # names the problem: "... does not appear to be ...", "... has host bits set"
            raise fail(
                "trusted_proxies", f'{e} (expected an address or network such as "10.0.0.0/8" or "::1")'
            ) from None
    font = data.get("font")
    if font is not None:
        if not isinstance(font, str) or not font:
            raise fail("font", f'must be the path of a font file, such as "{_FONT_EXAMPLE}", got {font!r}')
        # A relative path is taken from the configuration file's folder, as people read it.
        font = os.path.join(os.path.dirname(path), os.path.expanduser(font))
        try:
            read_font(font)
        except FontError as e:
            raise fail("font", f"{font}: {e}") from None
    return ServerConfig(
        host=host,
        port=port,
        resend_seconds=float(resend),
        write_timeout=float(write_timeout),
        max_stream_seconds=None if max_stream is None else float(max_stream),
        trusted_proxies=tuple(networks),
        request_timeout=float(request_timeout),
        cors_origins=_parse_origins(data.get("cors_origins", [ANY_ORIGIN]), fail),
        font=font,
        **limits,
    )


def _parse_origins(value: Any, fail: Callable[[str, str], ConfigError]) -> tuple[str, ...]:
    """``cors_origins`` as browsers write an ``Origin`` header (the serialization of an
    origin, WHATWG HTML 7.1.1: lowercase scheme and host, the host in punycode, no default
    port), so that a header can be compared with it as a string.
    """
    if not isinstance(value, list):
        raise fail(
            "cors_origins", f'must be a list of origins such as ["https://www.example.com"], or ["*"], got {value!r}'
        )
    if ANY_ORIGIN in value:
        if value != [ANY_ORIGIN]:
            raise fail("cors_origins", '"*" already allows every origin; list either "*" alone or origins')
        return (ANY_ORIGIN,)
    origins = []
    for entry in value:
        problem = f'{entry!r} is not an origin such as "https://www.example.com" (scheme and host, no path)'
        if not isinstance(entry, str):
            raise fail("cors_origins", problem)
        try:
            url = URL(entry)
        except ValueError:
            raise fail("cors_origins", problem) from None
        if url.user is not None or url.password is not None:
            raise fail("cors_origins", 'an origin holds no user or password; write it as "https://www.example.com"')
        host = url.raw_host or ""
        if (
            url.scheme not in ("http", "https")
            or not _ORIGIN_HOST_RE.fullmatch(host)
            or url.raw_path not in ("", "/")
            or url.query_string
            or url.fragment
        ):
            raise fail("cors_origins", problem)
        host = f"[{host}]" if ":" in host else host
        port = "" if url.is_default_port() else f":{url.port}"
        origins.append(f"{url.scheme}://{host}{port}")
    return tuple(origins)


def _parse_een(data: Any, path: str, environ: Mapping[str, str]) -> EenConfig:
    fail = _check_table(data, path, "een", _EEN_KEYS)
    username = data.get("username")
    if not isinstance(username, str) or not username:
        raise fail("username", 'missing; the EEN user\'s login, such as "preview-user@example.com"')
    if (problem := _text_problem(username, secret=False)) is not None:
        raise fail("username", problem)
    if "password_env" not in data:
        raise fail(
            "password_env", 'missing; the name of the environment variable holding the password, e.g. "EEN_PASSWORD"'
        )
    password = _secret_from_env(data, "password_env", environ, fail)
    api_key = _secret_from_env(data, "api_key_env", environ, fail)
    base_url = data.get("base_url", EEN_DEFAULT_BASE_URL)
    _check_url(base_url, fail, key="base_url")
    use_brand = data.get("use_brand_subdomain", True)
    if not isinstance(use_brand, bool):
        raise fail("use_brand_subdomain", f"must be true or false, got {use_brand!r}")
    return EenConfig(username, password or "", api_key, base_url.rstrip("/"), use_brand)


def _secret_from_env(
    data: Mapping[str, Any], key: str, environ: Mapping[str, str], fail: Callable[[str, str], ConfigError]
) -> str | None:
    """The value of the environment variable named by ``data[key]``, or None when ``key`` is absent."""
    name = data.get(key)
    if name is None:
        return None
    if not isinstance(name, str) or not _ENV_NAME_RE.fullmatch(name):
        raise fail(key, 'must be the name of an environment variable, such as "CAMERA_PASSWORD"')
    value = environ.get(name)
    if value is None:
        raise fail(key, f"environment variable {name} is not set")
    # A login with an empty password fails, and repeated failures lock accounts.
    if (problem := _text_problem(value, secret=True)) is not None:
        raise fail(key, f"environment variable {name} {problem}")
    return value


def _text_problem(value: str, *, secret: bool) -> str | None:
    """What is wrong with a username (``secret=False``) or a password or key, in words that
    follow its name; None when nothing is. Each of these fails every login: nothing but
    blanks; line breaks, control or invisible characters (a zero-width space or a
    byte-order mark pasted with it); for a username, blanks at either end.
    """
    if all(_is_invisible(char) or unicodedata.category(char) == "Zs" for char in value):
        return "is set but empty" if not value else "holds only blanks or invisible characters"
    if any(_is_invisible(char) for char in value):
        return "holds a line break, a control character or an invisible one"
    if not secret and value != value.strip():
        return "starts or ends with a blank"
    return None


def _is_invisible(char: str) -> bool:
    """Whether ``char`` is drawn as nothing and is no plain space (see ``_INVISIBLE_CATEGORIES``)."""
    if unicodedata.category(char) in _INVISIBLE_CATEGORIES:
        return True
    code = ord(char)
    return any(low <= code <= high for low, high in _DEFAULT_IGNORABLE)


def _parse_camera(data: dict[str, Any], index: int, path: str, environ: Mapping[str, str]) -> CameraConfig:
    raw_id = data.get("id")
    # repr() keeps the message on one line whatever characters the id holds.
    label = f"camera {raw_id!r}" if isinstance(raw_id, str) and raw_id else f"camera #{index}"

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{path}: {label}: field {key!r}: {problem}")

    if raw_id is None:
        raise fail("id", 'missing; every camera needs an id such as "garage"')
    if not isinstance(raw_id, str) or not _CAMERA_ID_RE.fullmatch(raw_id):
        raise fail("id", f"must be 1-64 characters of lowercase letters, digits, '-' and '_', got {raw_id!r}")
    source = data.get("source")
    if source is None:
        raise fail("source", f"missing; one of: {', '.join(SOURCES)}")
    if source not in SOURCES:
        raise fail("source", f"unknown source {source!r}; one of: {', '.join(SOURCES)}")
    allowed = _SOURCE_KEYS[source]
    for key in data:
        if key not in allowed:
            raise fail(key, f"unknown key for source {source!r} (known: {', '.join(sorted(allowed))})")

    name = data.get("name", "")
    if not isinstance(name, str):
        raise fail("name", f"must be a string, got {name!r}")
    fps = data.get("fps", 5.0 if source == "demo" else 1.0)
    if not _is_number(fps) or not MIN_FPS <= fps <= MAX_FPS:
        raise fail("fps", f"must be a number from {MIN_FPS} to {MAX_FPS:g}, got {fps!r}")
    stall_timeout = data.get("stall_timeout")
    if stall_timeout is not None and (not _is_number(stall_timeout) or not 1 <= stall_timeout <= 3600):
        raise fail("stall_timeout", f"must be a number of seconds from 1 to 3600, got {stall_timeout!r}")
    linger = data.get("linger_seconds", CameraConfig.linger_seconds)
    if not _is_number(linger) or not 0 <= linger <= 86_400:
        raise fail("linger_seconds", f"must be a number of seconds from 0 to 86400, got {linger!r}")
    always_on = data.get("always_on", False)
    if not isinstance(always_on, bool):
        raise fail("always_on", f"must be true or false, got {always_on!r}")
    camera = CameraConfig(
        id=raw_id,
        source=source,
        name=name,
        fps=float(fps),
        stall_timeout=None if stall_timeout is None else float(stall_timeout),
        linger_seconds=float(linger),
        always_on=always_on,
    )

    if source == "demo":
        sizes = {}
        for key, default in (("width", 640), ("height", 360)):
            value = data.get(key, default)
            if not _is_int(value) or not 16 <= value <= 3840:
                raise fail(key, f"must be an integer number of pixels from 16 to 3840, got {value!r}")
            sizes[key] = value
        return replace(camera, **sizes)

    max_frame_bytes = data.get("max_frame_bytes", DEFAULT_MAX_FRAME_BYTES)
    if not _is_int(max_frame_bytes) or not 1024 <= max_frame_bytes <= 1024**3:
        raise fail(
            "max_frame_bytes", f"must be an integer number of bytes from 1024 to 1073741824, got {max_frame_bytes!r}"
        )
    camera = replace(camera, max_frame_bytes=max_frame_bytes)

    if source == "een":
        esn = data.get("esn")
        if esn is None:
            raise fail("esn", 'missing; the camera\'s ESN from the EEN web app, such as "1006073b"')
        if not isinstance(esn, str) or not _ESN_RE.fullmatch(esn):
            raise fail("esn", f'must be 8 hexadecimal characters, such as "1006073b", got {esn!r}')
        return replace(camera, esn=esn.lower())

    url = data.get("url")
    if url is None:
        raise fail("url", 'missing; the camera\'s address, such as "http://cam.example/snapshot.jpg"')
    _check_url(url, fail)
    username = data.get("username")
    if username is not None and (not isinstance(username, str) or not username):
        raise fail("username", "must be a non-empty string")
    if "password_env" in data and username is None:
        raise fail("password_env", "set 'username' too, or remove 'password_env'")
    password = _secret_from_env(data, "password_env", environ, fail)
    auth = data.get("auth")
    if auth is not None:
        if auth not in ("basic", "digest"):
            raise fail("auth", f'must be "basic" or "digest", got {auth!r}')
        if username is None:
            raise fail("auth", "set 'username' too, or remove 'auth'")
    elif username is not None:
        auth = "basic"
    if username is not None and (problem := _text_problem(username, secret=False)) is not None:
        raise fail("username", problem)
    if auth == "basic" and username is not None and ":" in username:
        raise fail("username", "must not contain ':' with HTTP Basic authentication (RFC 7617, section 2)")
    return replace(camera, url=url, username=username, password=password, auth=auth)


def _check_url(url: Any, fail: Callable[[str, str], ConfigError], key: str = "url") -> None:
    """Refuse a URL that could never be fetched: not http(s), no host or an impossible one,
    port 0, credentials in it, or spaces and control characters (which ``yarl`` would drop
    or encode silently, so that a typo fails on every retry instead of at start-up).
    """
    if not isinstance(url, str):
        raise fail(key, f"must be a string, got {url!r}")
    if any(_is_invisible(char) or unicodedata.category(char) == "Zs" for char in url):
        raise fail(
            key, f"must not contain spaces or invisible characters (write a space in a path as %20), got {url!r}"
        )
    try:
        parsed = URL(url)
        host = parsed.raw_host  # IDNA-encoded: "kamera.müller.de" is "kamera.xn--mller-kva.de"
    except ValueError as e:  # yarl's text names the problem ("Port out of range 0-65535"), not the URL
        raise fail(key, f"is not a valid URL: {e}") from None
    if parsed.scheme not in ("http", "https") or not host:
        raise fail(key, 'must be an http:// or https:// URL with a host, such as "http://cam.example/snapshot.jpg"')
    if not _valid_host(host):
        raise fail(key, f"{host!r} is not a valid host name or IP address")
    if parsed.explicit_port == 0:
        raise fail(key, "port must be from 1 to 65535")
    if parsed.user is not None or parsed.password is not None:
        raise fail(key, "must not hold credentials; use 'username' and 'password_env'")


def _valid_host(host: str) -> bool:
    """True for an IP address, or a DNS name whose labels are 1-63 letters, digits, '-'
    or '_', 253 characters at most, that does not end in a number (WHATWG URL: a host whose
    last label is numeric is read as an IPv4 address).
    """
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    return len(name) <= 253 and all(_HOST_LABEL_RE.fullmatch(label) for label in labels) and not labels[-1].isdigit()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)
