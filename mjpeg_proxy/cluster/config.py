"""The ``[cluster]`` table: the Redis server the replicas share, and who this replica is."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from yarl import URL

from mjpeg_proxy.config.checks import (
    Check,
    Problem,
    check_table,
    has_blank_or_invisible,
    is_number,
    read_fields,
    secret_from_env,
    shown,
    valid_host,
)

REDIS_SCHEMES = ("redis", "rediss", "unix")
"""What redis-py connects to: TCP, TCP with TLS, a Unix socket."""
MIN_LEASE_SECONDS = 1.0
"""The shortest ``lease_seconds``: the owner renews it three times a lease over the network,
so a shorter one would be lost to a slow round trip."""
MAX_LEASE_SECONDS = 60.0
"""The longest ``lease_seconds``: a dead owner's cameras wait this long for a new one."""

_REPLICA_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_DB_PATH_RE = re.compile(r"/?|/[0-9]{1,5}")
_URL_EXAMPLE = '"redis://10.0.0.5:6379/0"'
_NO_PASSWORD = "must not hold a password; name an environment variable that holds it in 'password_env'"


@dataclass(frozen=True)
class ClusterConfig:
    """The ``[cluster]`` table; its presence turns cluster mode on.

    ``redis_url``: the Redis server, ``redis://`` (``rediss://`` for TLS, ``unix://`` for a
    socket) with an optional user and database number, never a password. ``password``:
    the Redis password, from the environment variable ``password_env`` names; None for a
    server without one; kept out of ``repr``. ``replica_id``: this replica's name in Redis
    and on ``/status``; None for "host name and port", which the application resolves.
    ``lease_seconds``: how long a camera's owner holds it without extending it, so how
    long its cameras go without an owner after it dies (1 to 60 seconds).
    """

    redis_url: str
    password: str | None = field(default=None, repr=False)
    replica_id: str | None = None
    lease_seconds: float = 5.0


def parse_cluster(data: Any, path: str, environ: Mapping[str, str]) -> ClusterConfig:
    """Check the ``[cluster]`` table of the file at ``path``; the password comes from ``environ``.

    Raises:
        ConfigError: a key is unknown or missing, or a value is wrong; the message never
            holds the password.
    """
    fail = check_table(data, path, "cluster", {*_CHECKS, "password_env"})
    if "redis_url" not in data:
        raise fail("redis_url", f"missing; the Redis server the replicas share, such as {_URL_EXAMPLE}")
    values = read_fields(data, _CHECKS, fail)
    return ClusterConfig(password=secret_from_env(data, "password_env", environ, fail), **values)


def _redis_url(value: Any) -> str:
    """A URL redis-py can connect to, without a password (messages never repeat the URL: it may hold one)."""
    if not isinstance(value, str):
        raise Problem(f"must be a string such as {_URL_EXAMPLE}")
    if has_blank_or_invisible(value):
        raise Problem("must not contain spaces or invisible characters")
    try:
        url = URL(value)
        host = url.raw_host
        port = url.explicit_port
    except ValueError as e:  # yarl's words name the problem ("Port out of range 0-65535")
        raise Problem(f"is not a valid URL: {e}") from None
    if url.password is not None or "password" in url.query:
        raise Problem(_NO_PASSWORD)
    if url.scheme not in REDIS_SCHEMES or not value.lower().startswith(tuple(f"{s}://" for s in REDIS_SCHEMES)):
        raise Problem(f"must start with redis://, rediss:// (TLS) or unix:// (a socket), such as {_URL_EXAMPLE}")
    if url.scheme == "unix":
        if host or not url.path.startswith("/") or url.path == "/":
            raise Problem('must name the socket\'s absolute path, such as "unix:///run/redis/redis.sock"')
    else:
        _check_server(url, host, port)
    return value


def _check_server(url: URL, host: str | None, port: int | None) -> None:
    """Refuse a ``redis://`` or ``rediss://`` URL without a valid host, with port 0, or a path that is no database."""
    if not host or not valid_host(host):
        raise Problem(f"must name a valid host, such as {_URL_EXAMPLE}")
    if port == 0:
        raise Problem("port must be from 1 to 65535")
    if not _DB_PATH_RE.fullmatch(url.raw_path):
        raise Problem(f"its path must be a database number such as /0, got {url.raw_path!r}")


def _replica_id(value: Any) -> str:
    if not isinstance(value, str) or not _REPLICA_ID_RE.fullmatch(value):
        raise Problem(f"must be 1-128 letters, digits, '.', '_', ':' and '-', such as \"web-1:8080\", got {value!r}")
    return value


def _lease_seconds(value: Any) -> float:
    # Under a second it would be lost to a slow round trip; past a minute, a dead owner's cameras stay dark too long.
    if not is_number(value) or not MIN_LEASE_SECONDS <= value <= MAX_LEASE_SECONDS:
        lowest, highest = shown(MIN_LEASE_SECONDS), shown(MAX_LEASE_SECONDS)
        raise Problem(f"must be a number of seconds from {lowest} to {highest}, got {value!r}")
    return float(value)


_CHECKS: dict[str, Check] = {
    "redis_url": _redis_url,
    "replica_id": _replica_id,
    "lease_seconds": _lease_seconds,
}
"""The check of each ``[cluster]`` key but ``password_env``, in the order they are reported."""
