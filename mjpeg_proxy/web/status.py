"""What each camera is doing, for operators: ``/api/cameras`` (JSON) and ``/status`` (HTML)."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from mjpeg_proxy.camera.camera import Camera
from mjpeg_proxy.cluster.feed import ClusterFeed
from mjpeg_proxy.web.appkeys import CAMERAS, CLUSTER, REFUSALS, camera_from_request
from mjpeg_proxy.web.pages import render

STATUS_REFRESH_S = 5
"""How often the ``/status`` page reloads itself, in seconds."""


def camera_status(camera: Camera) -> dict[str, Any]:
    """One camera's status as JSON-ready values.

    Keys: ``id``, ``name``, ``source`` (the source kind), ``state`` and ``state_since``
    (ISO 8601 UTC), ``fetching`` (whether the upstream is open), ``viewers``,
    ``frames_received``, ``frames_trimmed`` (of those, frames that had bytes after the
    JPEG's end marker, cut off), ``frames_sent`` and ``bytes_sent`` (to viewers, offline
    pictures included), ``frames_dropped`` (parts viewers skipped while behind),
    ``frames_resized`` and ``frames_resize_failed`` (for ``?width=``, per frame and width), ``input_fps``
    (``Camera.input_fps``), ``frame_age_seconds`` (None before the first
    frame), ``last_error`` (text without credentials, None if none), ``errors`` (count by
    kind), ``upstream_requests`` and ``cluster`` (``ClusterFeed.status()`` in cluster mode, else
    None).
    """
    age = camera.frame_age_s
    return {
        "id": camera.id,
        "name": camera.config.display_name,
        "source": camera.config.kind,
        "state": str(camera.state),
        "state_since": _iso(camera.state_since),
        "fetching": camera.state != "idle",
        "viewers": camera.hub.viewers,
        "frames_received": camera.stats.frames_received,
        "frames_trimmed": camera.stats.frames_trimmed,
        "frames_sent": camera.stats.frames_sent,
        "bytes_sent": camera.stats.bytes_sent,
        "frames_dropped": camera.stats.frames_dropped,
        "frames_resized": camera.stats.frames_resized,
        "frames_resize_failed": camera.stats.frames_resize_failed,
        "input_fps": round(camera.input_fps, 2),
        "frame_age_seconds": None if age is None else round(age, 3),
        "last_error": camera.stats.last_error,
        "errors": dict(camera.stats.errors),
        "upstream_requests": camera.upstream_requests,
        "cluster": camera.feed.status() if isinstance(camera.feed, ClusterFeed) else None,
    }


def _iso(wall: float) -> str:
    """``wall`` (seconds since the epoch) in ISO 8601, UTC, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))


async def cameras_json(request: web.Request) -> web.Response:
    """``GET /api/cameras``: ``{"cameras": [camera_status, ...]}`` in configuration order."""
    return web.json_response(
        {"cameras": [camera_status(camera) for camera in request.app[CAMERAS].values()]},
        headers={"Cache-Control": "no-store"},
    )


async def camera_json(request: web.Request) -> web.Response:
    """``GET /api/cameras/{camera_id}``: one ``camera_status``; 404 for an unknown id."""
    return web.json_response(camera_status(camera_from_request(request)), headers={"Cache-Control": "no-store"})


async def status_page(request: web.Request) -> web.Response:
    """``GET /status``: the same as ``/api/cameras`` as a table for people.

    The page reloads itself every ``STATUS_REFRESH_S``, and lists the refusals by reason; in
    cluster mode each camera's role (owner, follower of which replica, standalone) too.
    """
    context = {
        "cameras": [camera_status(camera) for camera in request.app[CAMERAS].values()],
        "refusals": request.app[REFUSALS],
        "reload_seconds": STATUS_REFRESH_S,
        "clustered": CLUSTER in request.app,
        "replica_id": request.app[CLUSTER].replica_id if CLUSTER in request.app else None,
    }
    response = render("status.html", request, context)
    response.headers["Cache-Control"] = "no-store"  # for operators only: no shared cache may keep it
    return response
