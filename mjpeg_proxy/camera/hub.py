"""The FrameHub: the latest frame of one camera, fanned out to all of its viewers."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import NamedTuple, Protocol

from mjpeg_proxy.camera.frame import Frame


class HubClosed(Exception):
    """The hub was closed (the server is shutting down); no more parts will come."""


class Part(NamedTuple):
    """A published frame with the bytes of its multipart part, built once for all viewers:
    ``data`` for players and tools, ``browser_data`` for browsers (see MultipartWriter).
    """

    frame: Frame
    data: bytes
    browser_data: bytes


class Subscriber(Protocol):
    """A viewer the hub hands each new part to, synchronously, as it is published."""

    def offer(self, part: Part) -> None:
        """Take ``part`` now, or skip it (a viewer that is behind skips to newer parts)."""

    def close(self, last: Part | None) -> None:
        """The hub is closing: end the stream (``last`` is the latest part, if any)."""


class FrameHub:
    """Holds one camera's latest frame and wakes its viewers when a newer one arrives.

    Latest-frame-wins: nothing is queued per viewer. A viewer asks for "a part newer
    than the one I sent last"; one that is slow gets the newest part when it is ready
    again and skips the rest, so the memory a viewer costs is at most the part it is
    writing. ``build_part`` turns a Frame into the bytes every viewer writes (for tools,
    for browsers); it runs once per frame, in ``publish``.

    Viewers register with ``viewer()`` so the count is known to status pages and to
    anyone waiting in ``wait_viewers``. A viewer that passes a ``Subscriber`` is handed
    each part inside ``publish``, with no task switch per viewer: the fan-out of one
    frame to thousands of viewers is one loop. Others wait in ``next_part``.
    """

    def __init__(self, build_part: Callable[[Frame], tuple[bytes, bytes]]) -> None:
        self._build_part = build_part
        self._latest: Part | None = None
        self._seq = 0
        self._new_part = asyncio.Event()
        self._viewers = 0
        self._viewers_changed = asyncio.Event()
        self._closed = False
        self._subscribers: set[Subscriber] = set()

    @property
    def latest(self) -> Part | None:
        """The newest published part, or None before the first frame."""
        return self._latest

    @property
    def viewers(self) -> int:
        """Number of viewers now registered."""
        return self._viewers

    def publish(self, frame: Frame) -> Part:
        """Number ``frame`` (1, 2, ...), build its part, make it the latest and wake waiters."""
        self._seq += 1
        frame = dataclasses.replace(frame, seq=self._seq)
        part = self._latest = Part(frame, *self._build_part(frame))
        for subscriber in self._subscribers:
            subscriber.offer(part)
        woken, self._new_part = self._new_part, asyncio.Event()
        woken.set()
        return part

    @property
    def subscribers(self) -> frozenset[Subscriber]:
        """The viewers registered with a Subscriber, for periodic checks (re-sends, timeouts)."""
        return frozenset(self._subscribers)

    async def next_part(self, after_seq: int, timeout_s: float | None = None) -> Part | None:
        """Return the latest part once its sequence number is above ``after_seq``.

        Returns at once if it already is. Returns None if ``timeout_s`` seconds pass
        first (None waits for ever).

        Raises:
            HubClosed: the hub is closed, now or while waiting.
        """
        try:
            async with asyncio.timeout(timeout_s):
                while not self._closed and (self._latest is None or self._latest.frame.seq <= after_seq):
                    await self._new_part.wait()
        except TimeoutError:
            return None
        if self._closed:
            raise HubClosed
        return self._latest

    def forget(self) -> None:
        """Drop the latest part (the camera stopped fetching; it would soon be stale).
        Sequence numbers go on from where they were.
        """
        self._latest = None

    def close(self) -> None:
        """Wake every waiting viewer for the last time; ``next_part`` raises HubClosed from now on."""
        self._closed = True
        for subscriber in list(self._subscribers):
            subscriber.close(self._latest)
        woken, self._new_part = self._new_part, asyncio.Event()
        woken.set()

    @contextlib.contextmanager
    def viewer(self, subscriber: Subscriber | None = None) -> Iterator[None]:
        """Count a viewer for as long as the ``with`` block runs; a ``subscriber`` is
        handed every part published meanwhile, or closed at once if the hub is closed.
        """
        if subscriber is not None:
            if self._closed:
                subscriber.close(self._latest)  # came as the hub closed (a reload removed its camera)
            else:
                self._subscribers.add(subscriber)
        self._set_viewers(self._viewers + 1)
        try:
            yield
        finally:
            self._subscribers.discard(subscriber)  # type: ignore[arg-type]
            self._set_viewers(self._viewers - 1)

    async def wait_viewers(self, predicate: Callable[[int], bool]) -> int:
        """Wait until ``predicate(viewer count)`` holds; return that count."""
        while not predicate(self._viewers):
            await self._viewers_changed.wait()
        return self._viewers

    def _set_viewers(self, count: int) -> None:
        self._viewers = count
        woken, self._viewers_changed = self._viewers_changed, asyncio.Event()
        woken.set()
