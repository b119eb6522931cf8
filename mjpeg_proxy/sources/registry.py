"""The source kinds.

Each source module registers its kind here, as go2rtc's ``HandleFunc`` registers a URL
scheme, so a new source touches no other module.

A kind is the name a ``[[cameras]]`` table gives in ``source``, the keys it reads beside
``config.camera.COMMON_KEYS``, how it reads them into its typed section, and how it builds a
camera's Source from that section. A kind may also read a table of its own at the top of
the file (``[een]``: ``register_table``), which its cameras' sections then refer to, and
give the cameras served without a file (``register_default_camera``). Every name is
registered once: a second registration raises.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from mjpeg_proxy.camera.source import Source
from mjpeg_proxy.config.camera import DEFAULT_FPS, CameraConfig, CameraTable, SourceConfig
from mjpeg_proxy.sources.upstreams import Upstreams

S = TypeVar("S", bound=SourceConfig)


@dataclass(frozen=True)
class SourceKind(Generic[S]):
    """One source kind.

    ``section`` is its section's class, whose ``kind`` is the kind's name; ``keys`` the
    camera keys it reads beside the common ones; ``parse`` reads them into a section
    (raising ``ConfigError``); ``build`` makes the Source of a camera with such a section,
    from the clients the cameras share; ``default_fps`` is the frames per second of a
    camera without ``fps``.
    """

    section: type[S]
    keys: frozenset[str]
    parse: Callable[[CameraTable], S]
    build: Callable[[CameraConfig, S, Upstreams], Source]
    default_fps: float = DEFAULT_FPS

    @property
    def name(self) -> str:
        """The name the configuration file gives this kind (``source = "snapshot"``)."""
        return self.section.kind

    def source_for(self, camera: CameraConfig, upstreams: Upstreams) -> Source:
        """Build ``camera``'s Source.

        Raises:
            TypeError: ``camera``'s section is not this kind's.
        """
        section = camera.source
        if not isinstance(section, self.section):
            raise TypeError(f"camera {camera.id!r} has a {type(section).__name__}, not a {self.section.__name__}")
        return self.build(camera, section, upstreams)


TableParser = Callable[[Any, str, Mapping[str, str]], object]
"""Reads a top-level table (its data, the file's path, the environment); raises ``ConfigError``."""

KINDS: dict[str, SourceKind[Any]] = {}
"""Every registered kind, by name, in the order registered (the order messages list them)."""
TABLES: dict[str, TableParser] = {}
"""Every registered top-level table's parser, by the table's name."""


DEFAULT_CAMERAS: list[CameraConfig] = []
"""The cameras served without a configuration file, in the order registered."""


def register(kind: SourceKind[Any]) -> None:
    """Make ``kind`` known to the configuration loader and to ``build_source``.

    Raises:
        ValueError: a kind of that name is already registered.
    """
    if kind.name in KINDS:
        raise ValueError(f"source kind {kind.name!r} is already registered")
    KINDS[kind.name] = kind


def register_table(name: str, parse: TableParser) -> None:
    """Make the top-level table ``[name]`` known to the configuration loader.

    Raises:
        ValueError: a table of that name is already registered.
    """
    if name in TABLES:
        raise ValueError(f"table [{name}] is already registered")
    TABLES[name] = parse


def register_default_camera(camera: CameraConfig) -> None:
    """Serve ``camera`` when no configuration file is given (``config.loader.default_config``).

    Raises:
        ValueError: a default camera with that id is already registered.
    """
    if any(other.id == camera.id for other in DEFAULT_CAMERAS):
        raise ValueError(f"a default camera with id {camera.id!r} is already registered")
    DEFAULT_CAMERAS.append(camera)


def build_source(camera: CameraConfig, upstreams: Upstreams) -> Source:
    """Return the Source for ``camera``, built by its kind from the shared ``upstreams``.

    Raises:
        KeyError: ``camera``'s kind is not registered.
    """
    return KINDS[camera.kind].source_for(camera, upstreams)
