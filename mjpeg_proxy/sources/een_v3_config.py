"""The Eagle Eye Networks API v3 account: ``[een]`` with ``api = "v3"``.

An OAuth2 confidential client (``client_id``, the secret from the environment), where its
tokens live (``token_file``, written by ``mjpeg-proxy een-login``) and where it logs in
(``auth_url``). Protocol: the project's EEN notes (EEN-API.md), section 3.1.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from yarl import URL

from mjpeg_proxy.config.checks import Fail, check_url, secret_from_env, text_problem
from mjpeg_proxy.sources.een_timing import EenTiming

EEN_V3_DEFAULT_AUTH_URL = "https://auth.eagleeyenetworks.com"
"""Where a v3 account authorizes and gets its tokens without ``auth_url`` (EEN-API.md 3.1)."""
EEN_V3_KEYS = frozenset({"client_id", "client_secret_env", "token_file", "auth_url"})
"""The keys of ``[een]`` that only ``api = "v3"`` takes."""


@dataclass(frozen=True)
class EenV3Config:
    """The ``[een]`` table of an API v3 account.

    ``client_secret`` (read from the environment variable ``client_secret_env``) is a secret
    and kept out of ``repr``. ``token_file`` is an absolute path, relative ones taken from
    the configuration file's folder. ``auth_url`` has no trailing slash. ``timing`` is not
    the account's (not read from the file; tests shorten it) and takes no part in
    comparing two accounts, so the cameras of one account share one login.
    """

    client_id: str
    client_secret: str = field(repr=False)
    token_file: str
    auth_url: str = EEN_V3_DEFAULT_AUTH_URL
    timing: EenTiming = field(default=EenTiming(), compare=False)


def parse_een_v3(data: Mapping[str, Any], path: str, environ: Mapping[str, str], fail: Fail) -> EenV3Config:
    """Read the v3 keys of ``[een]`` (the table's keys are already known to be v3 ones).

    Raises:
        ConfigError: a key is missing or a value is wrong.
    """
    client_id = data.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise fail("client_id", "missing; the client id of the application's credentials in the EEN developer portal")
    if (problem := text_problem(client_id, secret=False)) is not None:
        raise fail("client_id", problem)
    if "client_secret_env" not in data:
        raise fail(
            "client_secret_env",
            'missing; the name of the environment variable holding the client secret, e.g. "EEN_CLIENT_SECRET"',
        )
    secret = secret_from_env(data, "client_secret_env", environ, fail) or ""
    token_file = data.get("token_file")
    if not isinstance(token_file, str) or not token_file.strip():
        raise fail("token_file", 'missing; where een-login writes the tokens, such as "/var/lib/mjpeg-proxy/een.json"')
    if (problem := text_problem(token_file, secret=False)) is not None:
        raise fail("token_file", problem)
    if token_file.endswith(("/", os.sep)):
        raise fail("token_file", f"must name a file, not a folder, got {token_file!r}")
    token_file = os.path.join(os.path.dirname(os.path.abspath(path)), os.path.expanduser(token_file))
    auth_url = check_url(data.get("auth_url", EEN_V3_DEFAULT_AUTH_URL), fail, key="auth_url").rstrip("/")
    parsed = URL(auth_url)
    if parsed.scheme != "https" and not is_loopback(parsed.raw_host or ""):
        raise fail("auth_url", f"must be https:// (plain http:// only on a loopback host, for tests), got {auth_url!r}")
    if parsed.query_string or parsed.fragment:
        raise fail("auth_url", f"must have no query or fragment, got {auth_url!r}")
    return EenV3Config(client_id, secret, os.path.normpath(token_file), auth_url)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine: ``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
