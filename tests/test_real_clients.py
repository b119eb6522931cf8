"""Real clients on real streams: headless Chromium (driven by Playwright), ffmpeg, ffprobe,
VLC and curl. In CI a missing client fails its test; elsewhere it skips, saying why.

Screenshots of the pages go to ``test-output/`` at the top of the project.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from mjpeg_proxy.camera.state import CameraState
from mjpeg_proxy.web.pages import ERROR_PICTURE_SIZE
from tests.helpers import LAN_HOST, Proxy, demo_camera, eventually, need_binary, push_camera, real_frames
from tests.prefix_proxy import PREFIX, PrefixProxy
from tests.processes import REPO_ROOT

FRAMES = real_frames()
OUTPUT = REPO_ROOT / "test-output"
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


ORIGINS = ["localhost", "plain-http-lan"]
"""Where a test's pages come from: http://127.0.0.1 (potentially trustworthy: Chromium sends
Fetch Metadata) or a LAN name on plain http (it sends none)."""


def browser_url(proxy: Proxy, path: str, origin: str) -> str:
    """The URL of ``path`` on ``proxy`` as a browser at ``origin`` (one of ORIGINS) opens it."""
    url = URL(proxy.url(path))
    return str(url.with_host(LAN_HOST)) if origin == "plain-http-lan" else str(url)


async def screenshot(page, name: str) -> None:
    OUTPUT.mkdir(exist_ok=True)
    await page.screenshot(path=str(OUTPUT / name))


@pytest.mark.parametrize("origin", ORIGINS)
async def test_img_paints_the_first_frame_at_once_on_a_still_camera_then_follows(start_proxy, browser, origin):
    # resend_seconds=60: nothing but the first part's own trailing boundary can make it paint.
    proxy = await start_proxy(push_camera("cam", name="Still camera"), resend_seconds=60)
    page = await browser.new_page(viewport={"width": 800, "height": 600})
    await page.goto(browser_url(proxy, "/cameras/cam", origin), wait_until="domcontentloaded")  # loads for ever
    await eventually(lambda: proxy.camera("cam").hub.viewers == 1, 10)
    proxy.push("cam", FRAMES[0])
    # Painted within 1 s of the frame being available, though no second frame follows.
    await page.wait_for_function("document.querySelector('img').naturalWidth > 0", timeout=1000)
    first = await page.evaluate(IMAGE_HASH_JS)
    await screenshot(page, f"kiosk-first-frame-{origin}.png")
    proxy.push("cam", FRAMES[6])
    await page.wait_for_function(f"({IMAGE_HASH_JS})() !== {first}", timeout=2000)
    assert await page.evaluate("document.querySelector('img').naturalWidth") == 768


@pytest.mark.parametrize("origin", ORIGINS)
async def test_address_bar_gets_a_page_showing_the_stream(start_proxy, browser, origin):
    proxy = await start_proxy(demo_camera("demo"))
    page = await browser.new_page(viewport={"width": 800, "height": 600})
    response = await page.goto(browser_url(proxy, "/cameras/demo/stream.mjpg", origin))
    assert response.headers["content-type"].startswith("text/html")
    await page.wait_for_function("document.querySelector('img').naturalWidth === 320", timeout=5000)
    first = await page.evaluate(IMAGE_HASH_JS)
    await page.wait_for_function(f"({IMAGE_HASH_JS})() !== {first}", timeout=5000)
    await screenshot(page, f"stream-url-in-address-bar-{origin}.png")


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


# Every <img> of the page shows a picture: loaded, and not the broken-image icon (whose
# naturalWidth is 0).
ALL_IMAGES_PAINTED = "[...document.images].every(img => img.complete && img.naturalWidth > 0)"


@pytest.mark.parametrize("origin", ORIGINS)
async def test_index_shows_a_picture_for_every_camera_even_those_that_are_down(
    start_proxy, browser, down_cameras, origin
):
    # Six cameras (more than the live tiles): the index polls snapshots. On demand, so each
    # down camera is woken by the page's first snapshot and is in no error state before.
    proxy = await start_proxy(*(demo_camera(f"cam{i}") for i in range(1, 4)), *down_cameras.values(), on_demand=True)
    page = await browser.new_page(viewport={"width": 1400, "height": 900})
    await page.goto(browser_url(proxy, "/", origin))
    await page.wait_for_function(f"document.images.length === 6 && {ALL_IMAGES_PAINTED}", timeout=15000)
    widths = await page.evaluate("Object.fromEntries([...document.images].map(i => [i.alt, i.naturalWidth]))")
    # The down cameras show their offline picture (at the configured size, having had no frame).
    assert widths == {
        **{f"Demo cam{i}": 320 for i in range(1, 4)},
        **{camera.display_name: camera.picture_size[0] for camera in down_cameras.values()},
    }
    await screenshot(page, f"index-with-down-cameras-{origin}.png")
    # Tools still get a plain 503 saying why.
    async with aiohttp.ClientSession() as session:
        for state, camera in down_cameras.items():
            async with session.get(proxy.url(f"/cameras/{camera.id}/snapshot.jpg")) as response:
                assert (response.status, response.content_type) == (503, "application/json")
                assert CameraState(state).reason in (await response.json())["message"]


@pytest.mark.parametrize("origin", ORIGINS)
async def test_a_browser_shows_what_is_wrong_with_a_bad_stream_url(start_proxy, browser, origin):
    proxy = await start_proxy(demo_camera("demo"), max_viewers_per_camera=1)
    page = await browser.new_page(viewport={"width": 800, "height": 600})
    response = await page.goto(browser_url(proxy, "/cameras/demo/stream.mjpg?fps=abc", origin))
    assert response.status == 400
    assert "?fps= must be a number from 0.01 to 100, got 'abc'" in await page.inner_text("main")
    await screenshot(page, f"bad-stream-url-in-address-bar-{origin}.png")
    # As <img>: a picture of the error, not a broken-image icon; the same for a stream the
    # camera has no room for (one viewer at most: one of the last two <img> is refused).
    await page.goto(browser_url(proxy, "/status", origin))  # a page of the proxy that holds no stream
    await page.evaluate(
        """() => { document.body.innerHTML =
            '<img src="cameras/demo/stream.mjpg?fps=abc"><img src="cameras/demo/stream.mjpg?max_seconds=0">' +
            '<img src="cameras/nope/stream.mjpg"><img src="cameras/nope/snapshot.jpg">' +
            '<img src="cameras/demo/stream.mjpg?fps=5"><img src="cameras/demo/stream.mjpg?fps=4">'; }"""
    )
    await page.wait_for_function(f"document.images.length === 6 && {ALL_IMAGES_PAINTED}", timeout=10000)
    widths = await page.evaluate("[...document.images].map(i => i.naturalWidth)")
    assert sorted(widths) == [320] + [ERROR_PICTURE_SIZE[0]] * 5, widths
    await screenshot(page, f"bad-stream-urls-as-img-{origin}.png")


async def test_under_a_path_prefix_a_browser_never_leaves_it(start_proxy, browser, aiohttp_server):
    proxy = await start_proxy(demo_camera("demo"))
    front = await aiohttp_server(PrefixProxy(proxy.url("/")).app())
    root = str(front.make_url(PREFIX))
    page = await browser.new_page(viewport={"width": 800, "height": 600})
    # A trailing slash, as people type it, lands on the kiosk page under the prefix.
    await page.goto(root + "cameras/demo/", wait_until="domcontentloaded")
    assert page.url == root + "cameras/demo"
    await page.wait_for_function("document.querySelector('img').naturalWidth === 320", timeout=5000)
    # The 404 page's "All cameras", deep in a path, leads to the index under the prefix.
    response = await page.goto(root + "cameras/nope/stream.mjpg")
    assert response.status == 404
    await page.click("text=All cameras")
    await page.wait_for_url(root)
    assert await page.title() == "Cameras · mjpeg-proxy"
    await page.wait_for_function("document.querySelector('img').naturalWidth === 320", timeout=5000)


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
