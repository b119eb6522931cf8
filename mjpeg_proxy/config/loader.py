"""Reads a configuration file.

Its ``[server]`` and ``[cluster]`` tables, the tables source kinds own (``[een]``), and each
``[[cameras]]`` entry, whose section its source kind reads.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from typing import Any

from mjpeg_proxy.cluster.config import parse_cluster
from mjpeg_proxy.config.camera import COMMON_CHECKS, COMMON_KEYS, CameraConfig, CameraTable
from mjpeg_proxy.config.checks import ConfigError, Fail, read_fields
from mjpeg_proxy.config.live import Config
from mjpeg_proxy.config.server import ServerConfig, parse_server, parse_signing_keys
from mjpeg_proxy.sources import DEFAULT_CAMERAS, KINDS, TABLES, SourceKind

_CAMERA_ID_RE = re.compile(r"[a-z0-9_-]{1,64}")


def default_config() -> Config:
    """The configuration used without ``--config``: the cameras source kinds registered for it.

    Those are ``sources.registry.DEFAULT_CAMERAS``.
    """
    return Config(server=ServerConfig(), cameras=tuple(DEFAULT_CAMERAS))


def load_config(path: str, environ: Mapping[str, str] = os.environ, *, require_cameras: bool = True) -> Config:
    """Read and check the TOML file at ``path``; secrets come from ``environ``.

    ``require_cameras=False`` accepts a file without cameras (``--een-esn`` adds them).

    Raises:
        ConfigError: the file cannot be read or parsed, or any value is wrong.
    """
    return parse_config(_read_toml(path), path, environ, require_cameras=require_cameras)


def load_table(path: str, name: str, environ: Mapping[str, str] = os.environ) -> object:
    """Read and check only the top-level table ``[name]`` of the TOML file at ``path``.

    For commands that need one account and not the cameras (``mjpeg-proxy een-login``).

    Raises:
        ConfigError: the file cannot be read or parsed, has no such table, or the table
            is wrong.
    """
    data = _read_toml(path)
    if name not in data:
        raise ConfigError(f"{path}: no [{name}] table")
    return TABLES[name](data[name], path, environ)


def load_signing_keys(path: str, environ: Mapping[str, str] = os.environ) -> tuple[bytes, ...]:
    """The signing keys of the TOML file at ``path`` (``[server] signing_key_env``, then the older ones).

    For ``mjpeg-proxy sign``: no other part of the file is read, so the other secrets it
    names need not be in ``environ``. Empty when the file names no signing key.

    Raises:
        ConfigError: the file cannot be read or parsed, or a signing key is wrong.
    """
    return parse_signing_keys(_read_toml(path).get("server", {}), path, environ)


def _read_toml(path: str) -> dict[str, Any]:
    """The TOML document at ``path``.

    Raises:
        ConfigError: the file cannot be read, is not UTF-8 or not TOML.
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
    return data


def parse_config(
    data: Mapping[str, Any], path: str, environ: Mapping[str, str], *, require_cameras: bool = True
) -> Config:
    """Check an already-parsed TOML document; see ``load_config``."""
    unknown = set(data) - {"server", "cluster", "cameras", *TABLES}
    if unknown:
        expected = ", ".join(["[server]", "[cluster]", *(f"[{name}]" for name in TABLES)])
        raise ConfigError(f"{path}: unknown table or key {sorted(unknown)[0]!r} (expected {expected} and [[cameras]])")
    server = parse_server(data.get("server", {}), path, environ)
    cluster = parse_cluster(data["cluster"], path, environ) if "cluster" in data else None
    tables = {name: parse(data[name], path, environ) for name, parse in TABLES.items() if name in data}
    cameras_data = data.get("cameras", None if require_cameras else [])
    if cameras_data is None:
        raise ConfigError(f"{path}: no cameras: add at least one [[cameras]] table")
    if not isinstance(cameras_data, list) or not all(isinstance(c, dict) for c in cameras_data):
        raise ConfigError(f"{path}: 'cameras' must be a list of tables, written [[cameras]]")
    if not cameras_data and require_cameras:
        raise ConfigError(f"{path}: no cameras: add at least one [[cameras]] table")
    cameras: list[CameraConfig] = []
    for index, entry in enumerate(cameras_data, start=1):
        fail = _camera_fail(entry, index, path)
        camera = _parse_camera(CameraTable(entry, fail, environ, tables))
        if camera.access == "signed" and not server.signing_keys:
            raise fail("access", '"signed" needs a signing key: set [server] signing_key_env')
        if any(other.id == camera.id for other in cameras):
            raise ConfigError(f"{path}: camera {camera.id!r}: field 'id': duplicate id, already used by another camera")
        cameras.append(camera)
    return Config(server=server, cameras=tuple(cameras), path=path, tables=tables, cluster=cluster)


def _camera_fail(data: Mapping[str, Any], index: int, path: str) -> Fail:
    """The error maker of the ``index``-th camera: named by its id when it has one."""
    raw_id = data.get("id")
    # repr() keeps the message on one line whatever characters the id holds.
    label = f"camera {raw_id!r}" if isinstance(raw_id, str) and raw_id else f"camera #{index}"

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{path}: {label}: field {key!r}: {problem}")

    return fail


def _parse_camera(table: CameraTable) -> CameraConfig:
    """Check one ``[[cameras]]`` table: its id and source kind, the common keys, then the kind's own section.

    Raises:
        ConfigError: a key is missing, unknown for the source kind, or has a wrong value.
    """
    data, fail = table.data, table.fail
    raw_id = data.get("id")
    if raw_id is None:
        raise fail("id", 'missing; every camera needs an id such as "garage"')
    if not isinstance(raw_id, str) or not _CAMERA_ID_RE.fullmatch(raw_id):
        raise fail("id", f"must be 1-64 characters of lowercase letters, digits, '-' and '_', got {raw_id!r}")
    kind = _kind(data.get("source"), fail)
    allowed = COMMON_KEYS | kind.keys
    for key in data:
        if key not in allowed:
            raise fail(key, f"unknown key for source {kind.name!r} (known: {', '.join(sorted(allowed))})")
    common = {"fps": kind.default_fps, **read_fields(data, COMMON_CHECKS, fail)}
    return CameraConfig(id=raw_id, source=kind.parse(table), **common)


def _kind(source: Any, fail: Fail) -> SourceKind[Any]:
    """The registered kind named by a camera's ``source``."""
    if source is None:
        raise fail("source", f"missing; one of: {', '.join(KINDS)}")
    if not isinstance(source, str) or source not in KINDS:
        raise fail("source", f"unknown source {source!r}; one of: {', '.join(KINDS)}")
    return KINDS[source]
