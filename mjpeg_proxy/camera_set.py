"""The running cameras.

One Camera and fetch task per configured camera, the upstream clients they share, and a new
configuration applied to them while viewers watch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from mjpeg_proxy.camera.camera import Camera, FeedWrapper
from mjpeg_proxy.camera.frame import Frame
from mjpeg_proxy.camera.hub import FrameHub
from mjpeg_proxy.camera.scaled import Resize
from mjpeg_proxy.camera.source import Source
from mjpeg_proxy.camera.timing import CameraTiming
from mjpeg_proxy.config import CameraConfig, Config
from mjpeg_proxy.pictures.fonts import TextFonts
from mjpeg_proxy.pictures.resize import resize_jpeg
from mjpeg_proxy.sources import Upstreams
from mjpeg_proxy.sources.een_token_store import SharedRecords

log = logging.getLogger(__name__)

SourceFactory = Callable[[CameraConfig, Upstreams], Source]
PartBuilder = Callable[[Frame], object]  # the payload each viewer writes: the web layer's, opaque here


@dataclass
class Changes:
    """What applying a configuration did.

    Camera ids ``added``, ``removed``, ``changed`` (restarted on a new source, viewers kept)
    and ``unchanged``.
    """

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


class CameraSet:
    """Runs one ``Camera`` with its fetch task per configured camera, in ``by_id``.

    ``by_id`` is the application's camera table, kept in configuration order and changed
    in place.

    ``start`` makes the upstream clients the cameras share and starts every camera.
    ``apply`` brings the set to a new configuration: added cameras start; removed ones end
    their streams (with the close delimiter) and stop; changed ones (any key, their source's
    section included) keep their hub and viewers and restart their fetch loop on a new
    source; unchanged ones are not touched; then the shared clients no camera uses any
    more close (``Upstreams.keep_only``) and the others hear of the reload
    (``Upstreams.reloaded``). ``close`` stops them all and the clients.
    ``fonts`` draw the text on the cameras' offline pictures and the demo cameras' frames;
    ``timing`` holds every camera's delays and clock; ``wrap_feed`` makes each camera's feed
    around its own fetch loop, and ``records`` are the replicas' shared records (cluster mode).
    ``resize`` resizes the cameras' frames for ``?width=`` (``Camera.scaled``).
    """

    def __init__(
        self,
        by_id: dict[str, Camera],
        source_factory: SourceFactory,
        build_part: PartBuilder,
        fonts: TextFonts,
        timing: CameraTiming,
        wrap_feed: FeedWrapper | None = None,
        records: SharedRecords | None = None,
        resize: Resize = resize_jpeg,
    ) -> None:
        self.by_id = by_id
        self._resize = resize
        self._wrap_feed = wrap_feed
        self._records = records
        self._fonts = fonts
        self.timing = timing
        """Every camera's delays and clock."""
        self._source_factory = source_factory
        self._build_part = build_part
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._upstreams: Upstreams | None = None

    async def start(self, config: Config) -> None:
        """Make the shared clients and start every camera of ``config``."""
        self._upstreams = Upstreams(
            config.server.max_upstream_requests_per_host, self._fonts, clock=self.timing.clock, records=self._records
        )
        await self.apply(config)

    async def apply(self, config: Config) -> Changes:
        """Bring the running cameras to ``config``; return what changed."""
        assert self._upstreams is not None, "start() first"
        changes = Changes()
        wanted = {camera.id: camera for camera in config.cameras}
        for camera_id in [camera_id for camera_id in self.by_id if camera_id not in wanted]:
            # Gone for new requests before anything is awaited; its viewers' streams end
            # with the close delimiter.
            removed = self.by_id.pop(camera_id)
            removed.hub.close()
            await self._stop(removed)
            changes.removed.append(camera_id)
        ordered: dict[str, Camera] = {}
        for camera_config in config.cameras:
            camera = self.by_id.get(camera_config.id)
            if camera is None:
                source = self._new_source(camera_config)
                camera = Camera(
                    camera_config,
                    source,
                    FrameHub(self._build_part),
                    timing=self.timing,
                    fonts=self._fonts,
                    wrap_feed=self._wrap_feed,
                    resize=self._resize,
                )
                changes.added.append(camera.id)
            elif camera.config != camera_config:
                await self._stop(camera)
                camera.reconfigure(camera_config, self._new_source(camera_config))
                changes.changed.append(camera.id)
            else:
                changes.unchanged.append(camera.id)
            ordered[camera.id] = camera
            if camera.id not in self._tasks:
                self._tasks[camera.id] = asyncio.create_task(camera.run(), name=f"camera {camera.id}")
        # One step, no await: a request never sees half of the old set and half of the new.
        self.by_id.clear()
        self.by_id.update(ordered)
        await self._upstreams.keep_only(config.cameras)
        self._upstreams.reloaded()
        return changes

    async def close(self) -> None:
        """Stop every camera, then close the shared clients."""
        for camera in list(self.by_id.values()):
            await self._stop(camera)
        if self._upstreams is not None:
            await self._upstreams.close()

    def _new_source(self, camera: CameraConfig) -> Source:
        assert self._upstreams is not None
        return self._source_factory(camera, self._upstreams)

    async def _stop(self, camera: Camera) -> None:
        """Cancel the camera's task, wait for it, and close its feed."""
        task = self._tasks.pop(camera.id)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await camera.feed.close()
