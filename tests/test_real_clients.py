"""Real clients on real streams: headless Chromium (driven by Playwright), ffmpeg, ffprobe,
VLC and curl. In CI a missing client fails its test; elsewhere it skips, saying why.

Screenshots of the pages go to ``test-output/`` at the top of the project.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mjpeg_proxy.config import CameraConfig
from tests.conftest import push_camera
from tests.helpers import eventually, real_frames
from tests.test_end_to_end import need_binary

FRAMES = real_frames()
OUTPUT = Path(__file__).resolve().parent.parent / "test-output"
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these, Chromium keeps calling Google's hosts, which this network refuses.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The pixels of the first <img> as a short hash, read through a canvas.
IMAGE_HASH_JS = """() => {
  const img = document.querySelector("img");
  if (!img || !img.naturalWidth) return null;
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(img, 0, 0);
  const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let hash = 0;
  for (let i = 0; i < data.length; i += 97) hash = (hash * 31 + data[i]) | 0;
  return hash;
}"""


def demo_camera(camera_id: str, fps: float = 2.0) -> CameraConfig:
    return CameraConfig(id=camera_id, source="demo", name=f"Demo {camera_id}", fps=fps, width=320, height=180)


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    executable = need_binary("chromium")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("playwright is not installed; it is in the 'test' extra")
        pytest.skip("playwright is not installed")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def screenshot(page, name: str) -> None:
    OUTPUT.mkdir(exist_ok=True)
    await page.screenshot(path=str(OUTPUT / name))


async def test_img_paints_the_first_frame_at_once_on_a_still_camera_then_follows(start_proxy, browser):
    # resend_seconds=60: nothing but the first part's own trailing boundary can make it paint.
    proxy = await start_proxy(push_camera("cam", name="Still camera"), resend_seconds=60)
    page = await browser.new_page(viewport={"width": 800, "height": 600})
    await page.goto(proxy.url("/cameras/cam"), wait_until="domcontentloaded")  # the image loads for ever
    await proxy.camera("cam").hub.wait_viewers(lambda n: n == 1)
    proxy.push("cam", FRAMES[0])
    # Painted within 1 s of the frame being available, though no second frame follows.
    await page.wait_for_function("document.querySelector('img').naturalWidth > 0", timeout=1000)
    first = await page.evaluate(IMAGE_HASH_JS)
    await screenshot(page, "kiosk-first-frame.png")
    proxy.push("cam", FRAMES[6])
    await page.wait_for_function(f"({IMAGE_HASH_JS})() !== {first}", timeout=2000)
    assert await page.evaluate("document.querySelector('img').naturalWidth") == 768


async def test_address_bar_gets_a_page_showing_the_stream(start_proxy, browser):
    proxy = await start_proxy(demo_camera("demo"))
    page = await browser.new_page(viewport={"width": 800, "height": 600})
    response = await page.goto(proxy.url("/cameras/demo/stream.mjpg"))
    assert response.headers["content-type"].startswith("text/html")
    await page.wait_for_function("document.querySelector('img').naturalWidth === 320", timeout=5000)
    first = await page.evaluate(IMAGE_HASH_JS)
    await page.wait_for_function(f"({IMAGE_HASH_JS})() !== {first}", timeout=5000)
    await screenshot(page, "stream-url-in-address-bar.png")


async def test_index_with_8_cameras_shows_all_of_them_moving_and_stays_usable(start_proxy, browser):
    proxy = await start_proxy(*(demo_camera(f"cam{i}") for i in range(1, 9)))
    page = await browser.new_page(viewport={"width": 1400, "height": 900})
    await page.goto(proxy.url("/"))
    all_loaded = "[...document.images].length === 8 && [...document.images].every(i => i.naturalWidth === 320)"
    await page.wait_for_function(all_loaded, timeout=10000)
    # Every tile keeps changing (the demo's clock moves), one at a time as their pictures refresh.
    sources = await page.evaluate("[...document.images].map(i => i.currentSrc)")
    await page.wait_for_function(
        f"[...document.images].every((img, i) => img.complete && img.currentSrc !== {sources}[i])", timeout=10000
    )
    # The page's other requests are not starved of connections.
    assert await page.evaluate("fetch('healthz').then(r => r.text())") == "ok"
    await screenshot(page, "index-8-cameras.png")
    # The eighth camera's own page is live.
    await page.goto(proxy.url("/cameras/cam8"))
    await page.wait_for_function("document.querySelector('img').naturalWidth === 320", timeout=5000)
    await screenshot(page, "kiosk-cam8.png")


async def test_index_with_4_cameras_plays_them_live(start_proxy, browser):
    proxy = await start_proxy(*(demo_camera(f"cam{i}") for i in range(1, 5)))
    page = await browser.new_page(viewport={"width": 1400, "height": 900})
    await page.goto(proxy.url("/"))
    await page.wait_for_function("[...document.images].every(i => i.naturalWidth === 320)", timeout=10000)
    await eventually(lambda: all(proxy.camera(f"cam{i}").hub.viewers == 1 for i in range(1, 5)))
    assert await page.evaluate("fetch('healthz').then(r => r.text())") == "ok"
    await screenshot(page, "index-4-cameras-live.png")


async def run(*command: str, timeout_s: float = 60, text: bool = True) -> tuple[int, str | bytes, str | bytes]:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout_s)
    if text:
        return process.returncode, stdout.decode(), stderr.decode()
    return process.returncode, stdout, stderr


async def test_ffmpeg_reads_50_frames_without_warnings_and_ffprobe_sees_mjpeg(start_proxy):
    ffmpeg, ffprobe = need_binary("ffmpeg"), need_binary("ffprobe")
    proxy = await start_proxy(demo_camera("demo", fps=25.0))
    url = proxy.url("/cameras/demo/stream.mjpg")
    code, _, stderr = await run(
        ffmpeg, "-hide_banner", "-nostdin", "-v", "warning", "-i", url, "-frames:v", "50", "-f", "null", "-"
    )
    assert (code, stderr) == (0, "")
    code, stdout, stderr = await run(
        ffprobe,
        "-v",
        "error",
        "-select_streams",
        "v:0",
        "-show_entries",
        "stream=codec_name,width,height",
        "-of",
        "csv=p=0",
        url,
    )
    assert code == 0 and stdout.strip() == "mjpeg,320,180", stderr


async def test_vlc_records_the_stream_to_a_file_ffprobe_can_read(start_proxy):
    cvlc, ffprobe = need_binary("cvlc"), need_binary("ffprobe")
    proxy = await start_proxy(demo_camera("demo", fps=10.0))
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o777)
        recording = Path(folder) / "recording.avi"
        command = [cvlc, "-q", "--intf", "dummy", proxy.url("/cameras/demo/stream.mjpg")]
        command += ["--sout", f"#std{{access=file,mux=avi,dst={recording}}}"]
        if os.geteuid() == 0:
            # VLC refuses to run as root (CI does); run it as nobody.
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "env", f"HOME={folder}", *command]
        process = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.DEVNULL)
        try:
            # VLC plays a live stream until stopped: stop it once it has recorded a few frames.
            await eventually(lambda: recording.exists() and recording.stat().st_size > 60_000, 30)
        finally:
            process.terminate()
            await asyncio.wait_for(process.wait(), 10)
        code, stdout, stderr = await run(
            ffprobe, "-v", "error", "-count_frames", "-show_entries", "stream=codec_name,width,height,nb_read_frames",
            "-of", "csv=p=0", str(recording),
        )  # fmt: skip
    codec, width, height, frames = stdout.strip().split(",")
    assert (code, codec, width, height) == (0, "mjpeg", "320", "180"), stderr
    assert int(frames) >= 3


async def test_curl_raw_sees_a_close_delimited_http11_stream(start_proxy):
    curl = need_binary("curl")
    proxy = await start_proxy(push_camera(), resend_seconds=60)
    await proxy.publish("cam", FRAMES[0])
    url = proxy.url("/cameras/cam/stream.mjpg")
    # --raw shows the body as it is on the wire; -i the headers; --max-time ends the endless stream.
    process = await asyncio.create_subprocess_exec(
        curl,
        "-s",
        "-i",
        "--raw",
        "--max-time",
        "2",
        url,
        stdout=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    raw, _ = await asyncio.wait_for(process.communicate(), 10)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").lower().split("\r\n")
    # No chunked coding: the body ends when the connection closes (RFC 9112, 6.3), so every
    # viewer's socket gets the same bytes the hub built once.
    assert lines[0] == "http/1.1 200 ok" and "connection: close" in lines
    assert not any(line.startswith(("transfer-encoding", "content-length")) for line in lines)
    boundary = body[2 : body.index(b"\r\n")]
    jpeg_start = body.index(b"\r\n\r\n") + 4
    assert body.startswith(
        b"--" + boundary + b"\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n" % len(FRAMES[0])
    )
    assert body[jpeg_start : jpeg_start + len(FRAMES[0])] == FRAMES[0]
    assert body[jpeg_start + len(FRAMES[0]) :].startswith(b"\r\n--" + boundary + b"\r\n")
