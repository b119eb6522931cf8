"""This replica in the cluster: its Redis client, its id, and what its cameras' feeds share."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, RedisError

from mjpeg_proxy.camera.timing import Clock
from mjpeg_proxy.cluster.bus import FrameBus
from mjpeg_proxy.cluster.config import ClusterConfig
from mjpeg_proxy.cluster.interest import Interest
from mjpeg_proxy.cluster.lease import Lease
from mjpeg_proxy.cluster.records import RedisRecords
from mjpeg_proxy.cluster.subscription import Subscription

log = logging.getLogger(__name__)

KEY_PREFIX = "mjpeg-proxy:"
"""Every key and channel of the cluster starts with this, so one Redis can hold other data too."""
HEALTH_CHECK_S = 5.0
"""Seconds a Redis connection may stay idle before it is checked (a PING) when next used."""
REDIS_TIMEOUT_S = 2.0
"""The longest, in seconds, a Redis command or connection may take before Redis counts as unreachable."""


@dataclass(frozen=True)
class ClusterTiming:
    """The cluster's periods, in seconds: the lease, and how often feeds renew and look.

    ``lease_s`` is ``[cluster] lease_seconds``; an owner extends its lease every
    ``lease_s / 3`` and looks who else wants the camera every ``check_s``; a follower
    looks whether the owner is still there every ``check_s``, and just after the lease runs
    out (so a dead owner is replaced as soon as its lease ends); interest lasts ``lease_s`` and is renewed with each
    look; Redis is tried again every ``retry_s`` while unreachable; an owner keeps a recent
    frame in Redis every ``keep_s``.
    """

    lease_s: float = 5.0
    check_s: float = 0.5
    retry_s: float = 2.0
    keep_s: float = 1.0

    @property
    def extend_s(self) -> float:
        """How often an owner extends its lease, in seconds."""
        return self.lease_s / 3


class ClusterNode:
    """Replica ``replica_id`` of the cluster whose Redis is at ``redis_url`` (with ``password``, if any).

    ``redis``, ``bus`` and ``subscription`` are shared by every camera's ``ClusterFeed``;
    ``records`` by the accounts whose logins the replicas share (EEN v3 tokens);
    ``lease`` and ``interest`` make each camera's own. ``clock`` times the waits.
    """

    def __init__(
        self,
        redis_url: str,
        replica_id: str,
        password: str | None = None,
        timing: ClusterTiming | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.replica_id = replica_id
        self.timing = timing or ClusterTiming()
        self.clock = clock or Clock()
        self.redis = Redis.from_url(
            redis_url,
            password=password,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            # A connection idle this long is checked before use: the subscription's too, so
            # one silently cut (a NAT's idle drop) is found, not waited on for ever.
            health_check_interval=HEALTH_CHECK_S,
        )
        self.bus = FrameBus(self.redis, KEY_PREFIX)
        self.records = RedisRecords(self.redis, KEY_PREFIX)
        self.subscription = Subscription(self.redis, self.bus, self.clock)

    @classmethod
    def from_config(cls, config: ClusterConfig, port: int, clock: Clock | None = None) -> ClusterNode:
        """The node ``[cluster]`` describes, for a proxy listening on ``port``.

        Its id is ``replica_id``, else the host name and the port (``host:8080``), unique
        for replicas on one machine too.
        """
        replica_id = config.replica_id or f"{socket.gethostname()}:{port}"
        return cls(config.redis_url, replica_id, config.password, ClusterTiming(lease_s=config.lease_seconds), clock)

    def lease(self, camera_id: str) -> Lease:
        """Camera ``camera_id``'s lease, as this replica sees it."""
        return Lease(self.redis, KEY_PREFIX, camera_id, self.replica_id, self.timing.lease_s)

    def interest(self, camera_id: str) -> Interest:
        """This replica's interest in camera ``camera_id``."""
        return Interest(self.redis, KEY_PREFIX, camera_id, self.replica_id)

    async def announce(self) -> None:
        """Say in the log that this process is a replica, which one, and whether Redis answers now."""
        where = self.redis.get_connection_kwargs()
        address = where.get("path") or f"{where.get('host')}:{where.get('port')}/{where.get('db', 0)}"
        try:
            await self.ping()
        except AuthenticationError as error:
            log.error(
                "cluster mode: replica %s; Redis at %s refused the password (%s): check [cluster] password_env; "
                "each camera is fetched here alone meanwhile",
                self.replica_id,
                address,
                error,
            )
        except RedisError as error:
            log.error(
                "cluster mode: replica %s; Redis at %s does not answer (%s): each camera is fetched here alone "
                "until it does",
                self.replica_id,
                address,
                error,
            )
        else:
            log.info("cluster mode: replica %s; Redis at %s answers", self.replica_id, address)

    async def ping(self) -> None:
        """Return when Redis answers.

        Raises:
            RedisError: it does not.
        """
        await self.redis.ping()

    async def close(self) -> None:
        """Stop the subscription and close the connections."""
        await self.subscription.close()
        await self.redis.aclose()
