"""What a camera has done so far: the counters and the input rate status pages and metrics show."""

from __future__ import annotations

import collections
from collections.abc import Callable
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
    frames_resized: int = 0
    """Frames resized for ``?width=`` (once per frame and width, streams and snapshots alike)."""
    frames_resize_failed: int = 0
    """Frames that could not be resized (corrupt, over ``max_resize_pixels``), once per frame and width."""
    viewers_timed_out: int = 0
    """Viewers closed because their connection took no data for ``write_timeout`` seconds."""
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    """Upstream errors by ``SourceError.kind``."""
    last_error: str | None = None
    """The latest upstream error in words (never a secret), None before the first."""


MIN_SPAN_S = 1.0
"""The shortest span, in seconds, that ``InputRate`` divides by (just after the upstream opened)."""


class InputRate:
    """Frames received per second, over the last ``window_s`` seconds.

    Or since the upstream was opened when that is more recent (at least ``MIN_SPAN_S``). Times are
    ``monotonic()`` seconds (``Frame.received_monotonic``).
    """

    def __init__(self, window_s: float, monotonic: Callable[[], float]) -> None:
        self._window_s = window_s
        self._monotonic = monotonic
        self._arrivals: collections.deque[float] = collections.deque()
        self._opened = 0.0

    def opened(self) -> None:
        """The upstream was opened (each reconnection too): count this connection's frames only."""
        self._opened = self._monotonic()
        self._arrivals.clear()

    def arrived(self, at: float) -> None:
        """Count a frame received at ``at``."""
        self._arrivals.append(at)
        self._forget(at)

    def per_second(self) -> float:
        """The rate now, in frames per second."""
        now = self._monotonic()
        self._forget(now)
        if not self._arrivals:
            return 0.0
        return len(self._arrivals) / min(self._window_s, max(MIN_SPAN_S, now - self._opened))

    def _forget(self, now: float) -> None:
        while self._arrivals and self._arrivals[0] < now - self._window_s:
            self._arrivals.popleft()
