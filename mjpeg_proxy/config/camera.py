"""One ``[[cameras]]`` entry: the settings every camera has, and its source's own section.

Each source kind (``mjpeg_proxy.sources.registry``) reads its own keys into its own typed
section, a ``SourceConfig``; this module knows none of them.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from mjpeg_proxy.config.checks import Check, Fail, Problem, boolean, number_in, text

MIN_FPS, MAX_FPS = 1 / 16, 30.0
"""Frames per second a camera may be set to: EEN previews come every 0.25 to 16 s (EEN API
v1 docs, Asset), and camera streams rarely run faster than ``MAX_FPS``."""
DEFAULT_FPS = 1.0
"""Frames per second of a camera without ``fps``, unless its source kind says otherwise
(``sources.registry.SourceKind.default_fps``)."""
DEFAULT_PICTURE_SIZE = (640, 360)
"""Width and height, in pixels, of a picture drawn before a camera's first frame came."""
COMMON_KEYS = frozenset({"id", "name", "source", "fps", "stall_timeout", "linger_seconds", "always_on", "access"})
ACCESS = ("public", "signed")
"""A camera's ``access`` values: anyone may watch, or only with a signed link (``web.signing``)."""
"""The keys every ``[[cameras]]`` table may hold, whatever its source."""


def _access(value: Any) -> str:
    if value not in ACCESS:
        raise Problem(f'must be "public" or "signed", got {value!r}')
    return str(value)


COMMON_CHECKS: dict[str, Check] = {
    "name": text,
    "fps": number_in(MIN_FPS, MAX_FPS, "a number"),
    "stall_timeout": number_in(1, 3600),
    "linger_seconds": number_in(0, 86_400),
    "always_on": boolean,
    "access": _access,
}
"""The check of each common key but ``id`` and ``source``, in the order they are reported."""


class SourceConfig:
    """A camera's source section: the settings of one source kind, read by that kind.

    Subclasses are frozen dataclasses that set ``kind`` to the name the configuration
    file gives the source (``source = "snapshot"``).
    """

    kind: ClassVar[str]

    def shared_key(self) -> Hashable | None:
        """The key of the client this source shares with other cameras (an account), or None.

        ``sources.upstreams.Upstreams.shared`` keeps one client per key while a camera
        in force has it.
        """
        return None

    @property
    def picture_size(self) -> tuple[int, int]:
        """The size, in pixels (width, height), of a picture drawn before any frame came."""
        return DEFAULT_PICTURE_SIZE


@dataclass(frozen=True)
class CameraConfig:
    """One ``[[cameras]]`` entry: the settings every camera has, and ``source``, its source's section.

    ``fps`` is frames per second to fetch (demo: to render). ``stall_timeout`` (seconds
    without a complete frame before the camera counts as stalled and is reconnected) is
    None for the Camera's default. The camera fetches only while someone watches and for
    ``linger_seconds`` after the last viewer leaves or the last snapshot, unless
    ``always_on``. ``access``: ``"public"``, or ``"signed"`` (its stream, snapshot and
    page need a signed link, ``web.signing``).
    """

    id: str
    source: SourceConfig
    name: str = ""
    fps: float = DEFAULT_FPS
    stall_timeout: float | None = None
    linger_seconds: float = 30.0
    always_on: bool = False
    access: str = "public"

    @property
    def kind(self) -> str:
        """The source kind's name, as the configuration file writes it (``"snapshot"``)."""
        return self.source.kind

    @property
    def display_name(self) -> str:
        """The name shown to people: ``name``, or the id when no name is set."""
        return self.name or self.id

    @property
    def picture_size(self) -> tuple[int, int]:
        """The size, in pixels (width, height), of a picture drawn before any frame came."""
        return self.source.picture_size


@dataclass(frozen=True)
class CameraTable:
    """One ``[[cameras]]`` table as a source kind reads its section from it.

    ``data`` is the table as TOML gave it; ``fail`` words an error about one of its
    fields; ``environ`` holds the secrets that ``password_env`` keys name; ``tables`` are
    the file's other tables that source kinds read (``[een]``), by name, each present
    only when the file has it.
    """

    data: Mapping[str, Any]
    fail: Fail
    environ: Mapping[str, str]
    tables: Mapping[str, object]
