"""The Source: what the camera core reads a camera's frames from.

Each upstream protocol (``mjpeg_proxy.sources``) implements it; the camera's fetch loop
(``fetch.FetchLoop``) is its only reader.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator

from mjpeg_proxy.camera.frame import Frame


class Source(ABC):
    """One upstream protocol for one camera; knows nothing about viewers.

    ``frames()`` yields complete JPEG frames for as long as the upstream gives them
    and raises a ``mjpeg_proxy.camera.errors.SourceError`` subclass when it cannot. It does
    not retry: the Camera calls ``frames()`` again after its backoff.
    """

    upstream_requests: int = 0
    """Requests this source has made to its upstream (HTTP requests; logins not included)."""
    on_held_back: Callable[[bool], None] | None = None
    """Told True when the source starts waiting for its turn at its upstream (the proxy's
    own cap on requests to a host), False when it has it: the Camera's stall watchdog
    does not count that wait."""

    @abstractmethod
    def frames(self) -> AsyncIterator[Frame]:
        """Yield frames as they arrive; raise ``SourceError`` on failure."""

    async def close(self) -> None:  # noqa: B027 - most sources hold nothing to release
        """Release what the source holds (sessions, connections)."""

    @contextlib.contextmanager
    def held_back(self) -> Iterator[None]:
        """For the block, the source waits for its turn at its upstream (``on_held_back``)."""
        if self.on_held_back is not None:
            self.on_held_back(True)
        try:
            yield
        finally:
            if self.on_held_back is not None:
                self.on_held_back(False)
