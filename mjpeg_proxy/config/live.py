"""The whole configuration, and the one in force while the proxy runs (reloads included)."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING

from mjpeg_proxy.config.camera import CameraConfig
from mjpeg_proxy.config.server import ServerConfig

if TYPE_CHECKING:  # at run time, cluster.config imports this package (config.checks): a cycle
    from mjpeg_proxy.cluster.config import ClusterConfig

log = logging.getLogger(__name__)

RESTART_KEYS = ("host", "port", "request_timeout", "max_header_bytes", "font", "max_upstream_requests_per_host")
"""``[server]`` keys taken at start-up (by the listening socket, the HTTP parser, what every
camera shares: the fonts, the upstream hosts' caps): a reload cannot change them."""


@dataclass(frozen=True)
class Config:
    """The whole configuration. ``path`` is the file it came from, or None for defaults.

    ``tables`` are the file's tables that source kinds read (``[een]``), by name; the
    sections of the cameras that use one hold it too. ``cluster`` is the ``[cluster]``
    table, None without one (one process, no Redis).
    """

    server: ServerConfig
    cameras: tuple[CameraConfig, ...]
    path: str | None = None
    tables: Mapping[str, object] = field(default_factory=dict)
    cluster: ClusterConfig | None = None


class LiveConfig:
    """The configuration in force: the one the proxy started with, then each one a reload applied (``apply``).

    Read it like a ``Config``: ``server``, ``cameras``, ``path``, ``cluster``.
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
    def cluster(self) -> ClusterConfig | None:
        """The ``[cluster]`` settings the proxy started with (a reload never changes them)."""
        return self.current.cluster

    @property
    def path(self) -> str | None:
        """The file the configuration in force came from."""
        return self.current.path

    def apply(self, config: Config) -> tuple[list[str], list[str]]:
        """Put ``config`` in force, except the ``RESTART_KEYS`` and ``[cluster]``, which keep their values.

        Returns the ``[server]`` keys that changed, as ``key: old -> new`` texts (a secret
        as ``key: changed``): those now
        in force, and the ``RESTART_KEYS`` that wait for a restart. A changed ``[cluster]``
        (it joins or leaves Redis, which only a start does) is logged here, as a warning
        that it needs a restart.
        """
        old, old_cluster = self.current.server, self.current.cluster
        changed = {
            # A secret (a field kept out of repr) is never logged: only that it changed.
            f.name: _change(f.name, getattr(old, f.name), getattr(config.server, f.name), secret=not f.repr)
            for f in fields(ServerConfig)
            if getattr(old, f.name) != getattr(config.server, f.name)
        }
        kept = {key: getattr(old, key) for key in RESTART_KEYS}
        self.current = replace(config, server=replace(config.server, **kept), cluster=self.current.cluster)
        if cluster_changes := _cluster_changes(old_cluster, config.cluster):
            log.warning("configuration reload: [cluster] %s needs a restart to take effect", ", ".join(cluster_changes))
        applied = [text for key, text in changed.items() if key not in RESTART_KEYS]
        return applied, [text for key, text in changed.items() if key in RESTART_KEYS]


def _cluster_changes(old: ClusterConfig | None, new: ClusterConfig | None) -> list[str]:
    """What differs between two ``[cluster]`` tables, as ``key: old -> new`` texts; a password only as "changed"."""
    if old is None or new is None:
        return [] if old is new else ["table added" if old is None else "table removed"]
    return [
        _change(f.name, getattr(old, f.name), getattr(new, f.name), secret=f.name == "password")
        for f in fields(old)
        if getattr(old, f.name) != getattr(new, f.name)
    ]


def _change(key: str, old: object, new: object, *, secret: bool) -> str:
    """``key: old -> new`` as the file writes the values (``key: changed`` for a secret)."""
    return f"{key}: changed" if secret else f"{key}: {_as_written(old)} -> {_as_written(new)}"


def _as_written(value: object) -> str:
    """``value`` as a TOML file would write it: a list for a tuple, an address or network as a string."""
    if isinstance(value, tuple):
        return "[" + ", ".join(_as_written(item) for item in value) + "]"
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return f'"{value}"'
    return repr(value)
