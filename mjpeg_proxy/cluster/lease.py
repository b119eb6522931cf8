"""Who fetches a camera in a cluster: a lease per camera in Redis, with a fencing epoch.

The lease is one key, ``SET NX PX`` (redis.io, "Distributed Locks with Redis": a single
instance), its value ``<epoch>:<replica id>``; its holder extends it with a
compare-and-extend script before it runs out. Each new lease takes a new epoch, the
larger of an ``INCR`` counter and Redis's clock in milliseconds, so epochs grow also
across a Redis restart that lost every key (persistence off). Frames carry the epoch;
receivers drop frames of an epoch lower than one they have seen, so two owners for a
moment (a lease lost in a failover) never make pictures go backwards.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

# KEYS[1] the lease, KEYS[2] the epoch counter; ARGV[1] the replica id, ARGV[2] the lease in ms.
# Returns {1, value} when the lease is now ours, {0, value} with the holder's value otherwise.
_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if holder then
  return {0, holder}
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch = redis.call('INCR', KEYS[2])
if now_ms > epoch then
  epoch = now_ms
  redis.call('SET', KEYS[2], string.format('%d', epoch))
end
local value = string.format('%d', epoch) .. ':' .. ARGV[1]
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return {1, value}
"""
# KEYS[1] the lease; ARGV[1] our value, ARGV[2] the lease in ms. 1 when extended, 0 when not ours.
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS[1] the lease; ARGV[1] our value. 1 when released, 0 when not ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class Holder:
    """A lease's holder: ``replica`` (its id) and the lease's ``epoch``."""

    epoch: int
    replica: str

    @classmethod
    def parse(cls, value: bytes | str) -> Holder:
        """Read a lease key's value ``<epoch>:<replica id>``.

        Raises:
            ValueError: not such a value.
        """
        text = value.decode() if isinstance(value, bytes) else value
        epoch, _, replica = text.partition(":")
        return cls(int(epoch), replica)

    def value(self) -> str:
        """The lease key's value for this holder."""
        return f"{self.epoch}:{self.replica}"


class Lease:
    """The lease of camera ``camera_id`` for replica ``replica``, ``lease_s`` seconds long, in ``redis``.

    ``prefix`` starts every key (``<prefix>lease:<camera>``, ``<prefix>epoch:<camera>``).
    Every method raises redis-py's ``RedisError`` (``ConnectionError``, ``TimeoutError``)
    when Redis cannot be reached.
    """

    def __init__(self, redis: Redis, prefix: str, camera_id: str, replica: str, lease_s: float) -> None:
        self._redis = redis
        self._key = f"{prefix}lease:{camera_id}"
        self._epoch_key = f"{prefix}epoch:{camera_id}"
        self._replica = replica
        self._lease_ms = max(1, round(lease_s * 1000))
        self._acquire = redis.register_script(_ACQUIRE)
        self._extend = redis.register_script(_EXTEND)
        self._release = redis.register_script(_RELEASE)
        self.mine: Holder | None = None
        """Our holding, while we hold the lease."""

    async def acquire(self) -> Holder:
        """Take the lease if nobody holds it; return its holder (``mine`` is set when that is us)."""
        taken, value = await self._acquire(keys=[self._key, self._epoch_key], args=[self._replica, self._lease_ms])
        holder = Holder.parse(value)
        self.mine = holder if taken else None
        return holder

    async def extend(self) -> bool:
        """Extend our lease by ``lease_s`` from now; False (and ``mine`` None) when it is no longer ours."""
        if self.mine is None:
            return False
        if not await self._extend(keys=[self._key], args=[self.mine.value(), self._lease_ms]):
            self.mine = None
        return self.mine is not None

    async def release(self) -> None:
        """Give the lease up, if it is ours, so another replica can take it at once."""
        mine, self.mine = self.mine, None
        if mine is not None:
            await self._release(keys=[self._key], args=[mine.value()])

    async def holder(self) -> tuple[Holder | None, float]:
        """Who holds the lease now (None when nobody does), and the seconds it has left (0 then)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(self._key)
            pipe.pttl(self._key)
            value, left_ms = await pipe.execute()
        if value is None:
            return None, 0.0
        return Holder.parse(value), max(0, int(left_ms)) / 1000
