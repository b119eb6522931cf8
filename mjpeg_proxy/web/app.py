"""Builds the aiohttp application: routes, templates, and the cameras' lifetime."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from mjpeg_proxy.camera.scaled import Resize
from mjpeg_proxy.camera.timing import CameraTiming
from mjpeg_proxy.camera_set import CameraSet, SourceFactory
from mjpeg_proxy.cluster.feed import cluster_feeds
from mjpeg_proxy.cluster.node import ClusterNode
from mjpeg_proxy.config import Config, LiveConfig
from mjpeg_proxy.logs import SUMMARY_INTERVAL_S, SummarisedLog
from mjpeg_proxy.pictures.fonts import TextFonts, shared_fonts
from mjpeg_proxy.pictures.resize import resize_jpeg
from mjpeg_proxy.sources import build_source
from mjpeg_proxy.web import cors, hotlink, limits, metrics, operators, pages, status, streaming
from mjpeg_proxy.web.access import still_admits
from mjpeg_proxy.web.appkeys import CAMERA_SET, CAMERAS, CLUSTER, CONFIG, FLOOD_LOG, FRAMINGS
from mjpeg_proxy.web.framings import Framings

log = logging.getLogger(__name__)


def create_app(
    config: Config,
    source_factory: SourceFactory = build_source,
    *,
    log_summary_interval_s: float = SUMMARY_INTERVAL_S,
    fonts: TextFonts | None = None,
    timing: CameraTiming | None = None,
    cluster: ClusterNode | None = None,
    resize: Resize | None = None,
) -> web.Application:
    """Return the application serving ``config``'s cameras.

    The cameras, their hubs and their fetch tasks start with the application and
    stop with it (``cleanup_ctx``); ``app[CAMERAS]`` holds them while it runs.
    ``source_factory`` makes each camera's Source from its configuration and the
    shared upstream clients (tests give sources of their own). Events one client can
    cause by the hundred (refusals, viewers closed for not reading) are summarised in the
    log every ``log_summary_interval_s`` seconds. ``fonts`` draw the text
    on the offline picture and the demo camera (default: those of ``[server] font`` and
    the system's, ``fonts.shared_fonts``). ``timing`` holds the cameras' delays and clock
    (default: ``CameraTiming()``). With ``cluster`` (default: the one ``config.cluster``
    describes, if any), this process is a replica of that cluster: each camera's feed is a
    ``ClusterFeed`` (closed with the application). ``resize`` resizes frames for
    ``?width=`` (default: ``resize_jpeg`` with the ``max_resize_pixels`` in force).
    """
    app = web.Application(
        middlewares=[
            pages.remove_extra_slashes,
            pages.error_pages,
        ]
    )
    app[CONFIG] = LiveConfig(config)
    app[FLOOD_LOG] = SummarisedLog(log_summary_interval_s)
    app.on_cleanup.append(_close_flood_log)
    limits.setup(app)
    metrics.setup(app)
    app[FRAMINGS] = framings = Framings()
    app[streaming.STREAM_VIEWERS] = set()
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(templates_dir()),
        autoescape=jinja2.select_autoescape(default=True),
    )
    app[CAMERAS] = {}
    fonts = fonts or shared_fonts(config.server.font)
    timing = timing or CameraTiming()
    if cluster is None and config.cluster is not None:
        cluster = ClusterNode.from_config(config.cluster, config.server.port, timing.clock)
    wrap_feed = None if cluster is None else cluster_feeds(cluster)
    records = None if cluster is None else cluster.records
    resize = resize or _configured_resize(app[CONFIG])
    app[CAMERA_SET] = CameraSet(
        app[CAMERAS], source_factory, framings.build, fonts, timing, wrap_feed, records, resize=resize
    )
    if cluster is not None:
        app[CLUSTER] = cluster
        app.on_startup.append(_announce_cluster)
        app.on_cleanup.append(_close_cluster)
    app.cleanup_ctx.append(_run_cameras)
    app.on_shutdown.append(_end_streams)
    app.router.add_get("/", pages.index, name="index")
    app.router.add_get("/healthz", pages.healthz, name="healthz")
    app.router.add_get("/cameras/{camera_id}", pages.kiosk, name="kiosk")
    app.router.add_get("/cameras/{camera_id}/stream.mjpg", streaming.stream, name="stream")
    app.router.add_get("/cameras/{camera_id}/snapshot.jpg", streaming.snapshot, name="snapshot")
    app.router.add_get("/api/cameras", status.cameras_json, name="api_cameras")
    app.router.add_get("/api/cameras/{camera_id}", status.camera_json, name="api_camera")
    app.router.add_get("/status", status.status_page, name="status")
    app.router.add_get("/metrics", metrics.metrics, name="metrics")
    cors.setup(app, (app.router[name] for name in ("stream", "snapshot", "api_cameras", "api_camera")))
    hotlink.setup(app)
    operators.setup(app, (app.router[name] for name in operators.ROUTES))
    return app


def _configured_resize(live: LiveConfig) -> Resize:
    """``resize_jpeg`` with the ``max_resize_pixels`` in force when it runs (a reload may change it)."""

    def resize(jpeg: bytes, width: int) -> bytes:
        return resize_jpeg(jpeg, width, live.server.max_resize_pixels)

    return resize


async def _announce_cluster(app: web.Application) -> None:
    await app[CLUSTER].announce()


async def _close_cluster(app: web.Application) -> None:
    await app[CLUSTER].close()  # after the cameras (cleanup_ctx ends first): their leases are released


async def _close_flood_log(app: web.Application) -> None:
    app[FLOOD_LOG].close()  # what is still counted is logged


async def _end_streams(app: web.Application) -> None:
    # Runs when the server stops accepting: streams never end by themselves, so
    # without this the shutdown would wait out its whole timeout for them.
    for camera in app[CAMERAS].values():
        camera.hub.close()


def templates_dir() -> Path:
    """The ``templates/`` folder of the installed package.

    Beside the package in a checkout or editable install, else where ``setup.cfg``'s
    ``data_files`` put it.

    Raises:
        FileNotFoundError: neither place holds the templates.
    """
    for candidate in (
        Path(__file__).resolve().parents[2] / "templates",
        Path(sys.prefix) / "share" / "mjpeg-proxy" / "templates",
    ):
        if (candidate / "index.html").is_file():
            return candidate
    raise FileNotFoundError("mjpeg-proxy's templates/ folder was not found; reinstall the package")


async def _run_cameras(app: web.Application) -> AsyncIterator[None]:
    cameras = app[CAMERA_SET]
    await cameras.start(app[CONFIG].current)
    care = asyncio.create_task(streaming.keep_streams(app), name="stream care")
    try:
        yield
    finally:
        care.cancel()
        await asyncio.gather(care, return_exceptions=True)
        await cameras.close()


async def apply_config(app: web.Application, config: Config) -> None:
    """Put ``config`` in force in the running ``app`` (a reload).

    Server settings at once, except those that need a restart (``config.RESTART_KEYS``:
    logged, and kept as they were); cameras added, removed or changed as
    ``CameraSet.apply`` does. One log line says what changed. Streams whose camera no
    longer admits their link (made signed, its key dropped) end, and a line says how many.
    """
    applied, pending = app[CONFIG].apply(config)
    changes = await app[CAMERA_SET].apply(app[CONFIG].current)
    log.info(
        "configuration reloaded from %s: cameras added %s, removed %s, changed %s; %d unchanged; [server] %s",
        config.path or "defaults",
        changes.added or "none",
        changes.removed or "none",
        changes.changed or "none",
        len(changes.unchanged),
        ", ".join(applied) if applied else "unchanged",
    )
    for change in pending:
        log.warning("configuration reload: [server] %s needs a restart to take effect", change)
    if ended := _end_streams_no_longer_admitted(app):
        log.info("configuration reload: %d streams ended: their cameras no longer admit their links", ended)


def _end_streams_no_longer_admitted(app: web.Application) -> int:
    """End the streams whose camera no longer admits their link (``access.still_admits``); return how many."""
    cameras, server = app[CAMERAS], app[CONFIG].server
    ended = 0
    for viewer in app[streaming.STREAM_VIEWERS]:
        camera = cameras.get(viewer.camera_id)
        if camera is not None and not viewer.finished.is_set() and not still_admits(server, camera, viewer.link):
            viewer.close(viewer.hub.latest)  # with the close delimiter after the last picture, if any
            ended += 1
    return ended
