"""The Eagle Eye Networks configuration.

The ``[een]`` account table, each ``een`` camera's section, and the cameras that
``--een-esn`` adds.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from mjpeg_proxy.config.camera import CameraConfig, CameraTable, SourceConfig
from mjpeg_proxy.config.checks import (
    ConfigError,
    boolean,
    check_table,
    check_url,
    read_fields,
    secret_from_env,
    text_problem,
)
from mjpeg_proxy.config.live import Config
from mjpeg_proxy.config.server import ServerConfig
from mjpeg_proxy.sources.een_timing import EenTiming
from mjpeg_proxy.sources.een_v3_config import EEN_V3_KEYS, EenV3Config, parse_een_v3
from mjpeg_proxy.sources.http_config import DEFAULT_MAX_FRAME_BYTES, MAX_FRAME_BYTES_CHECK

EEN_DEFAULT_BASE_URL = "https://login.eagleeyenetworks.com"
"""Where an account logs in without ``base_url`` (EEN API v1 docs, Authentication)."""
EEN_KEYS = {"username", "password_env", "api_key_env", "base_url", "use_brand_subdomain"}
"""The keys of the ``[een]`` table."""
EEN_CAMERA_KEYS = frozenset({"esn", "max_frame_bytes", "preview"})
"""The keys of an ``een`` camera's section."""
PREVIEW_MODES = ("multipart", "image")
"""A v3 camera's ``preview`` values: the ``multipartUrl`` stream, or ``liveImage.jpeg`` again
and again (EEN-API.md 3.3-3.4)."""
# An EEN camera's ESN: "a 8 character hexadecimal string" (EEN API v1 docs, Definition of terms).
_ESN_RE = re.compile(r"[0-9a-fA-F]{8}")


@dataclass(frozen=True)
class EenConfig:
    """The ``[een]`` table: the Eagle Eye Networks account every ``een`` camera uses.

    ``username``, ``password`` and ``api_key`` are secrets (the latter two read from the
    environment) and are kept out of ``repr``. ``base_url`` is where to log in;
    with ``use_brand_subdomain``, later calls go to the account's branded host
    (EEN API v1 docs, Authentication: "API calls should then use the branded subdomain").
    ``timing`` is not the account's: it takes no part in comparing two accounts, so the
    cameras of one account share one session (``EenCameraConfig.shared_key``) whatever
    timing a test gives them.
    """

    username: str = field(repr=False)
    password: str = field(repr=False)
    api_key: str | None = field(default=None, repr=False)
    base_url: str = EEN_DEFAULT_BASE_URL
    use_brand_subdomain: bool = True
    timing: EenTiming = field(default=EenTiming(), compare=False)


@dataclass(frozen=True)
class EenCameraConfig(SourceConfig):
    """An ``een`` camera's section.

    ``esn``, the camera's ESN in lowercase, on the EEN ``account`` (API v1 or v3);
    ``max_frame_bytes`` caps one preview; ``preview`` is how a v3 camera's preview is
    fetched: ``"multipart"`` (one stream) or ``"image"`` (one request per picture). v1
    has images only.
    """

    kind = "een"
    esn: str
    account: EenConfig | EenV3Config
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    preview: str = "multipart"

    def shared_key(self) -> Hashable:
        """The account: its cameras share one session."""
        return self.account

    @classmethod
    def parse(cls, table: CameraTable) -> EenCameraConfig:
        """Read ``max_frame_bytes`` and ``esn``; the account is the file's ``[een]`` table.

        Raises:
            ConfigError: a wrong value, or no ``[een]`` table.
        """
        data, fail = table.data, table.fail
        capped = read_fields(data, {"max_frame_bytes": MAX_FRAME_BYTES_CHECK}, fail)
        esn = data.get("esn")
        if esn is None:
            raise fail("esn", 'missing; the camera\'s ESN from the EEN web app, such as "1006073b"')
        if not isinstance(esn, str) or not _ESN_RE.fullmatch(esn):
            raise fail("esn", f'must be 8 hexadecimal characters, such as "1006073b", got {esn!r}')
        account = table.tables.get("een")
        if not isinstance(account, EenConfig | EenV3Config):
            raise fail(
                "source",
                '"een" cameras need an [een] table: api = "v3" with client_id, client_secret_env and token_file '
                "(or username and password_env for API v1)",
            )
        preview = data.get("preview", "multipart")
        if "preview" in data and isinstance(account, EenConfig):
            raise fail("preview", 'is for API v3 accounts (api = "v3" in [een]); API v1 previews are single images')
        if preview not in PREVIEW_MODES:
            raise fail("preview", f'must be "multipart" or "image", got {preview!r}')
        return cls(esn=esn.lower(), account=account, preview=preview, **capped)


def parse_een(data: Any, path: str, environ: Mapping[str, str]) -> EenConfig | EenV3Config:
    """Check the ``[een]`` table of the file at ``path``; secrets come from ``environ``.

    ``api`` chooses the account's kind: ``"v1"`` (the default: username and password) or
    ``"v3"`` (OAuth2 client and token file, ``een_v3_config``); the other API's keys are
    refused.

    Raises:
        ConfigError: a key is missing, unknown or the other API's, or a value is wrong.
    """
    if isinstance(data, dict) and "api" in data:
        api = data["api"]
        fail = check_table(data, path, "een", EEN_KEYS | EEN_V3_KEYS | {"api"})
        if api not in ("v1", "v3"):
            raise fail("api", f'must be "v1" or "v3", got {api!r}')
        data = {key: value for key, value in data.items() if key != "api"}
        if api == "v3":
            for key in data:
                if key in EEN_KEYS:
                    raise fail(key, f'is an API v1 key; with api = "v3" use {", ".join(sorted(EEN_V3_KEYS))}')
            return parse_een_v3(data, path, environ, fail)
    return _parse_een_v1(data, path, environ)


def _parse_een_v1(data: Any, path: str, environ: Mapping[str, str]) -> EenConfig:
    """Check an API v1 ``[een]`` table (``parse_een``)."""
    if isinstance(data, dict):
        for key in data:
            if key in EEN_V3_KEYS:
                reason = 'is an API v3 key; add api = "v3" to [een], or remove it for API v1'
                raise ConfigError(f"{path}: [een]: field {key!r}: {reason}")
    fail = check_table(data, path, "een", EEN_KEYS)
    username = data.get("username")
    if not isinstance(username, str) or not username:
        raise fail("username", 'missing; the EEN user\'s login, such as "preview-user@example.com"')
    if (problem := text_problem(username, secret=False)) is not None:
        raise fail("username", problem)
    if "password_env" not in data:
        raise fail(
            "password_env", 'missing; the name of the environment variable holding the password, e.g. "EEN_PASSWORD"'
        )
    password = secret_from_env(data, "password_env", environ, fail)
    api_key = secret_from_env(data, "api_key_env", environ, fail)
    base_url = check_url(data.get("base_url", EEN_DEFAULT_BASE_URL), fail, key="base_url")
    brand = read_fields(data, {"use_brand_subdomain": boolean}, fail)
    return EenConfig(username, password or "", api_key, base_url.rstrip("/"), **brand)


def with_een_cameras(config: Config | None, esns: Sequence[str], environ: Mapping[str, str]) -> Config:
    """Add one ``een`` camera per ESN (its id is the ESN) to ``config``, or to an empty one.

    The account comes from ``config``'s ``[een]`` table, else from the environment
    (``account_from_environment``).

    Raises:
        ConfigError: an ESN is not 8 hexadecimal characters, is already a camera id, or
            no account is configured.
    """
    cameras = list(config.cameras) if config else []
    ids = {camera.id for camera in cameras}
    for esn in esns:
        if not _ESN_RE.fullmatch(esn):
            raise ConfigError(f"--een-esn: {esn!r} is not an ESN (8 hexadecimal characters, such as 1006073b)")
        if esn.lower() in ids:
            raise ConfigError(f"--een-esn: a camera with id {esn.lower()!r} is already configured")
        ids.add(esn.lower())
    account = config.tables.get("een") if config else None
    if not isinstance(account, EenConfig | EenV3Config):
        account = account_from_environment(environ)
    for esn in esns:
        section = EenCameraConfig(esn=esn.lower(), account=account)
        cameras.append(CameraConfig(id=esn.lower(), source=section, name=f"EEN camera {esn.lower()}"))
    if config is None:
        return Config(server=ServerConfig(), cameras=tuple(cameras), tables={"een": account})
    return replace(config, cameras=tuple(cameras), tables={**config.tables, "een": account})


def account_from_environment(environ: Mapping[str, str]) -> EenConfig:
    """The EEN account that the environment gives, for ``--een-esn`` without ``[een]``.

    The variables are ``EEN_USERNAME``, ``EEN_PASSWORD`` and, optionally, ``EEN_API_KEY``
    and ``EEN_BASE_URL``.

    Raises:
        ConfigError: a variable is missing or its value could never log in.
    """
    missing = [name for name in ("EEN_USERNAME", "EEN_PASSWORD") if name not in environ]
    if missing:
        raise ConfigError(f"--een-esn needs the EEN account: set {' and '.join(missing)} in the environment")
    for name, secret in (("EEN_USERNAME", False), ("EEN_PASSWORD", True), ("EEN_API_KEY", True)):
        problem = text_problem(environ[name], secret=secret) if name in environ else None
        if problem is not None:
            raise ConfigError(f"--een-esn: environment variable {name} {problem}")
    base_url = environ.get("EEN_BASE_URL") or EEN_DEFAULT_BASE_URL

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"--een-esn: environment variable EEN_BASE_URL: {problem}")

    check_url(base_url, fail)
    return EenConfig(
        environ["EEN_USERNAME"], environ["EEN_PASSWORD"], environ.get("EEN_API_KEY") or None, base_url.rstrip("/")
    )
