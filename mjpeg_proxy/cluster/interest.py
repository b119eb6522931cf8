"""Which replicas want a camera: each says so in Redis, for a while, and says it again while it does.

One sorted set per camera (``<prefix>interest:<camera>``): its members are replica ids,
their scores when their interest runs out (Redis's clock, in milliseconds). A replica
with viewers of a camera renews its member every few seconds; a replica that crashed
drops out by itself when its time runs out. A second hash (``<prefix>viewers:<camera>``)
holds each interested replica's viewer count, for the cluster-wide viewer metric.
"""

from __future__ import annotations

from redis.asyncio import Redis

# KEYS[1] the set, KEYS[2] the viewer hash; ARGV[1] the replica, ARGV[2] the time in ms, ARGV[3] viewers.
# Adds or renews the replica (ARGV[2] > 0) or removes it (ARGV[2] == 0); drops the expired ones;
# returns {the other replicas still interested, their viewers}.
_DECLARE = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms)
for _, replica in ipairs(gone) do redis.call('HDEL', KEYS[2], replica) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('ZADD', KEYS[1], now_ms + ttl, ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
else
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
end
local others, viewers = 0, 0
for _, replica in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if replica ~= ARGV[1] then
    others = others + 1
    viewers = viewers + (tonumber(redis.call('HGET', KEYS[2], replica)) or 0)
  end
end
return {others, viewers}
"""


class Interest:
    """Replica ``replica``'s interest in camera ``camera_id``, kept in ``redis`` under ``prefix``.

    Every method raises redis-py's ``RedisError`` when Redis cannot be reached.
    """

    def __init__(self, redis: Redis, prefix: str, camera_id: str, replica: str) -> None:
        self._keys = [f"{prefix}interest:{camera_id}", f"{prefix}viewers:{camera_id}"]
        self._replica = replica
        self._declare = redis.register_script(_DECLARE)

    async def declare(self, wanted: bool, viewers: int, ttl_s: float) -> tuple[int, int]:
        """Say whether we want the camera (for ``ttl_s`` seconds from now), with ``viewers`` watching here.

        Returns (other replicas interested, their viewers).
        """
        ttl_ms = max(1, round(ttl_s * 1000)) if wanted else 0
        others, viewers_elsewhere = await self._declare(keys=self._keys, args=[self._replica, ttl_ms, viewers])
        return int(others), int(viewers_elsewhere)
