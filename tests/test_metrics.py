"""``GET /metrics`` after a scripted run: parsed as Prometheus does, value by value."""

from __future__ import annotations

import gc
import json
import time

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from mjpeg_proxy import __version__
from mjpeg_proxy.camera import errors
from mjpeg_proxy.camera.errors import error_kinds
from mjpeg_proxy.camera.state import CameraState
from mjpeg_proxy.camera.timing import CameraTiming
from mjpeg_proxy.web import limits
from tests.helpers import push_camera
from tests.scripted_run import BASIC_CREDENTIALS, PASSWORD, scripted_run

REASONS = ("bad_request", "camera_full", "client_limit", "hotlink", "operator_only", "server_full", "signed_link")
KINDS = {
    "error",
    "auth_failed",
    "login_needed",
    "login_expired",
    "forbidden",
    "not_found",
    "unavailable",
    "stalled",
    "bad_frame",
}
"""The kind of each error class in mjpeg_proxy/camera/errors.py."""


class Scrape:
    """One /metrics answer: families by name, and sample values by name and labels."""

    def __init__(self, text: str) -> None:
        self.families = {family.name: family for family in text_string_to_metric_families(text)}
        self.samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in self.families.values()
            for sample in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, frozenset(labels.items()))]

    def has(self, name: str, **labels: str) -> bool:
        return (name, frozenset(labels.items())) in self.samples


async def scrape(session: aiohttp.ClientSession, url: str) -> tuple[aiohttp.ClientResponse, str]:
    async with session.get(url) as response:
        return response, await response.text()


async def test_metrics_after_a_scripted_run(start_proxy, aiohttp_server, fast_retries):
    async with (
        scripted_run(start_proxy, aiohttp_server, max_viewers_per_camera=2) as run,
        aiohttp.ClientSession() as session,
    ):
        # A third viewer of "cam" is refused: one refusal for the metrics to count.
        async with session.get(run.proxy.url("/cameras/cam/stream.mjpg")) as refused:
            assert refused.status == 503

        requests_before = run.upstream.requests
        response, text = await scrape(session, run.proxy.url("/metrics"))
        requests_after = run.upstream.requests
        _, api_text = await scrape(session, run.proxy.url("/api/cameras/cam"))

    assert response.status == 200
    # Prometheus's text format (0.0.4, or 1.0.0 from prometheus-client 0.22 on, which names
    # the same lines for these metric names); not OpenMetrics, not protobuf.
    media_type, *params = [item.strip() for item in response.headers["Content-Type"].split(";")]
    assert media_type == "text/plain"
    assert "charset=utf-8" in params
    assert any(param in ("version=0.0.4", "version=1.0.0") for param in params), params
    assert response.headers["Cache-Control"] == "no-store"
    m = Scrape(text)

    # Counters of the live camera, matching what the viewers counted and what /api says.
    assert m.value("mjpeg_proxy_frames_received_total", camera="cam") == 3
    assert m.value("mjpeg_proxy_frames_sent_total", camera="cam") == run.parts_received == 6
    assert m.value("mjpeg_proxy_sent_bytes_total", camera="cam") == run.part_bytes_received
    api = json.loads(api_text)
    assert m.value("mjpeg_proxy_sent_bytes_total", camera="cam") == api["bytes_sent"]
    assert m.value("mjpeg_proxy_frames_sent_total", camera="cam") == api["frames_sent"]
    assert m.value("mjpeg_proxy_viewer_frames_dropped_total", camera="cam") == 0
    assert m.value("mjpeg_proxy_viewers_timed_out_total", camera="cam") == 0
    assert m.value("mjpeg_proxy_upstream_requests_total", camera="cam") == 0
    assert m.value("mjpeg_proxy_frames_trimmed_total", camera="cam") == 0
    assert m.value("mjpeg_proxy_viewers", camera="cam") == 2  # the refused third is not counted
    since_start = max(1.0, time.monotonic() - run.started_at)  # under the 10 s window: divided by this
    assert 3 / since_start - 0.01 <= m.value("mjpeg_proxy_input_frames_per_second", camera="cam") <= 3.0
    assert 0 <= m.value("mjpeg_proxy_frame_age_seconds", camera="cam") < 5
    for kind in KINDS:  # none happened, each is there at 0
        assert m.value("mjpeg_proxy_upstream_errors_total", camera="cam", kind=kind) == 0, kind

    # The failing camera: no frames, errors by kind, its requests counted.
    assert m.value("mjpeg_proxy_frames_received_total", camera="yard") == 0
    assert m.value("mjpeg_proxy_frames_sent_total", camera="yard") == 0
    assert m.value("mjpeg_proxy_sent_bytes_total", camera="yard") == 0
    assert m.value("mjpeg_proxy_viewers", camera="yard") == 0
    assert m.value("mjpeg_proxy_input_frames_per_second", camera="yard") == 0
    assert not m.has("mjpeg_proxy_frame_age_seconds", camera="yard")  # no frame yet: no age
    upstream_requests = m.value("mjpeg_proxy_upstream_requests_total", camera="yard")
    assert requests_before <= upstream_requests <= requests_after + 1
    assert upstream_requests >= 2
    errors = m.value("mjpeg_proxy_upstream_errors_total", camera="yard", kind="unavailable")
    assert upstream_requests - 1 <= errors <= upstream_requests
    for kind in KINDS - {"unavailable"}:
        assert m.value("mjpeg_proxy_upstream_errors_total", camera="yard", kind=kind) == 0, kind

    # Exactly one state is 1 per camera.
    for camera, current in (("cam", "live"), ("yard", "offline")):
        states = {
            str(state): m.value("mjpeg_proxy_camera_state", camera=camera, state=str(state)) for state in CameraState
        }
        assert states == {state: (1.0 if state == current else 0.0) for state in states}, camera

    # Refusals by reason, every reason present.
    assert {reason: m.value("mjpeg_proxy_refused_requests_total", reason=reason) for reason in REASONS} == {
        "bad_request": 0,
        "camera_full": 1,
        "client_limit": 0,
        "hotlink": 0,
        "operator_only": 0,
        "server_full": 0,
        "signed_link": 0,
    }

    # Types and names as Prometheus expects.
    for name in ("mjpeg_proxy_frames_received", "mjpeg_proxy_sent_bytes", "mjpeg_proxy_refused_requests"):
        assert m.families[name].type == "counter", name
    for name in ("mjpeg_proxy_viewers", "mjpeg_proxy_camera_state", "mjpeg_proxy_input_frames_per_second"):
        assert m.families[name].type == "gauge", name
    assert m.value("mjpeg_proxy_build_info", version=__version__) == 1

    # The process's own metrics.
    assert m.value("process_resident_memory_bytes") > 0
    assert m.value("process_cpu_seconds_total") > 0
    assert 0 < m.value("process_open_fds") < m.value("process_max_fds")  # the README's alert divides them
    assert m.value("process_start_time_seconds") > 0
    assert any(name == "python_info" for name, _ in m.samples)

    assert PASSWORD not in text and BASIC_CREDENTIALS not in text


async def test_metrics_of_an_idle_server_are_zero_not_missing(start_proxy):
    """Before anything happens every camera and reason is there, at zero, so rates and
    alerts work from the first scrape."""
    proxy = await start_proxy(push_camera("cam"), push_camera("other"), on_demand=True)
    async with aiohttp.ClientSession() as session:
        response, text = await scrape(session, proxy.url("/metrics"))
    assert response.status == 200
    m = Scrape(text)
    for camera in ("cam", "other"):
        for name in (
            "mjpeg_proxy_frames_received_total",
            "mjpeg_proxy_frames_sent_total",
            "mjpeg_proxy_sent_bytes_total",
            "mjpeg_proxy_viewers",
        ):
            assert m.value(name, camera=camera) == 0, (name, camera)
        assert m.value("mjpeg_proxy_camera_state", camera=camera, state="idle") == 1
        assert not m.has("mjpeg_proxy_frame_age_seconds", camera=camera)
    for reason in REASONS:
        assert m.value("mjpeg_proxy_refused_requests_total", reason=reason) == 0


async def test_every_labelled_counter_is_at_zero_from_the_first_scrape(start_proxy):
    """Prometheus' increase() needs a series before its first event: every error kind of
    every camera and every refusal reason is there, at 0, on a proxy that has done nothing."""
    proxy = await start_proxy(push_camera("cam"), push_camera("other"), on_demand=True)
    async with aiohttp.ClientSession() as session:
        _, text = await scrape(session, proxy.url("/metrics"))
    m = Scrape(text)

    for camera in ("cam", "other"):
        kinds = {
            labels["kind"]
            for labels in (dict(labels) for name, labels in m.samples if name == "mjpeg_proxy_upstream_errors_total")
            if labels["camera"] == camera
        }
        assert kinds == KINDS, camera
        for kind in kinds:
            assert m.value("mjpeg_proxy_upstream_errors_total", camera=camera, kind=kind) == 0
        assert m.value("mjpeg_proxy_frames_trimmed_total", camera=camera) == 0
    reasons = {dict(labels)["reason"] for name, labels in m.samples if name == "mjpeg_proxy_refused_requests_total"}
    assert reasons == set(REASONS) == set(limits.REASONS)
    for reason in reasons:
        assert m.value("mjpeg_proxy_refused_requests_total", reason=reason) == 0


def test_error_kinds_are_read_from_the_classes():
    """A kind added as a class is listed without a list to keep in step."""
    assert set(error_kinds()) == KINDS

    class Throttled(errors.UpstreamUnavailable):
        kind = "throttled"

    assert "throttled" in error_kinds()
    del Throttled
    gc.collect()  # the class is gone: no stray kind in later tests' metrics
    assert set(error_kinds()) == KINDS


async def test_the_input_rate_help_names_the_window_in_force(start_proxy):
    timing = CameraTiming(input_fps_window_s=4.0)
    proxy = await start_proxy(push_camera("cam"), timing=timing)
    async with aiohttp.ClientSession() as session:
        _, text = await scrape(session, proxy.url("/metrics"))
    help_line = next(line for line in text.splitlines() if line.startswith("# HELP mjpeg_proxy_input_frames_per"))
    assert help_line.endswith("Frames received per second over the last 4 seconds")
