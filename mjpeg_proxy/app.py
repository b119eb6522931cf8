"""Builds the aiohttp application: routes, templates, and the cameras' lifetime."""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import aiohttp_jinja2
import jinja2
from aiohttp import web

from mjpeg_proxy import __version__, limits, metrics, pages, status, streaming
from mjpeg_proxy.appkeys import BROWSER_WRITER, CAMERAS, CONFIG, WRITER
from mjpeg_proxy.camera import Camera
from mjpeg_proxy.config import CameraConfig, Config
from mjpeg_proxy.hub import FrameHub
from mjpeg_proxy.multipart_writer import MultipartWriter, new_boundary
from mjpeg_proxy.sources import Source, Upstreams, build_source
from mjpeg_proxy.sources.een_session import EenSession
from mjpeg_proxy.sources.upstream_hosts import UpstreamHosts

SourceFactory = Callable[[CameraConfig, Upstreams], Source]


def create_app(config: Config, source_factory: SourceFactory = build_source) -> web.Application:
    """Return the application serving ``config``'s cameras.

    The cameras, their hubs and their fetch tasks start with the application and
    stop with it (``cleanup_ctx``); ``app[CAMERAS]`` holds them while it runs.
    ``source_factory`` makes each camera's Source from its configuration and the
    shared upstream clients (tests give sources of their own).
    """
    app = web.Application(
        middlewares=[
            # /cameras/demo/ is what people type; send them to /cameras/demo.
            web.normalize_path_middleware(append_slash=False, remove_slash=True),
            pages.error_pages,
        ]
    )
    app[CONFIG] = config
    limits.setup(app)
    metrics.setup(app)
    boundary = new_boundary()
    app[WRITER] = MultipartWriter(boundary)
    app[BROWSER_WRITER] = MultipartWriter(boundary, advance_headers=True)
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(templates_dir()),
        autoescape=jinja2.select_autoescape(default=True),
    )
    app.cleanup_ctx.append(functools.partial(_run_cameras, source_factory=source_factory))
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
    return app


async def _end_streams(app: web.Application) -> None:
    # Runs when the server stops accepting: streams never end by themselves, so
    # without this the shutdown would wait out its whole timeout for them.
    for camera in app[CAMERAS].values():
        camera.hub.close()


def templates_dir() -> Path:
    """The ``templates/`` folder: beside the package in a checkout or editable
    install, else where ``setup.cfg``'s ``data_files`` put it."""
    for candidate in (
        Path(__file__).resolve().parent.parent / "templates",
        Path(sys.prefix) / "share" / "mjpeg-proxy" / "templates",
    ):
        if (candidate / "index.html").is_file():
            return candidate
    raise FileNotFoundError("mjpeg-proxy's templates/ folder was not found; reinstall the package")


async def _run_cameras(app: web.Application, source_factory: SourceFactory) -> AsyncIterator[None]:
    config = app[CONFIG]
    writer, browser_writer = app[WRITER], app[BROWSER_WRITER]
    upstreams = Upstreams(
        http=aiohttp.ClientSession(
            headers={"User-Agent": f"mjpeg-proxy/{__version__}"},
            # No total limit (aiohttp's default is 100): each camera holds at most one
            # connection, so a pool limit would only let silent MJPEG upstreams starve the
            # other cameras. Requests per device are capped by `hosts` instead.
            connector=aiohttp.TCPConnector(limit=0),
        ),
        hosts=UpstreamHosts(config.server.max_upstream_requests_per_host),
        een=EenSession(config.een) if config.een and any(c.source == "een" for c in config.cameras) else None,
    )
    cameras: dict[str, Camera] = {}
    for camera_config in config.cameras:
        hub = FrameHub(
            lambda frame: (writer.part(frame.jpeg, frame.timestamp), browser_writer.part(frame.jpeg, frame.timestamp))
        )
        source = source_factory(camera_config, upstreams)
        cameras[camera_config.id] = Camera(camera_config, source, hub)
    app[CAMERAS] = cameras
    tasks = [asyncio.create_task(camera.run(), name=f"camera {camera.id}") for camera in cameras.values()]
    tasks.append(asyncio.create_task(streaming.keep_streams(app), name="stream care"))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for camera in cameras.values():
            await camera.source.close()
        if upstreams.een is not None:
            await upstreams.een.close()
        await upstreams.http.close()
