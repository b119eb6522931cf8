"""Resized streams: a camera's frames at the widths its viewers ask for, each frame resized once per width.

Each width someone watches (a rung of ``[server] widths``) has a ``FrameHub`` of its own,
fed from the camera's hub: every frame the camera publishes is resized once for the
rung, in a thread, and published to the rung's viewers, who are stream viewers like any
other. A rung is made when its first viewer comes and dropped when its last one leaves,
so a width nobody watches costs nothing. Snapshots at a width share the same resizes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator
from typing import Any

from mjpeg_proxy.camera.frame import Frame
from mjpeg_proxy.camera.hub import FrameHub, Part
from mjpeg_proxy.camera.stats import CameraStats
from mjpeg_proxy.pictures.resize import ResizeError

log = logging.getLogger(__name__)

Resize = Callable[[bytes, int], bytes]
"""A JPEG at a width, or the JPEG itself when it is no wider (``pictures.resize.resize_jpeg``
with the configured cap). Runs in a thread. Raises ``ResizeError``."""


class _Rung:
    """One width of one camera: takes the camera's frames (a ``Subscriber``) and publishes them resized into ``hub``.

    Latest-frame-wins: at most one resize runs at a time, and a frame that arrives
    meanwhile replaces the one waiting (never a queue). A frame that cannot be resized is
    skipped: the viewers keep the previous picture.
    """

    def __init__(self, scaled: ScaledStreams, width: int, hub: FrameHub[Any]) -> None:
        self.width = width
        self.hub = hub
        self.users = 0
        """``ScaledStreams.rung`` blocks running for this width."""
        self.task: asyncio.Task[None] | None = None
        """The resize under way, if any."""
        self._scaled = scaled
        self._waiting: Frame | None = None

    def offer(self, part: Part[Any]) -> None:
        """Resize ``part``'s frame next (``Subscriber``), instead of any frame still waiting."""
        self._waiting = part.frame
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._work(), name=f"camera {self._scaled.camera_id} at {self.width} px")

    def close(self, last: Part[Any] | None) -> None:
        """The camera's hub closed (``Subscriber``): end the rung's streams too."""
        self.stop()
        self.hub.close()

    def stop(self) -> None:
        """Cancel the resize under way, and forget the frame waiting."""
        self._waiting = None
        if self.task is not None:
            self.task.cancel()

    async def _work(self) -> None:
        while (frame := self._waiting) is not None:
            self._waiting = None
            try:
                jpeg = await self._scaled.resized(frame, self.width)
            except ResizeError:
                continue  # counted and logged by ``resized``
            self.hub.publish(dataclasses.replace(frame, jpeg=jpeg))


class ScaledStreams:
    """The resized streams of the camera ``camera_id``, fed from its hub ``source``.

    ``rung(width)`` gives the hub of the stream at a width for as long as its ``with``
    block runs; ``resized(frame, width)`` gives a frame's JPEG at a width, made once per
    frame and width for streams and snapshots alike. ``resize`` does the work, in a
    thread; ``stats`` counts the frames resized and those that could not be.
    """

    def __init__(self, camera_id: str, source: FrameHub[Any], stats: CameraStats, resize: Resize) -> None:
        self.camera_id = camera_id
        self._source = source
        self._stats = stats
        self._resize = resize
        self._rungs: dict[int, _Rung] = {}
        self._made: dict[int, tuple[int, asyncio.Task[bytes | ResizeError]]] = {}
        """By width: the latest frame asked for (its ``seq``) and its resize."""
        self._failing = 0
        """Resizes that failed since the last one that did not (logged once per burst)."""

    @property
    def widths(self) -> list[int]:
        """The widths watched now, ascending."""
        return sorted(self._rungs)

    @contextlib.contextmanager
    def rung(self, width: int | None) -> Iterator[FrameHub[Any]]:
        """The hub of the camera's stream at ``width`` pixels (for None, the camera's own hub), for the ``with`` block.

        The first block of a width makes its rung, which subscribes to the camera's hub
        and resizes the camera's latest frame at once; the last block to end drops it
        (unsubscribed, its resize cancelled). Viewers of a rung are counted as the
        camera's by ``Camera.viewer``, not here.
        """
        if width is None:
            yield self._source
            return
        rung = self._rungs.get(width)
        if rung is None:
            rung = self._rungs[width] = _Rung(self, width, FrameHub(self._source.build))
            self._source.subscribe(rung)  # closes it at once if the camera's hub is closed
            if self._source.latest is not None:
                rung.offer(self._source.latest)
        rung.users += 1
        try:
            yield rung.hub
        finally:
            rung.users -= 1
            if not rung.users:
                del self._rungs[width]
                self._source.unsubscribe(rung)
                rung.stop()

    async def resized(self, frame: Frame, width: int) -> bytes:
        """``frame``'s JPEG at ``width`` (the JPEG itself when it is no wider), resized once however many ask.

        ``frame`` is one the camera's hub published (its ``seq`` tells it apart). The
        latest frame's resize is kept for each width, so rungs and snapshots of that
        frame share it; older frames' are dropped.

        Raises:
            ResizeError: the frame cannot be resized (counted once, logged once per burst).
        """
        made = self._made.get(width)
        if made is not None and made[0] == frame.seq:
            task = made[1]
        else:
            task = asyncio.create_task(self._resized(frame, width), name=f"camera {self.camera_id} resize")
            if made is None or made[0] < frame.seq:
                self._made = {w: m for w, m in self._made.items() if m[0] >= frame.seq}
                self._made[width] = (frame.seq, task)
        result = await asyncio.shield(task)  # a viewer that leaves does not cancel what others wait for
        if isinstance(result, ResizeError):
            raise result
        return result

    def forget(self) -> None:
        """Drop every kept picture (the camera stopped fetching: they would soon be stale); rungs stay."""
        self._made.clear()
        for rung in self._rungs.values():
            rung.stop()
            rung.hub.forget()

    async def _resized(self, frame: Frame, width: int) -> bytes | ResizeError:
        """The resize itself, counted; a failure is returned, not raised, as it may have no one to raise to."""
        try:
            jpeg = await asyncio.to_thread(self._resize, frame.jpeg, width)
        except ResizeError as error:
            self._stats.frames_resize_failed += 1
            if not self._failing:
                log.warning(
                    "camera %s: a frame cannot be resized to %d px, so viewers at that width keep the previous"
                    " picture: %s (the next ones that cannot are counted in frames_resize_failed, not logged,"
                    " until one is resized again)",
                    self.camera_id,
                    width,
                    error,
                )
            self._failing += 1
            return error
        if self._failing:
            log.info("camera %s: frames are resized again, after %d that could not be", self.camera_id, self._failing)
            self._failing = 0
        if jpeg is not frame.jpeg:
            self._stats.frames_resized += 1
        return jpeg
