"""``?width=N`` (issue 15, item 4): smaller streams and snapshots, each frame resized once per width."""

from __future__ import annotations

import asyncio
import io
import time

import aiohttp
import pytest
from PIL import Image

from mjpeg_proxy.camera.camera import Camera
from mjpeg_proxy.config import CameraConfig, Config, ServerConfig
from mjpeg_proxy.config.live import RESTART_KEYS
from mjpeg_proxy.config.loader import load_config
from mjpeg_proxy.pictures.resize import resize_jpeg
from mjpeg_proxy.web.app import apply_config
from mjpeg_proxy.web.signing import sign
from tests.helpers import (
    DEMO,
    MjpegViewer,
    PushConfig,
    decoded,
    eventually,
    load_error,
    need_binary,
    push_camera,
    real_frames,
    write,
)
from tests.jpeg_samples import announcing
from tests.raw_viewers import RawViewer, raw_viewers

FRAMES = real_frames()  # 768x576
STREAM = "/cameras/cam/stream.mjpg"
SNAPSHOT = "/cameras/cam/snapshot.jpg"
KEY = b"k3y-0123456789abcdef"


def size_of(jpeg: bytes) -> tuple[int, int]:
    return decoded(jpeg).size


async def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as answer:
        return answer.status, await answer.read(), answer.content_type


async def ffprobe(url: str) -> str:
    process = await asyncio.create_subprocess_exec(
        need_binary("ffprobe"), "-v", "error", "-select_streams", "v:0",
        "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err
    return out.decode().strip()


def no_rung_task(camera: Camera) -> bool:
    return not any(task.get_name().startswith(f"camera {camera.id} at ") for task in asyncio.all_tasks())


class CountingResize:
    """The real resize, counted: a stand-in passed to the application (``create_app(resize=)``)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, jpeg: bytes, width: int) -> bytes:
        self.calls += 1
        return resize_jpeg(jpeg, width)


async def test_snapshot_and_stream_parts_are_at_the_rungs_width_for_pillow_and_ffprobe(start_proxy):
    proxy = await start_proxy(push_camera(), resend_seconds=0.5)
    await proxy.publish("cam", FRAMES[0])
    status, jpeg, content_type = await get(proxy.url(f"{SNAPSHOT}?width=500"))
    assert (status, content_type, size_of(jpeg)) == (200, "image/jpeg", (320, 240))
    async with MjpegViewer(proxy.url(f"{STREAM}?width=640&fps=2")) as viewer:
        assert size_of((await viewer.next_new_part()).jpeg) == (640, 480)
    assert await ffprobe(proxy.url(f"{SNAPSHOT}?width=320")) == "mjpeg,320,240"
    assert await ffprobe(proxy.url(f"{STREAM}?width=640")) == "mjpeg,640,480"


@pytest.mark.parametrize(
    "requested, size",
    [(1, (320, 240)), (319, (320, 240)), (320, (320, 240)), (639, (320, 240)), (640, (640, 480)), (1000, (640, 480))],
)
async def test_a_request_gets_the_largest_rung_not_above_its_width_or_the_smallest(start_proxy, requested, size):
    proxy = await start_proxy(push_camera())
    await proxy.publish("cam", FRAMES[0])
    status, jpeg, _ = await get(proxy.url(f"{SNAPSHOT}?width={requested}"))
    assert (status, size_of(jpeg)) == (200, size)


async def test_a_rung_wider_than_the_camera_gets_its_frames_as_they_are(start_proxy):
    proxy = await start_proxy(push_camera())
    await proxy.publish("cam", FRAMES[0])
    for requested in (1280, 100_000):
        assert await get(proxy.url(f"{SNAPSHOT}?width={requested}")) == (200, FRAMES[0], "image/jpeg")
    async with MjpegViewer(proxy.url(f"{STREAM}?width=1280")) as viewer:
        assert (await viewer.next_new_part()).jpeg == FRAMES[0]
        await proxy.publish("cam", FRAMES[1])
        assert (await viewer.next_new_part()).jpeg == FRAMES[1]
    assert proxy.camera("cam").stats.frames_resized == 0


async def test_progressive_and_greyscale_frames_come_out_resized(start_proxy):
    proxy = await start_proxy(push_camera())
    for mode, options in (("RGB", {"progressive": True}), ("L", {})):
        out = io.BytesIO()
        decoded(FRAMES[0]).convert(mode).save(out, "JPEG", **options)
        await proxy.publish("cam", out.getvalue())
        status, jpeg, _ = await get(proxy.url(f"{SNAPSHOT}?width=320"))
        assert status == 200 and decoded(jpeg).size == (320, 240)
        with Image.open(io.BytesIO(jpeg)) as image:
            assert image.mode == mode and "progressive" not in image.info


async def test_200_viewers_of_one_width_cost_one_resize_per_frame(start_proxy):
    resize = CountingResize()
    proxy = await start_proxy(push_camera(), app_options={"resize": resize}, resend_seconds=60)
    camera = proxy.camera("cam")
    await proxy.publish("cam", FRAMES[0])
    viewers = [await RawViewer.connect(proxy, f"{STREAM}?width=320") for _ in range(200)]
    async with raw_viewers(*viewers):
        await eventually(lambda: camera.hub.viewers == 200 and camera.stats.frames_resized == 1)

        async def distinct_pictures(viewer: RawViewer, count: int) -> list[bytes]:
            pictures: list[bytes] = []
            while len(pictures) < count:
                await viewer.recv(1 << 20)
                pictures = list(dict.fromkeys(part.jpeg for part in await viewer.parts()))
            return pictures

        reading = asyncio.gather(*(distinct_pictures(viewer, 6) for viewer in viewers))
        for count, jpeg in enumerate(FRAMES[1:6], 2):
            await proxy.publish("cam", jpeg)
            await eventually(lambda count=count: camera.stats.frames_resized == count)
        seen = await asyncio.wait_for(reading, 30)
    assert resize.calls == camera.stats.frames_resized == 6  # the first frame and 5 more, for 200 viewers
    expected = [resize_jpeg(jpeg, 320) for jpeg in FRAMES[:6]]
    assert all(pictures == expected for pictures in seen)
    assert size_of(expected[-1]) == (320, 240)


async def test_a_width_nobody_watches_any_more_costs_nothing(start_proxy):
    resize = CountingResize()
    proxy = await start_proxy(push_camera(), app_options={"resize": resize})
    camera = proxy.camera("cam")
    await proxy.publish("cam", FRAMES[0])
    async with MjpegViewer(proxy.url(f"{STREAM}?width=320")) as viewer:
        await viewer.next_new_part()
        assert camera.scaled.widths == [320]
    await eventually(lambda: camera.hub.viewers == 0)
    assert camera.scaled.widths == [] and no_rung_task(camera)
    await proxy.publish("cam", FRAMES[1])
    assert no_rung_task(camera)  # a rung still subscribed would have started a resize as the frame came
    assert resize.calls == camera.stats.frames_resized == 1


async def test_a_frame_that_cannot_be_resized_is_skipped_at_the_width_and_the_original_stream_gets_all(start_proxy):
    proxy = await start_proxy(push_camera(), resend_seconds=60)
    truncated = FRAMES[1][: len(FRAMES[1]) // 2]
    bomb = announcing(FRAMES[2], 60000, 60000)
    await proxy.publish("cam", FRAMES[0])
    async with MjpegViewer(proxy.url(STREAM)) as original, MjpegViewer(proxy.url(f"{STREAM}?width=320")) as small:
        assert (await original.next_new_part()).jpeg == FRAMES[0]
        assert size_of((await small.next_new_part()).jpeg) == (320, 240)
        stats = proxy.camera("cam").stats
        for failures, jpeg in enumerate((truncated, bomb), 1):
            await proxy.publish("cam", jpeg)
            await eventually(lambda failures=failures: stats.frames_resize_failed == failures)  # none replaced
        await proxy.publish("cam", FRAMES[3])
        assert [part.jpeg for part in await original.new_parts(3)] == [truncated, bomb, FRAMES[3]]
        assert (await small.next_new_part()).jpeg == resize_jpeg(FRAMES[3], 320)  # the stream went on
    stats = proxy.camera("cam").stats
    assert (stats.frames_resized, stats.frames_resize_failed) == (2, 2)
    status, body, _ = await get(proxy.url("/api/cameras/cam"))
    assert status == 200 and b'"frames_resized": 2, "frames_resize_failed": 2' in body
    _, metrics, _ = await get(proxy.url("/metrics"))
    assert b'mjpeg_proxy_frames_resized_total{camera="cam"} 2.0' in metrics
    assert b'mjpeg_proxy_frames_resize_failed_total{camera="cam"} 2.0' in metrics
    status, body, _ = await get(proxy.url(f"{SNAPSHOT}?width=640"))  # the latest frame is fine again
    assert status == 200 and size_of(body) == (640, 480)


async def test_a_snapshot_of_a_frame_that_cannot_be_resized_is_a_503_that_says_so(start_proxy):
    proxy = await start_proxy(push_camera())
    await proxy.publish("cam", announcing(FRAMES[0], 60000, 60000))
    async with aiohttp.ClientSession() as session, session.get(proxy.url(f"{SNAPSHOT}?width=320")) as answer:
        assert answer.status == 503 and answer.headers["Retry-After"] == "1"
        assert (await answer.json())[
            "message"
        ] == "camera 'cam': the latest frame cannot be made 320 pixels wide; try again"


async def test_resized_viewers_count_as_the_cameras_viewers(start_proxy):
    proxy = await start_proxy(push_camera(), on_demand=True, max_viewers_per_camera=2)
    camera = proxy.camera("cam")
    async with MjpegViewer(proxy.url(f"{STREAM}?width=320")) as small:
        await eventually(lambda: camera.state != "idle")  # fetching on demand for a resized viewer
        await proxy.publish("cam", FRAMES[0])
        assert size_of((await small.next_new_part()).jpeg) == (320, 240)
        async with MjpegViewer(proxy.url(STREAM)) as original:
            await original.next_new_part()
            status, body, _ = await get(proxy.url("/api/cameras/cam"))
            assert status == 200 and b'"viewers": 2' in body
            status, _, _ = await get(proxy.url(f"{STREAM}?width=640"))
            assert status == 503  # max_viewers_per_camera counts both


async def test_a_down_camera_shows_its_offline_picture_at_the_width_too(start_proxy, down_cameras, fast_retries):
    proxy = await start_proxy(down_cameras["offline"])
    async with MjpegViewer(proxy.url("/cameras/refused/stream.mjpg?width=320")) as viewer:
        part = await viewer.next_new_part()
    assert decoded(part.jpeg).size[0] == 320
    assert proxy.camera("refused").stats.frames_resized >= 1


BAD_WIDTHS = ["abc", "0", "-320", "100001", "3.5", "1e3", "", " 320", "320px", "٣٢٠", "9" * 5000]


@pytest.mark.parametrize("path", [STREAM, SNAPSHOT])
@pytest.mark.parametrize("width", BAD_WIDTHS)
async def test_a_malformed_width_is_a_400_that_says_what_is_expected(start_proxy, path, width):
    proxy = await start_proxy(push_camera())
    await proxy.publish("cam", FRAMES[0])
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url(path), params={"width": width}) as answer:
            assert answer.status == 400
            message = (await answer.json())["message"]
    assert message == f"?width= must be a whole number of pixels from 1 to 100000, got {width[:20]!r}"


async def test_a_repeated_width_is_a_400_and_an_img_gets_the_error_as_a_picture(start_proxy):
    proxy = await start_proxy(push_camera())
    await proxy.publish("cam", FRAMES[0])
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url(f"{SNAPSHOT}?width=320&width=640")) as answer:
            assert answer.status == 400
            assert (await answer.json())["message"] == "?width= must be given once, got 2 values"
    img = {"Accept": "image/avif,image/webp,*/*", "Sec-Fetch-Dest": "image"}
    status, body, content_type = await get(proxy.url(f"{STREAM}?width=wide"), img)
    assert (status, content_type) == (400, "image/jpeg") and decoded(body).size == (640, 360)


async def test_a_signed_link_with_a_width_plays_and_the_same_link_with_another_width_is_refused(start_proxy):
    proxy = await start_proxy(CameraConfig(id="yard", source=PushConfig(), access="signed"), signing_keys=(KEY,))
    await proxy.publish("yard", FRAMES[0])
    link = sign(KEY, "/cameras/yard/stream.mjpg", int(time.time()) + 60, {"width": "320"})
    async with MjpegViewer(proxy.url(link)) as viewer:
        assert size_of((await viewer.next_new_part()).jpeg) == (320, 240)
    async with aiohttp.ClientSession() as session, session.get(proxy.url(link.replace("320", "640"))) as answer:
        assert answer.status == 403 and "signature is wrong" in (await answer.json())["message"]


async def test_the_widths_and_the_cap_apply_on_reload(start_proxy):
    proxy = await start_proxy(push_camera(), widths=(320,))
    await proxy.publish("cam", FRAMES[0])
    assert size_of((await get(proxy.url(f"{SNAPSHOT}?width=640")))[1]) == (320, 240)
    cameras = (proxy.camera("cam").config,)
    assert "widths" not in RESTART_KEYS and "max_resize_pixels" not in RESTART_KEYS
    await apply_config(proxy.server.app, Config(ServerConfig(widths=(640,), max_resize_pixels=400_000), cameras))
    await proxy.publish("cam", FRAMES[1])
    status, _, _ = await get(proxy.url(f"{SNAPSHOT}?width=640"))
    assert status == 503  # 768x576 is 442,368 pixels, over the new cap
    smaller = resize_jpeg(FRAMES[2], 700)  # 700x525: 367,500 pixels
    await proxy.publish("cam", smaller)
    status, jpeg, _ = await get(proxy.url(f"{SNAPSHOT}?width=100"))
    assert (status, size_of(jpeg)) == (200, (640, 480))


@pytest.mark.parametrize(
    "line, problem",
    [
        ("widths = []", "must be a list of one or more widths in pixels"),
        ("widths = [320, 320]", "lists a width twice"),
        ("widths = [8]", "8 is not a whole number of pixels from 16 to 7680"),
        ("widths = [320.0]", "320.0 is not a whole number of pixels"),
        ("max_resize_pixels = 0", "must be an integer from 1 to 89478485"),
        ("max_resize_pixels = 100000000", "must be an integer from 1 to 89478485"),
    ],
)
def test_a_wrong_ladder_or_cap_is_one_clear_error_naming_the_key(tmp_path, line, problem):
    message = load_error(tmp_path, f"[server]\n{line}\n" + DEMO)
    assert f"[server]: field '{line.split()[0]}': {problem}" in message


def test_the_ladder_is_read_in_any_order_and_kept_ascending(tmp_path):
    config = load_config(write(tmp_path, "[server]\nwidths = [1280, 160, 640]\n" + DEMO), {})
    assert (config.server.widths, config.server.max_resize_pixels) == ((160, 640, 1280), 40_000_000)
