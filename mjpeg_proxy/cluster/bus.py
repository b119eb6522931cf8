"""Frames between replicas: the owner publishes each on the camera's channel, and keeps a recent one in a key.

A message is a fixed header and the JPEG::

    magic "MJPX" (4 bytes), version 1 (1), flags (1: bit 0 = the offline picture),
    epoch (8, unsigned), seq (8, unsigned), timestamp (8, IEEE double: seconds since the
    epoch), state length (1), state (ASCII: the owner's camera state), then the JPEG.

Big-endian. Pub/sub keeps nothing (CLUSTER.md: a subscriber that was away misses what was
published meanwhile), so a recent message (at most ``ClusterTiming.keep_s`` old) also sits
in ``<prefix>latest:<camera>`` for a short time: a new viewer's first picture, a snapshot,
catching up after a resubscribe.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from redis.asyncio import Redis

MAGIC = b"MJPX"
VERSION = 1
PLACEHOLDER = 1
"""Flag bit: the frame is the owner's offline picture, not a camera frame."""
_HEADER = struct.Struct(">4sBBQQdB")


class BadMessage(ValueError):
    """Bytes on a camera's channel that are not a message of this format."""


@dataclass(frozen=True)
class Message:
    """One frame on the bus: its ``jpeg``, the owner's lease ``epoch`` and the frame's ``seq`` in it.

    ``timestamp`` is seconds since the epoch (the frame's own time); ``placeholder`` marks
    the owner's offline picture; ``state`` is the owner's camera state then (``live``,
    ``offline``, ...).
    """

    epoch: int
    seq: int
    timestamp: float
    placeholder: bool
    state: str
    jpeg: bytes

    def encode(self) -> bytes:
        """The message's bytes."""
        state = self.state.encode("ascii")[:255]
        flags = PLACEHOLDER if self.placeholder else 0
        return _HEADER.pack(MAGIC, VERSION, flags, self.epoch, self.seq, self.timestamp, len(state)) + state + self.jpeg

    @classmethod
    def decode(cls, data: bytes) -> Message:
        """Read a message's bytes.

        Raises:
            BadMessage: another format or version, or cut short.
        """
        if len(data) < _HEADER.size:
            raise BadMessage(f"{len(data)} bytes, shorter than a header")
        magic, version, flags, epoch, seq, timestamp, state_length = _HEADER.unpack_from(data)
        if magic != MAGIC or version != VERSION:
            raise BadMessage(f"not a version {VERSION} frame message")
        start = _HEADER.size + state_length
        if len(data) < start:
            raise BadMessage("cut short in its state")
        state = data[_HEADER.size : start].decode("ascii", errors="replace")
        return cls(epoch, seq, timestamp, bool(flags & PLACEHOLDER), state, data[start:])


class FrameBus:
    """The cameras' channels and latest-frame keys in ``redis``, under ``prefix``.

    Every method raises redis-py's ``RedisError`` when Redis cannot be reached.
    """

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    def channel(self, camera_id: str) -> str:
        """Camera ``camera_id``'s channel."""
        return f"{self._prefix}frames:{camera_id}"

    async def publish(self, camera_id: str, message: Message) -> int:
        """Publish ``message`` on the camera's channel; return how many replicas got it."""
        return int(await self._redis.publish(self.channel(camera_id), message.encode()))

    async def keep(self, camera_id: str, message: Message, keep_s: float) -> None:
        """Keep ``message`` as the latest for ``keep_s`` seconds, without publishing it (nobody listens)."""
        await self._redis.set(f"{self._prefix}latest:{camera_id}", message.encode(), px=max(1, round(keep_s * 1000)))

    async def latest(self, camera_id: str) -> Message | None:
        """The latest message of camera ``camera_id`` still kept; None when there is none.

        Raises:
            BadMessage: the key holds something else.
        """
        data = await self._redis.get(f"{self._prefix}latest:{camera_id}")
        if data is None:
            return None
        if not isinstance(data, bytes):  # a client set to decode answers
            raise BadMessage("the latest-frame key was read as text")
        return Message.decode(data)
