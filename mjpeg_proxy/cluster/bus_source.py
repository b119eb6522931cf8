"""A follower's source: the owner's frames, from the bus, as if they came from the camera.

Run by the camera's own fetch loop (``Camera.fetch_loop``), so a follower has what a
camera has: the stall watchdog (no frame from the owner for the stall timeout: the
offline picture, and a fresh subscription), states, counters. An offline picture of the
owner arrives as its state: the follower's loop enters the same state and draws its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from redis.exceptions import RedisError

from mjpeg_proxy.camera.errors import SourceError, UpstreamUnavailable
from mjpeg_proxy.camera.frame import Frame
from mjpeg_proxy.camera.source import Source
from mjpeg_proxy.camera.state import CameraState, error_for
from mjpeg_proxy.cluster.bus import Message
from mjpeg_proxy.cluster.subscription import Subscription


class BusSource(Source):
    """Yields the frames of camera ``camera_id`` that ``accept`` lets through, from ``subscription``.

    ``accept(message)`` says whether a message is the current owner's and new (the epoch
    and sequence rules are the feed's). Only the newest message waiting is kept: a
    follower that falls behind skips frames, as a viewer does. ``retry_s`` is how soon
    the follower looks again after the owner reported an error state.

    Raises (from ``frames()``): the error of the owner's state for an offline picture
    (``state.error_for``), with ``retry_s`` as its ``retry_after_s``; UpstreamUnavailable
    when Redis cannot be reached.
    """

    def __init__(
        self, subscription: Subscription, camera_id: str, accept: Callable[[Message], bool], retry_s: float
    ) -> None:
        self._subscription = subscription
        self._camera_id = camera_id
        self._accept = accept
        self._retry_s = retry_s
        self._waiting: Message | None = None
        self._arrived = asyncio.Event()

    async def frames(self) -> AsyncIterator[Frame]:
        """Yield each new frame of the owner; raise as described on the class."""
        try:
            await self._subscription.follow(self._camera_id, self._handle)
            while True:
                await self._arrived.wait()
                self._arrived.clear()
                message, self._waiting = self._waiting, None
                if message is None:
                    continue
                if message.placeholder:
                    raise self._owner_error(message.state)
                yield Frame(message.jpeg, upstream_time=message.timestamp)
        except RedisError as error:
            raise UpstreamUnavailable(f"Redis: {type(error).__name__}") from None
        finally:
            self._subscription.unfollow(self._camera_id)

    def _handle(self, message: Message) -> None:
        if self._accept(message):
            self._waiting = message
            self._arrived.set()

    def _owner_error(self, state: str) -> SourceError:
        try:
            known = CameraState(state)
        except ValueError:
            known = CameraState.OFFLINE
        reason = known.reason or "no picture"
        return error_for(known)(f"the replica that fetches it says: {reason}", retry_after_s=self._retry_s)
