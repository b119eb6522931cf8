"""``/api/cameras``, ``/api/cameras/{id}`` and ``/status`` after a scripted run: the values, not just the keys."""

from __future__ import annotations

import calendar
import json
import re
import time

import aiohttp

from tests.helpers import eventually, push_camera
from tests.scripted_run import BASIC_CREDENTIALS, FRAMES, PASSWORD, scripted_run

KEYS = {
    "id", "name", "source", "state", "state_since", "fetching", "viewers", "frames_received", "frames_trimmed",
    "frames_sent", "bytes_sent", "frames_dropped", "input_fps", "frame_age_seconds", "last_error", "errors",
    "upstream_requests", "frames_resized", "frames_resize_failed",
    "cluster",
}  # fmt: skip


async def get(session: aiohttp.ClientSession, url: str) -> tuple[aiohttp.ClientResponse, str]:
    async with session.get(url) as response:
        return response, await response.text()


def assert_recent_iso(text: str) -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text), text
    since = calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))
    assert time.time() - 60 < since <= time.time() + 1, text


async def test_api_cameras_reports_what_the_run_did(start_proxy, aiohttp_server, fast_retries):
    async with scripted_run(start_proxy, aiohttp_server) as run, aiohttp.ClientSession() as session:
        requests_before = run.upstream.requests
        response, text = await get(session, run.proxy.url("/api/cameras"))
        requests_after = run.upstream.requests
        asked_at = time.monotonic()

        assert response.status == 200
        assert response.content_type == "application/json"
        assert response.headers["Cache-Control"] == "no-store"
        cameras = (await response.json())["cameras"]
        assert [camera["id"] for camera in cameras] == ["cam", "yard"]  # configuration order
        cam, yard = cameras
        assert set(cam) == KEYS and set(yard) == KEYS

        # The live camera: 3 frames in, each written to both viewers.
        assert (cam["name"], cam["source"], cam["state"], cam["fetching"]) == ("Front door", "push", "live", True)
        assert_recent_iso(cam["state_since"])
        assert cam["viewers"] == 2
        assert cam["frames_received"] == 3
        assert cam["frames_trimmed"] == 0
        assert run.parts_received == 6
        assert cam["frames_sent"] == run.parts_received
        assert cam["bytes_sent"] == run.part_bytes_received
        assert cam["bytes_sent"] > 2 * sum(len(jpeg) for jpeg in FRAMES)  # each JPEG, to each viewer, with framing
        assert cam["frames_dropped"] == 0
        # 3 frames since the camera started, less than the 10 s window ago (at least 1 s counted).
        assert 3 / max(1.0, asked_at - run.started_at) - 0.01 <= cam["input_fps"] <= 3.0
        age = cam["frame_age_seconds"]
        assert isinstance(age, float | int) and not isinstance(age, bool)
        assert 0 <= age <= asked_at - run.last_frame_pushed_at + 0.01
        assert cam["last_error"] is None
        assert cam["errors"] == {}
        assert cam["upstream_requests"] == 0  # a push camera makes no requests
        assert cam["cluster"] is None  # one process, no cluster

        # The failing camera: offline, with a reason, counted, and no secret shown.
        assert (yard["name"], yard["source"], yard["state"], yard["fetching"]) == (
            "Back yard",
            "snapshot",
            "offline",
            True,
        )
        assert_recent_iso(yard["state_since"])
        assert (yard["viewers"], yard["frames_received"], yard["frames_sent"], yard["bytes_sent"]) == (0, 0, 0, 0)
        assert yard["frame_age_seconds"] is None
        assert yard["input_fps"] == 0
        assert "HTTP 503" in yard["last_error"]
        assert f"{run.proxy.camera('yard').config.source.url}" in yard["last_error"]  # names the camera's URL
        assert requests_before <= yard["upstream_requests"] <= requests_after + 1
        assert yard["upstream_requests"] >= 2
        assert set(yard["errors"]) == {"unavailable"}
        # Every request but at most one in flight has failed and been counted.
        assert yard["upstream_requests"] - 1 <= yard["errors"]["unavailable"] <= yard["upstream_requests"]

        # The upstream did get the password, yet no form of it is in the answer.
        assert f"Basic {BASIC_CREDENTIALS}" in run.upstream.authorizations
        assert PASSWORD not in text
        assert BASIC_CREDENTIALS not in text


async def test_api_camera_by_id_matches_the_list_and_unknown_id_is_404_json(start_proxy, aiohttp_server, fast_retries):
    async with scripted_run(start_proxy, aiohttp_server) as run, aiohttp.ClientSession() as session:
        _, text = await get(session, run.proxy.url("/api/cameras"))
        listed = {camera["id"]: camera for camera in json.loads(text)["cameras"]}

        response, text = await get(session, run.proxy.url("/api/cameras/cam"))
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"
        cam = await response.json()
        # Nothing moved on this camera between the two requests, except the age of its frame.
        assert {k: v for k, v in cam.items() if k != "frame_age_seconds"} == {
            k: v for k, v in listed["cam"].items() if k != "frame_age_seconds"
        }
        assert cam["frame_age_seconds"] >= listed["cam"]["frame_age_seconds"]

        response, text = await get(session, run.proxy.url("/api/cameras/yard"))
        assert response.status == 200
        yard = await response.json()
        assert set(yard) == KEYS
        for key in ("id", "name", "source", "state", "viewers", "frames_received", "frames_sent", "bytes_sent"):
            assert yard[key] == listed["yard"][key], key
        assert yard["upstream_requests"] >= listed["yard"]["upstream_requests"]
        assert "HTTP 503" in yard["last_error"]
        assert PASSWORD not in text and BASIC_CREDENTIALS not in text

        response, text = await get(session, run.proxy.url("/api/cameras/nope"))
        assert response.status == 404
        assert response.content_type == "application/json"
        body = await response.json()
        assert body["status"] == 404
        assert body["error"] == "Not Found"
        assert "nope" in body["message"]


async def test_status_page_shows_each_camera_with_its_name_and_state(start_proxy, aiohttp_server, fast_retries):
    async with scripted_run(start_proxy, aiohttp_server) as run, aiohttp.ClientSession() as session:
        response, html = await get(session, run.proxy.url("/status"))
        assert response.status == 200
        assert response.content_type == "text/html"
        rows = re.findall(r"<tr>(.*?)</tr>", html.split("<tbody>", 1)[1], flags=re.S)
        assert len(rows) == 2
        cam, yard = rows
        assert "Front door" in cam and "Back yard" not in cam
        assert re.search(r'class="live">live<br>', cam), cam
        assert re.search(r'<td class="n">2</td>', cam), cam  # viewers
        assert re.search(r'<td class="n">3</td>', cam), cam  # frames in
        assert "Back yard" in yard
        assert re.search(r'class="error">offline<br>', yard), yard
        assert "HTTP 503" in yard
        assert PASSWORD not in html and BASIC_CREDENTIALS not in html


async def test_status_page_escapes_camera_names(start_proxy):
    proxy = await start_proxy(push_camera("cam", name="<b>Garage</b> & drive"))
    async with aiohttp.ClientSession() as session:
        response, html = await get(session, proxy.url("/status"))
        assert response.status == 200
        assert "&lt;b&gt;Garage&lt;/b&gt; &amp; drive" in html
        assert "<b>Garage</b>" not in html
        response, _ = await get(session, proxy.url("/api/cameras/cam"))
        assert (await response.json())["name"] == "<b>Garage</b> & drive"


async def test_input_fps_counts_the_frames_of_the_connection_now_open(start_proxy, fast_retries):
    proxy = await start_proxy(push_camera("cam", stall_timeout=1.0))
    camera = proxy.camera("cam")
    for jpeg in FRAMES * 3:  # a burst, then silence: the camera stalls and reconnects
        await proxy.publish("cam", jpeg)
    await eventually(lambda: camera.state == "stalled")
    proxy.push("cam", FRAMES[0])  # the new connection's first and only frame
    # (not `publish`: the next part the hub publishes may be the offline picture)
    await eventually(lambda: camera.stats.frames_received == len(FRAMES) * 3 + 1)
    async with aiohttp.ClientSession() as session:
        response, text = await get(session, proxy.url("/api/cameras/cam"))
    # One frame since the reconnection, under a second ago (1 s is the least divided by);
    # before, the burst's frames were counted over the time since the first start.
    assert json.loads(text)["input_fps"] == 1.0
