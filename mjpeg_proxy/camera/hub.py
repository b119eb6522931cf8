"""The FrameHub: the latest frame of one camera, fanned out to all of its viewers."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Generic, NamedTuple, Protocol, TypeVar

from mjpeg_proxy.camera.frame import Frame

P = TypeVar("P")
"""The payload built once per frame for every viewer (opaque to the hub)."""


class HubClosed(Exception):
    """The hub was closed (the server is shutting down); no more parts will come."""


class Part(NamedTuple, Generic[P]):
    """A published frame and its payload, built once for all viewers.

    The hub never looks into ``payload``: it is whatever the ``build`` function given to
    the hub made of the frame (for the web layer, the frame's bytes in each framing).
    """

    frame: Frame
    payload: P


class Subscriber(Protocol[P]):
    """A viewer the hub hands each new part to, synchronously, as it is published."""

    def offer(self, part: Part[P]) -> None:
        """Take ``part`` now, or skip it (a viewer that is behind skips to newer parts)."""

    def close(self, last: Part[P] | None) -> None:
        """The hub is closing: end the stream (``last`` is the latest part, if any)."""


class FrameHub(Generic[P]):
    """Holds one camera's latest frame and wakes its viewers when a newer one arrives.

    Latest-frame-wins: nothing is queued per viewer. A viewer asks for "a part newer
    than the one I sent last"; one that is slow gets the newest part when it is ready
    again and skips the rest, so the memory a viewer costs is at most the part it is
    writing. ``build`` turns a Frame into the payload every viewer writes; it runs once
    per frame, in ``publish``.

    Viewers register with ``viewer()`` so the count is known to status pages and to
    on-demand fetching. A viewer that passes a ``Subscriber`` is handed each part inside
    ``publish``, with no task switch per viewer: the fan-out of one frame to thousands of
    viewers is one loop. Others wait in ``next_part``.
    """

    def __init__(self, build: Callable[[Frame], P]) -> None:
        self._build = build
        self._latest: Part[P] | None = None
        self._seq = 0
        self._new_part = asyncio.Event()
        self._viewers = 0
        self._closed = False
        self._subscribers: set[Subscriber[P]] = set()

    @property
    def build(self) -> Callable[[Frame], P]:
        """What makes each frame's payload; a hub for the same viewers (a resized stream's) is made with it."""
        return self._build

    @property
    def latest(self) -> Part[P] | None:
        """The newest published part, or None before the first frame."""
        return self._latest

    @property
    def viewers(self) -> int:
        """Number of viewers now registered."""
        return self._viewers

    def publish(self, frame: Frame) -> Part[P]:
        """Number ``frame`` (1, 2, ...), build its part, make it the latest and hand it out.

        Every subscriber registered when the fan-out starts and still registered when
        its turn comes is offered the part; waiters in ``next_part`` are woken.
        """
        self._seq += 1
        frame = dataclasses.replace(frame, seq=self._seq)
        part = self._latest = Part(frame, self._build(frame))
        subscribers = self._subscribers
        # A copy: a subscriber may make others leave (or join) while it takes the part.
        for subscriber in tuple(subscribers):
            if subscriber in subscribers:
                subscriber.offer(part)
        woken, self._new_part = self._new_part, asyncio.Event()
        woken.set()
        return part

    async def next_part(self, after_seq: int, timeout_s: float | None = None) -> Part[P] | None:
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
        """Close every subscriber with the latest part and wake every waiter a last time.

        ``next_part`` raises HubClosed from now on; a subscriber that comes later is
        closed as it registers.
        """
        self._closed = True
        for subscriber in tuple(self._subscribers):
            subscriber.close(self._latest)
        woken, self._new_part = self._new_part, asyncio.Event()
        woken.set()

    @contextlib.contextmanager
    def viewer(self, subscriber: Subscriber[P] | None = None) -> Iterator[None]:
        """Count a viewer for as long as the ``with`` block runs.

        A ``subscriber`` is handed every part published meanwhile, or closed at once if
        the hub is closed.
        """
        if subscriber is not None:
            self.subscribe(subscriber)
        self._viewers += 1
        try:
            yield
        finally:
            if subscriber is not None:
                self.unsubscribe(subscriber)
            self._viewers -= 1

    def subscribe(self, subscriber: Subscriber[P]) -> None:
        """Hand ``subscriber`` every part published from now until ``unsubscribe``, not counting it as a viewer.

        For what passes parts on to viewers counted elsewhere (a resized stream,
        ``scaled.ScaledStreams``). Closed at once if the hub is closed.
        """
        if self._closed:
            subscriber.close(self._latest)  # came as the hub closed (a reload removed its camera)
        else:
            self._subscribers.add(subscriber)

    def unsubscribe(self, subscriber: Subscriber[P]) -> None:
        """Stop handing parts to ``subscriber`` (nothing if it was not subscribed)."""
        self._subscribers.discard(subscriber)
