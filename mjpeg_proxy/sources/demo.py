"""The demo camera: a moving test pattern rendered with Pillow, no upstream needed."""

from __future__ import annotations

import asyncio
import io
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from PIL import Image, ImageDraw

from mjpeg_proxy.camera.frame import Frame
from mjpeg_proxy.camera.source import Source
from mjpeg_proxy.camera.timing import Clock
from mjpeg_proxy.config.camera import DEFAULT_PICTURE_SIZE, CameraConfig, CameraTable, SourceConfig
from mjpeg_proxy.config.checks import integer_in, read_fields
from mjpeg_proxy.pictures.fonts import TextFonts, shared_fonts
from mjpeg_proxy.sources.pacer import Pacer
from mjpeg_proxy.sources.registry import SourceKind, register, register_default_camera
from mjpeg_proxy.sources.upstreams import Upstreams

# The seven bars of the SMPTE colour-bar pattern, left to right.
_BARS = ((192, 192, 192), (192, 192, 0), (0, 192, 192), (0, 192, 0), (192, 0, 192), (192, 0, 0), (0, 0, 192))

DEFAULT_FPS = 5.0
"""Frames per second of a demo camera without ``fps``."""
_SIZE_CHECK = integer_in(16, 3840, "an integer number of pixels")
SWEEP_PERIOD_S = 4.0
"""Seconds the demo's marker takes to sweep left to right and back."""


@dataclass(frozen=True)
class DemoConfig(SourceConfig):
    """A demo camera's section: the size of its pictures, ``width`` x ``height`` pixels."""

    kind = "demo"
    width: int = DEFAULT_PICTURE_SIZE[0]
    height: int = DEFAULT_PICTURE_SIZE[1]

    @property
    def picture_size(self) -> tuple[int, int]:
        """The size of the demo's frames, which the offline picture takes too."""
        return self.width, self.height

    @classmethod
    def parse(cls, table: CameraTable) -> DemoConfig:
        """Read ``width`` and ``height``; raises ``ConfigError`` for a wrong one."""
        return cls(**read_fields(table.data, {"width": _SIZE_CHECK, "height": _SIZE_CHECK}, table.fail))


def _build(camera: CameraConfig, section: DemoConfig, upstreams: Upstreams) -> Source:
    return DemoSource(camera.display_name, camera.fps, section.width, section.height, upstreams.fonts, upstreams.clock)


register(SourceKind(DemoConfig, frozenset({"width", "height"}), DemoConfig.parse, _build, default_fps=DEFAULT_FPS))
register_default_camera(CameraConfig(id="demo", source=DemoConfig(), name="Demo camera", fps=DEFAULT_FPS))


class DemoSource(Source):
    """Renders ``fps`` JPEG frames a second of ``width`` x ``height`` pixels.

    Each frame shows colour bars, a sweeping marker, the camera name, the UTC time
    to the millisecond and a frame counter, so every frame differs from the last and
    a viewer can see the stream is live. The text is drawn with ``fonts`` (default:
    ``shared_fonts()``), each line shrunk to fit the width if it must. ``clock`` paces the
    frames and gives the time they show.
    """

    def __init__(
        self,
        name: str,
        fps: float,
        width: int,
        height: int,
        fonts: TextFonts | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self.fps = fps
        self.width = width
        self.height = height
        self._count = 0
        self._background = self._draw_background()
        self._fonts = fonts or shared_fonts()
        self._text_size = max(10, height // 14)
        self._clock = clock or Clock()

    async def frames(self) -> AsyncIterator[Frame]:
        """Yield a rendered frame on each tick, ``fps`` a second."""
        pacer = Pacer(self.fps, self._clock)
        while True:
            await pacer.tick()
            self._count += 1
            # Encoding takes milliseconds; a thread keeps the event loop serving viewers.
            jpeg = await asyncio.to_thread(self.render, self._count, self._clock.wall())
            yield Frame(jpeg)

    def render(self, count: int, wall_time: float) -> bytes:
        """Return frame number ``count`` at ``wall_time`` (seconds since the epoch) as JPEG bytes."""
        image = self._background.copy()
        draw = ImageDraw.Draw(image)
        w, h = self.width, self.height
        phase = (wall_time % SWEEP_PERIOD_S) / SWEEP_PERIOD_S
        x = int((0.5 - 0.5 * math.cos(2 * math.pi * phase)) * (w - h // 6))
        draw.rectangle((x, h * 2 // 3, x + h // 6, h * 2 // 3 + h // 6), fill=(255, 255, 255))
        stamp = datetime.fromtimestamp(wall_time, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
        lines = (self.name, stamp, f"frame {count}")
        line_h = self._text_size * 1.3
        for i, line in enumerate(lines):
            text, size = self._fonts.fit(line, self._text_size, w * 0.9)
            self._fonts.draw(
                draw,
                (w // 20, h // 20 + i * line_h),
                text,
                size,
                fill=(255, 255, 255),
                stroke_width=2,
                stroke_fill=(0, 0, 0),
            )
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=80)
        return out.getvalue()

    def _draw_background(self) -> Image.Image:
        image = Image.new("RGB", (self.width, self.height), (16, 16, 16))
        draw = ImageDraw.Draw(image)
        bar_w = self.width / len(_BARS)
        for i, colour in enumerate(_BARS):
            draw.rectangle((round(i * bar_w), 0, round((i + 1) * bar_w) - 1, self.height * 2 // 3 - 1), fill=colour)
        return image
