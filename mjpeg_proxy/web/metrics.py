"""``GET /metrics``: Prometheus text format, written by ``prometheus-client``.

Values are read from the cameras when scraped (a custom collector), so the fan-out hot
path only bumps plain integers. Names follow Prometheus conventions: a
``mjpeg_proxy_`` prefix, ``_total`` for counters, base units (bytes, seconds). Every
label value a counter can take (each error kind, each refusal reason) is there from the
first scrape, at 0: ``increase()`` needs a series before its first event to see it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from mjpeg_proxy import __version__
from mjpeg_proxy.camera.camera import Camera
from mjpeg_proxy.camera.errors import error_kinds
from mjpeg_proxy.camera.state import CameraState
from mjpeg_proxy.camera.timing import CameraTiming
from mjpeg_proxy.cluster.feed import ClusterFeed, Role
from mjpeg_proxy.cluster.node import ClusterNode
from mjpeg_proxy.web.appkeys import CAMERA_SET, CAMERAS, CLUSTER, REFUSALS

REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)


class ProxyCollector(Collector):
    """Per-camera and per-server metrics of one application, read at scrape time."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        """Every metric of the application and its cameras, as they are now."""
        cameras = self.app.get(CAMERAS, {})
        yield InfoMetricFamily("mjpeg_proxy_build", "mjpeg-proxy's version", value={"version": __version__})
        label = ["camera"]
        families = {
            "frames_received": CounterMetricFamily(
                "mjpeg_proxy_frames_received", "Frames received from the upstream", labels=label
            ),
            "frames_trimmed": CounterMetricFamily(
                "mjpeg_proxy_frames_trimmed",
                "Frames from the upstream with bytes after the JPEG's end marker, cut off before relaying",
                labels=label,
            ),
            "frames_sent": CounterMetricFamily(
                "mjpeg_proxy_frames_sent", "Parts written to viewers (offline pictures included)", labels=label
            ),
            "bytes_sent": CounterMetricFamily(
                "mjpeg_proxy_sent_bytes", "Bytes of parts written to viewers", labels=label
            ),
            "frames_dropped": CounterMetricFamily(
                "mjpeg_proxy_viewer_frames_dropped",
                "Parts a viewer skipped because its connection was still busy with earlier ones",
                labels=label,
            ),
            "frames_resized": CounterMetricFamily(
                "mjpeg_proxy_frames_resized", "Frames resized for ?width=, once per frame and width", labels=label
            ),
            "frames_resize_failed": CounterMetricFamily(
                "mjpeg_proxy_frames_resize_failed",
                "Frames that could not be resized for ?width= (corrupt, over max_resize_pixels), per frame and width",
                labels=label,
            ),
            "viewers_timed_out": CounterMetricFamily(
                "mjpeg_proxy_viewers_timed_out", "Viewers closed after write_timeout without progress", labels=label
            ),
        }
        requests = CounterMetricFamily("mjpeg_proxy_upstream_requests", "Requests made to the upstream", labels=label)
        viewers = GaugeMetricFamily("mjpeg_proxy_viewers", "Viewers watching the stream now", labels=label)
        age = GaugeMetricFamily(
            "mjpeg_proxy_frame_age_seconds", "Seconds since the latest frame arrived from the upstream", labels=label
        )
        camera_set = self.app.get(CAMERA_SET)
        window_s = (camera_set.timing if camera_set is not None else CameraTiming()).input_fps_window_s
        fps = GaugeMetricFamily(
            "mjpeg_proxy_input_frames_per_second",
            f"Frames received per second over the last {window_s:g} seconds",
            labels=label,
        )
        errors = CounterMetricFamily(
            "mjpeg_proxy_upstream_errors", "Upstream errors by kind", labels=["camera", "kind"]
        )
        state = GaugeMetricFamily(
            "mjpeg_proxy_camera_state", "1 for the camera's current state, 0 for the others", labels=["camera", "state"]
        )
        kinds = error_kinds()
        for camera in cameras.values():
            for key, family in families.items():
                family.add_metric([camera.id], getattr(camera.stats, key))
            requests.add_metric([camera.id], camera.upstream_requests)
            viewers.add_metric([camera.id], camera.hub.viewers)
            if camera.frame_age_s is not None:
                age.add_metric([camera.id], camera.frame_age_s)
            fps.add_metric([camera.id], camera.input_fps)
            for kind in kinds:
                errors.add_metric([camera.id, kind], camera.stats.errors[kind])
            for each in CameraState:
                state.add_metric([camera.id, str(each)], 1.0 if camera.state is each else 0.0)
        yield from families.values()
        yield requests
        yield from (viewers, age, fps, errors, state)
        refused = CounterMetricFamily(
            "mjpeg_proxy_refused_requests", "Requests refused by a limit or as malformed, by reason", labels=["reason"]
        )
        for reason, count in sorted(self.app[REFUSALS].items()):
            refused.add_metric([reason], count)
        yield refused
        if CLUSTER in self.app:
            yield from _cluster_metrics(cameras.values(), self.app[CLUSTER])


def _cluster_metrics(cameras: Iterable[Camera], node: ClusterNode) -> Iterator[Metric]:
    """The cluster's metrics (cluster mode only): what comes over the bus, its errors, leases, viewers everywhere."""
    label = ["camera"]
    from_bus = CounterMetricFamily(
        "mjpeg_proxy_cluster_frames_from_bus", "Frames received from the owner replica over Redis", labels=label
    )
    changes = CounterMetricFamily(
        "mjpeg_proxy_cluster_lease_changes", "Changes of the camera's owner or of this replica's role", labels=label
    )
    errors = CounterMetricFamily(
        "mjpeg_proxy_cluster_bus_errors", "Redis failures of the camera's cluster feed", labels=label
    )
    everywhere = GaugeMetricFamily(
        "mjpeg_proxy_cluster_viewers", "Viewers of the camera on every replica, as last seen", labels=label
    )
    role = GaugeMetricFamily(
        "mjpeg_proxy_cluster_role",
        "1 for this replica's role for the camera, 0 for the others",
        labels=["camera", "role"],
    )
    for camera in cameras:
        feed = camera.feed
        if not isinstance(feed, ClusterFeed):
            continue
        from_bus.add_metric([camera.id], feed.frames_from_bus)
        changes.add_metric([camera.id], feed.lease_changes)
        errors.add_metric([camera.id], feed.bus_errors)
        everywhere.add_metric([camera.id], camera.hub.viewers + camera.viewers_elsewhere)
        for each in Role:
            role.add_metric([camera.id, str(each)], 1.0 if feed.role is each else 0.0)
    yield from (from_bus, changes, errors, everywhere, role)
    cuts = CounterMetricFamily(
        "mjpeg_proxy_cluster_subscription_cuts", "Times this replica's frame subscription to Redis ended under it"
    )
    cuts.add_metric([], node.subscription.cuts)
    yield cuts


def setup(app: web.Application) -> None:
    """Give ``app`` its own registry: this application's metrics and the process's."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    registry.register(ProxyCollector(app))
    app[REGISTRY] = registry


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: every metric in the Prometheus text format (the version prometheus-client writes)."""
    response = web.Response(body=generate_latest(request.app[REGISTRY]), headers={"Cache-Control": "no-store"})
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
