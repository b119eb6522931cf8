"""The offline picture: what viewers of a camera in an error state see instead of frames.

It shows the camera's name, the error state in plain words (``CameraState.reason``) and
since when, at the size of the camera's last frame. It is drawn in a thread, cached while
its text is the same, drawn again while viewers wait (its "since ... ago" moves on) and
published like a frame (``Frame.placeholder``), through the camera's one way to its hub
(``Camera.publish``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from mjpeg_proxy.camera.frame import Frame
from mjpeg_proxy.camera.hub import FrameHub
from mjpeg_proxy.camera.state import StateTracker
from mjpeg_proxy.camera.timing import CameraTiming
from mjpeg_proxy.config import CameraConfig
from mjpeg_proxy.pictures.drawing import ago_text, jpeg_size, render_placeholder
from mjpeg_proxy.pictures.fonts import TextFonts


class OfflinePicture:
    """Draws the offline picture of the camera whose ``hub`` and ``tracker`` these are, and publishes it.

    ``publish`` is the camera's way to its hub (``Camera.publish``); ``hub`` is only read
    (what viewers have, how many watch).

    ``config`` is the camera's configuration (its display name; its picture size before
    any frame); ``last_frame`` gives the camera's latest frame from the upstream, whose
    size the picture takes. ``fonts`` draw the text (default: ``fonts.shared_fonts()``).
    """

    def __init__(
        self,
        config: CameraConfig,
        hub: FrameHub,
        tracker: StateTracker,
        publish: Callable[[Frame], None],
        last_frame: Callable[[], Frame | None],
        timing: CameraTiming,
        fonts: TextFonts | None = None,
    ) -> None:
        self.config = config
        self._hub = hub
        self._tracker = tracker
        self._publish = publish
        self._last_frame = last_frame
        self._timing = timing
        self._clock = timing.clock
        self._fonts = fonts
        self._cached: tuple[tuple[object, ...], Frame] | None = None  # (what it says, the picture)
        self._drawing: asyncio.Task[Frame] | None = None
        self._redraw: asyncio.Task[None] | None = None

    def reconfigure(self, config: CameraConfig) -> None:
        """Take the camera's new configuration and forget the picture drawn for the old one."""
        self.config = config
        self._cached = None

    def tasks(self) -> list[asyncio.Task[Frame] | asyncio.Task[None]]:
        """The drawings under way, for the camera to cancel when it goes idle."""
        return [task for task in (self._drawing, self._redraw) if task is not None and not task.done()]

    async def picture(self) -> Frame | None:
        """The offline picture as it reads now; None when the camera is not in an error state.

        Drawn (in a thread) only when its text has changed since the last drawing; callers
        that come while it is being drawn share that drawing.
        """
        state = self._tracker.state
        if state.reason is None:
            return None
        now, since = self._clock.wall(), self._tracker.error_since
        text = (self.config.display_name, state.reason, since, ago_text(now - since))
        if self._cached is not None and self._cached[0] == text:
            return self._cached[1]
        if self._drawing is None or self._drawing.done():
            name = f"camera {self.config.id} drawing"
            self._drawing = asyncio.create_task(self._draw(text, now), name=name)
        return await asyncio.shield(self._drawing)

    async def _draw(self, text: tuple[str, str, float, str], now: float) -> Frame:
        name, reason, since, _ = text
        last = self._last_frame()
        size = (jpeg_size(last.jpeg) if last else None) or self.config.picture_size
        jpeg = await asyncio.to_thread(render_placeholder, name, reason, since, size, now, fonts=self._fonts)
        frame = Frame(jpeg, placeholder=True)
        self._cached = (text, frame)
        return frame

    async def show(self, *, over_frames: bool = True) -> None:
        """Publish the offline picture as it reads now, unless viewers have that very picture already.

        With ``over_frames=False`` only where viewers have no camera frame (a frame may
        come while the picture is drawn). A new viewer of an offline camera calls this
        first, so its first picture does not say "5 s ago" when it has been an hour.
        """
        frame = await self.picture()
        latest = self._hub.latest
        if frame is None or not self._tracker.state.is_error:
            return
        if latest is not None and (latest.frame.jpeg is frame.jpeg or not (over_frames or latest.frame.placeholder)):
            return
        self._publish(frame)

    def redraw(self) -> None:
        """Draw the picture again if viewers have had it for ``CameraTiming.offline_refresh_s``.

        So its "since ... ago" moves on during a long pause between attempts. Called
        periodically (``streaming.keep_streams``); the drawing runs in a task.
        """
        latest = self._hub.latest
        if (
            self._hub.viewers
            and self._tracker.state.is_error
            and latest is not None
            and latest.frame.placeholder
            and self._clock.monotonic() - latest.frame.received_monotonic >= self._timing.offline_refresh_s
            and (self._redraw is None or self._redraw.done())
        ):
            name = f"camera {self.config.id} offline picture"
            self._redraw = asyncio.create_task(self.show(over_frames=False), name=name)

    def due_in(self, stall_timeout_s: float) -> float:
        """Seconds from now until the picture is due after a failed attempt (0: at once).

        Due at once in a final state (``CameraState.is_final``) or while viewers have no
        camera picture (none yet, or the offline picture already); else once the picture
        they have is ``stall_timeout_s`` old, so a brief reconnect keeps the last good
        picture on screen.
        """
        latest = self._hub.latest
        if self._tracker.state.is_final or latest is None or latest.frame.placeholder:
            return 0.0
        return max(0.0, stall_timeout_s - (self._clock.monotonic() - latest.frame.received_monotonic))
