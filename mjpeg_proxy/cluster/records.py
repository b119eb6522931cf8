"""Small records the replicas share through Redis, each with a lock: an EEN account's tokens.

The ``sources.een_token_store.SharedRecords`` of cluster mode. The lock is redis-py's
``Lock`` (``SET NX PX`` with a token, released by a compare-and-delete script), held at
most ``LOCK_S`` seconds so a replica that dies holding it stops no one for long.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from redis.exceptions import LockError, RedisError

from mjpeg_proxy.sources.een_token_store import SharedRecordsUnavailable

LOCK_S = 60.0
"""The longest, in seconds, one replica holds a record's lock (a token refresh takes far less)."""
LOCK_WAIT_S = 45.0
"""The longest, in seconds, a replica waits for a record's lock before giving up this time."""


class RedisRecords:
    """Records under ``prefix`` in ``redis``.

    Every method raises ``SharedRecordsUnavailable`` when Redis does not answer.
    """

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    async def get(self, key: str) -> bytes | None:
        """The record ``key``; None when there is none."""
        try:
            value = await self._redis.get(self._prefix + key)
        except RedisError as error:
            raise SharedRecordsUnavailable(f"Redis: {type(error).__name__}") from None
        return value if isinstance(value, bytes) or value is None else str(value).encode()

    async def put(self, key: str, value: bytes) -> None:
        """Store ``value`` as the record ``key`` (no expiry)."""
        try:
            await self._redis.set(self._prefix + key, value)
        except RedisError as error:
            raise SharedRecordsUnavailable(f"Redis: {type(error).__name__}") from None

    @contextlib.asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        """Hold record ``key``'s lock for the block."""
        lock = self._redis.lock(f"{self._prefix}{key}:lock", timeout=LOCK_S, blocking_timeout=LOCK_WAIT_S)
        try:
            acquired = await lock.acquire()
        except RedisError as error:
            raise SharedRecordsUnavailable(f"Redis: {type(error).__name__}") from None
        if not acquired:
            raise SharedRecordsUnavailable(f"another replica held the lock of {key} for over {LOCK_WAIT_S:g} s")
        try:
            yield
        finally:
            with contextlib.suppress(LockError, RedisError):
                await lock.release()
