"""One pub/sub connection per replica for every camera it follows, read by a task that does nothing else.

Redis closes a subscriber that falls behind (``client-output-buffer-limit pubsub``,
CLUSTER.md), and a restart or a network cut ends the connection too. Either way the
task connects again, subscribes to every followed camera again and hands each its latest
kept message (``FrameBus.latest``), so a follower catches up with the newest picture.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from mjpeg_proxy.camera.backoff import Backoff
from mjpeg_proxy.camera.timing import Clock
from mjpeg_proxy.cluster.bus import BadMessage, FrameBus, Message

log = logging.getLogger(__name__)

Handler = Callable[[Message], None]
"""What a followed camera is handed each message with."""
READ_WAIT_S = 1.0
"""The longest one read of the connection waits, in seconds, before the task looks again."""
RECONNECT_BACKOFF_S = (0.2, 5.0)
"""First and longest wait, in seconds, before connecting again after the connection ended."""


class Subscription:
    """The cameras this replica follows on ``bus``, over one connection of ``redis``.

    ``follow(camera_id, handler)`` hands ``handler`` every message of the camera from now
    on, the latest kept one first; ``unfollow`` stops. The reading task runs while at
    least one camera is followed. ``cuts`` counts the connections that ended under it.
    """

    def __init__(self, redis: Redis, bus: FrameBus, clock: Clock | None = None) -> None:
        self._redis = redis
        self._bus = bus
        self._clock = clock or Clock()
        self._handlers: dict[str, Handler] = {}
        self._by_channel: dict[str, str] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.cuts = 0
        self.bad_messages = 0

    async def follow(self, camera_id: str, handler: Handler) -> None:
        """Hand ``handler`` each message of camera ``camera_id``: the latest kept one at once, then each new one.

        Raises:
            RedisError: Redis cannot be reached for the latest message.
        """
        self._handlers[camera_id] = handler
        self._by_channel[self._bus.channel(camera_id)] = camera_id
        self._changed.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._read(), name="cluster subscription")
        await self._catch_up(camera_id)

    def unfollow(self, camera_id: str) -> None:
        """Stop handing camera ``camera_id``'s messages."""
        self._handlers.pop(camera_id, None)
        self._by_channel.pop(self._bus.channel(camera_id), None)
        self._changed.set()

    async def close(self) -> None:
        """Stop the reading task."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _catch_up(self, camera_id: str) -> None:
        try:
            message = await self._bus.latest(camera_id)
        except BadMessage:
            self.bad_messages += 1
            return
        handler = self._handlers.get(camera_id)
        if message is not None and handler is not None:
            handler(message)

    async def _read(self) -> None:
        backoff = Backoff(*RECONNECT_BACKOFF_S)
        while self._handlers:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await self._listen(pubsub, backoff)
            except RedisError as error:
                self.cuts += 1
                delay = backoff.next_delay()
                log.warning("cluster: the frame subscription ended (%s); again in %.1f s", error, delay)
                await self._clock.sleep(delay)
                for camera_id in list(self._handlers):  # what was published meanwhile is gone
                    with contextlib.suppress(RedisError):
                        await self._catch_up(camera_id)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
        self._task = None

    async def _listen(self, pubsub: PubSub, backoff: Backoff) -> None:
        """Keep ``pubsub`` subscribed to the followed channels and hand on their messages, while any is followed.

        ``backoff`` starts over once a subscription is made: a cut after a good spell is
        followed at once, not after the waits of earlier cuts.
        """
        subscribed: set[str] = set()
        self._changed.set()  # a new connection: subscribe to every followed channel
        while self._handlers:
            if self._changed.is_set():
                self._changed.clear()
                wanted = set(self._by_channel)
                if wanted - subscribed:
                    await pubsub.subscribe(*(wanted - subscribed))
                    backoff.reset()
                if subscribed - wanted:
                    await pubsub.unsubscribe(*(subscribed - wanted))
                subscribed = wanted
            if not subscribed:
                await self._changed.wait()
                continue
            message = await pubsub.get_message(timeout=READ_WAIT_S)
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
            camera_id = self._by_channel.get(channel)
            handler = self._handlers.get(camera_id) if camera_id is not None else None
            if handler is None:
                continue
            try:
                handler(Message.decode(message["data"]))
            except BadMessage as error:
                self.bad_messages += 1
                log.debug("cluster: a bad message on %s: %s", channel, error)
            except Exception:  # a bug in one camera's handler must not stop every camera's frames
                log.exception("cluster: handling a message of %s failed", camera_id)
