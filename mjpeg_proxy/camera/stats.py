"""What a camera has done so far: the counters status pages and metrics show."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field


@dataclass(slots=True)
class CameraStats:
    """Counters of one camera since the proxy started, kept across reloads.

    The fetch loop counts what came from the upstream; each viewer counts what it wrote
    or skipped, so a viewer needs this record, not the whole Camera. Counts are of frames
    (or parts, one per frame written), bytes and viewers.
    """

    frames_received: int = 0
    """Frames received from the upstream."""
    frames_trimmed: int = 0
    """Frames received with bytes after their JPEG's end marker, cut off (``Frame.trimmed``)."""
    frames_sent: int = 0
    """Parts written to viewers (offline pictures included)."""
    bytes_sent: int = 0
    """Bytes of the parts in ``frames_sent``."""
    frames_dropped: int = 0
    """Parts a viewer skipped because its connection was still busy with earlier ones."""
    viewers_timed_out: int = 0
    """Viewers closed because their connection took no data for ``write_timeout`` seconds."""
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    """Upstream errors by ``SourceError.kind``."""
    last_error: str | None = None
    """The latest upstream error in words (never a secret), None before the first."""
