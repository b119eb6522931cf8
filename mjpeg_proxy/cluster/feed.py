"""A camera's feed in cluster mode: fetch it as its owner, follow its owner's frames, or fetch alone.

While the camera is wanted here (viewers, linger, always on), the feed takes the camera's
lease if nobody holds it and runs the camera's own fetch loop, handing every picture the
camera publishes to the bus (``Camera.tap``); if another replica holds it, the feed
follows that replica's frames into the camera, exactly as if they came from the upstream.
An owner keeps fetching while other replicas say they want the camera
(``Camera.interest_elsewhere``). A follower that finds the lease free takes it. While
Redis cannot be reached the feed fetches by itself (``standalone``), as one process would,
and tries Redis again every ``ClusterTiming.retry_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from mjpeg_proxy.camera.feed import Feed
from mjpeg_proxy.camera.frame import Frame
from mjpeg_proxy.cluster.bus import Message
from mjpeg_proxy.cluster.bus_source import BusSource
from mjpeg_proxy.cluster.lease import Holder
from mjpeg_proxy.cluster.node import ClusterNode

if TYPE_CHECKING:
    from mjpeg_proxy.camera.camera import Camera, FeedWrapper

log = logging.getLogger(__name__)

LEASE_END_MARGIN_S = 0.01
"""How long after a lease's end, in seconds, a follower looks whether it is free."""
STOP_WAIT_S = 5.0
"""The longest, in seconds, a feed waits for the fetch or follow task it stops."""
GOODBYE_S = 0.5
"""The longest, in seconds, a feed that stops spends giving its lease up and withdrawing its interest."""


class Role(enum.StrEnum):
    """What a replica does for a camera now."""

    IDLE = "idle"  # not wanted here
    OWNER = "owner"  # fetches it and publishes its frames
    FOLLOWER = "follower"  # receives the owner's frames
    STANDALONE = "standalone"  # Redis unreachable: fetches it by itself


class ClusterFeed:
    """Camera ``camera``'s feed on replica ``node``: ``local`` (its own fetch loop) as owner, the bus as follower.

    ``role``, ``owner`` (the holder's replica id) and ``epoch`` say where its frames come
    from now (``status()``). ``frames_from_bus``, ``stale_dropped`` (older than one
    already seen), ``lease_changes`` and ``bus_errors`` (Redis failures of this camera's
    feed) count.
    """

    def __init__(self, camera: Camera, local: Feed, node: ClusterNode) -> None:
        self._camera = camera
        self._local = local
        self._node = node
        self._lease = node.lease(camera.id)
        self._interest = node.interest(camera.id)
        self.role = Role.IDLE
        self.owner: str | None = None
        self.epoch = 0
        self._seen_seq = 0
        self._recheck = asyncio.Event()
        self._seq = 0
        self._outbox: Frame | None = None
        self._outbox_ready = asyncio.Event()
        self.frames_from_bus = 0
        self.stale_dropped = 0
        self.lease_changes = 0
        self.bus_errors = 0

    def status(self) -> dict[str, object]:
        """``{"role": "owner" | "follower" | "standalone" | "idle", "owner": replica id or None, "epoch": N}``."""
        return {"role": str(self.role), "owner": self.owner, "epoch": self.epoch}

    @property
    def upstream_requests(self) -> int:
        """Requests this replica made to the upstream (as owner or standalone)."""
        return self._local.upstream_requests

    async def close(self) -> None:
        """Close the camera's own fetch loop's source."""
        await self._local.close()

    async def run(self) -> None:
        """Own, follow or fetch alone while the camera is wanted here; ends only when cancelled."""
        try:
            while True:
                try:
                    await self._in_cluster()
                except RedisError as error:
                    self.bus_errors += 1
                    log.warning("camera %s: Redis unreachable (%s); fetching it here alone", self._camera.id, error)
                    await self._standalone()
        finally:
            self.role, self.owner = Role.IDLE, None
            self._camera.interest_elsewhere = 0
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                # Bounded: a stop must not wait for an unreachable Redis (the lease runs out anyway).
                async with asyncio.timeout(GOODBYE_S):
                    await self._lease.release()
                    await self._interest.declare(False, 0, 0)

    async def _in_cluster(self) -> None:
        """Take the lease or follow its holder, in turn, for ever.

        Raises:
            RedisError: Redis cannot be reached.
        """
        while True:
            holder = await self._lease.acquire()
            if self._lease.mine is not None:
                await self._own(self._lease.mine)
            else:
                await self._follow(holder)

    async def _own(self, mine: Holder) -> None:
        """Fetch and publish while the lease stays ours; return when it is lost."""
        self._take_role(Role.OWNER, mine)
        self._seq = 0
        fetch = asyncio.create_task(self._local.run(), name=f"camera {self._camera.id} fetch")
        publisher = asyncio.create_task(self._publish(mine.epoch), name=f"camera {self._camera.id} to the bus")
        self._camera.tap = self._to_bus
        clock, timing = self._node.clock, self._node.timing
        try:
            extend_at = clock.monotonic() + timing.extend_s
            while True:
                await self._declare()  # often: a new follower's frames start within check_s
                await clock.sleep(timing.check_s)
                if clock.monotonic() < extend_at:
                    continue
                extend_at = clock.monotonic() + timing.extend_s
                if not await self._lease.extend():
                    log.warning("camera %s: lost its lease (epoch %d); following", self._camera.id, mine.epoch)
                    return
        finally:
            self._camera.tap = None
            await self._stop(fetch, publisher)

    async def _follow(self, holder: Holder) -> None:
        """Run the holder's frames into the camera while it holds the lease; return when nobody does.

        The frames come through the camera's own fetch loop (``BusSource``): a silent
        owner is a stall, as a silent camera is.
        """
        self._take_role(Role.FOLLOWER, holder)
        source = BusSource(self._node.subscription, self._camera.id, self._accept, self._node.timing.check_s)
        follow = asyncio.create_task(self._camera.fetch_loop(source).run(), name=f"camera {self._camera.id} follow")
        left_s = self._node.timing.check_s
        try:
            while True:
                await self._declare()
                self._recheck.clear()
                # Look again in check_s, or just after the lease runs out if that is sooner (a
                # dead owner renews it no more: the camera is taken over at once).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(self._node.timing.check_s, left_s + LEASE_END_MARGIN_S)):
                        await self._recheck.wait()  # a newer epoch on the bus: look at the lease now
                now, left_s = await self._lease.holder()
                if now is None:
                    return
                if now != holder:
                    holder = now
                    self._take_role(Role.FOLLOWER, holder)
        finally:
            await self._stop(follow)

    async def _standalone(self) -> None:
        """Fetch alone until Redis answers again."""
        self.role, self.owner = Role.STANDALONE, None
        self._camera.interest_elsewhere = 0
        fetch = asyncio.create_task(self._local.run(), name=f"camera {self._camera.id} fetch")
        try:
            while True:
                await self._node.clock.sleep(self._node.timing.retry_s)
                try:
                    await self._node.ping()
                except RedisError:
                    continue
                log.info("camera %s: Redis answers again; rejoining the cluster", self._camera.id)
                return
        finally:
            await self._stop(fetch)

    async def _stop(self, *tasks: asyncio.Task[None]) -> None:
        """Cancel ``tasks`` and wait for them, ``STOP_WAIT_S`` at most (a task that does not end is logged)."""
        for task in tasks:
            task.cancel()
        _, running = await asyncio.wait(tasks, timeout=STOP_WAIT_S)
        for task in running:
            log.error("camera %s: %s did not stop within %g s", self._camera.id, task.get_name(), STOP_WAIT_S)

    def _take_role(self, role: Role, holder: Holder) -> None:
        if (role, holder.replica, holder.epoch) != (self.role, self.owner, self.epoch):
            self.lease_changes += 1
            log.info("camera %s: %s (owner %s, epoch %d)", self._camera.id, role, holder.replica, holder.epoch)
        if holder.epoch != self.epoch:
            self._seen_seq = 0
        self.role, self.owner, self.epoch = role, holder.replica, holder.epoch

    async def _declare(self) -> None:
        """Renew this replica's interest; an owner learns who else wants the camera."""
        camera = self._camera
        others, viewers = await self._interest.declare(
            camera.hub.viewers > 0, camera.hub.viewers, self._node.timing.lease_s
        )
        elsewhere = others if self.role is Role.OWNER else 0
        camera.viewers_elsewhere = viewers
        if elsewhere != camera.interest_elsewhere:
            camera.interest_elsewhere = elsewhere
            camera.demand.changed()

    def _to_bus(self, frame: Frame) -> None:
        """``Camera.tap`` while owner: the publisher sends the newest picture (older unsent ones are dropped)."""
        self._outbox = frame
        self._outbox_ready.set()

    async def _publish(self, epoch: int) -> None:
        """Send each tapped picture on: published while another replica listens, and kept as the latest now and then.

        The latest key (a snapshot or a new follower's first picture elsewhere) is renewed
        every ``ClusterTiming.keep_s`` and for each offline picture, not with every frame: the
        owner sends Redis each frame once (and an owner alone, next to nothing).
        """
        clock, keep_s = self._node.clock, self._node.timing.lease_s
        listened, kept_at = True, float("-inf")
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            frame, self._outbox = self._outbox, None
            if frame is None:
                continue
            self._seq += 1
            message = Message(epoch, self._seq, frame.timestamp, frame.placeholder, self._camera.state, frame.jpeg)
            bus = self._node.bus
            try:
                if listened or self._camera.interest_elsewhere:
                    listened = await bus.publish(self._camera.id, message) > 0
                if clock.monotonic() - kept_at >= self._node.timing.keep_s or frame.placeholder:
                    await bus.keep(self._camera.id, message, keep_s)
                    kept_at = clock.monotonic()
            except RedisError as error:
                self.bus_errors += 1
                log.debug("camera %s: a frame not published: %s", self._camera.id, error)

    def _accept(self, message: Message) -> bool:
        """Whether ``message`` is the current holder's (its epoch) and newer than the last one taken.

        A message of another epoch is dropped: an older owner's late frames, or anything a
        Redis client wrote; a higher epoch makes the follower look at the lease at once.
        """
        if message.epoch != self.epoch or message.seq <= self._seen_seq:
            if message.epoch > self.epoch:
                self._recheck.set()
            self.stale_dropped += 1
            return False
        self._seen_seq = message.seq
        self.frames_from_bus += 1
        return True


def cluster_feeds(node: ClusterNode) -> FeedWrapper:
    """The ``Camera(wrap_feed=)`` of replica ``node``: each camera's fetch loop inside a ``ClusterFeed``."""

    def wrap(camera: Camera, local: Feed) -> Feed:
        return ClusterFeed(camera, local, node)

    return wrap
