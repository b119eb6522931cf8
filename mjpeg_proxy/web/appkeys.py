"""Typed keys of the aiohttp application, and the camera lookup every handler shares."""

from __future__ import annotations

import collections

from aiohttp import web

from mjpeg_proxy.camera.camera import Camera
from mjpeg_proxy.camera_set import CameraSet
from mjpeg_proxy.cluster.node import ClusterNode
from mjpeg_proxy.config import LiveConfig
from mjpeg_proxy.logs import SummarisedLog
from mjpeg_proxy.web.framings import Framings

CONFIG = web.AppKey("config", LiveConfig)
"""The configuration in force (a reload replaces what it holds)."""
CAMERAS = web.AppKey("cameras", dict[str, Camera])
"""The running cameras by id, in configuration order (a reload changes it in place)."""
CAMERA_SET = web.AppKey("camera_set", CameraSet)
CLUSTER = web.AppKey("cluster", ClusterNode)
"""What starts, changes and stops the cameras in ``CAMERAS``."""
FRAMINGS = web.AppKey("framings", Framings)
"""The two framings of every stream (for players and tools, for browsers), on one boundary."""
FLOOD_LOG = web.AppKey("flood_log", SummarisedLog)
"""The log of events one client can cause by the hundred, summarised (``logs.SummarisedLog``).

Refused requests, viewers closed for not reading.
"""
REFUSALS = web.AppKey("refusals", collections.Counter[str])
"""Requests refused, by reason (``web.limits.REASONS``)."""


def camera_from_request(request: web.Request) -> Camera:
    """The camera named by the ``{camera_id}`` part of the path.

    Raises:
        web.HTTPNotFound: no camera has that id (only configured cameras exist;
            nothing in a request can choose an upstream).
    """
    camera_id = request.match_info["camera_id"]
    camera = request.app[CAMERAS].get(camera_id)
    if camera is None:
        raise web.HTTPNotFound(text=f"no camera with id {camera_id!r}")
    return camera
