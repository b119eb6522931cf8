"""Hot-linking (issue 15, item 3): with ``embed_origins`` set, only the listed sites' pages
(and the proxy's own) show streams and snapshots or frame the proxy's pages; requests that
name no site are served; ``["*"]``, the default, is today's behaviour."""

from __future__ import annotations

import dataclasses
import io

import aiohttp
import pytest
from aiohttp import web
from PIL import Image

from mjpeg_proxy.config import ConfigError
from mjpeg_proxy.config.loader import parse_config
from mjpeg_proxy.web.app import apply_config
from mjpeg_proxy.web.appkeys import CONFIG
from tests.client_headers import BROWSER_IMAGE, BROWSER_PAGE, TOOL
from tests.helpers import LAN_HOST, demo_camera, push_camera, real_frames, refusals

FRAME = real_frames()[0]
SITE = "https://shop.example"
ELSEWHERE = "https://elsewhere.example"
MEDIA = ("/cameras/cam/stream.mjpg", "/cameras/cam/snapshot.jpg")
REFUSED = "this camera may only be shown on its owner's site"


async def started(start_proxy, **server_options):
    proxy = await start_proxy(push_camera("cam"), **server_options)
    await proxy.publish("cam", FRAME)
    return proxy


async def get(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and the start of the body of one GET (a stream is left once its first bytes are in)."""
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return response.status, dict(response.headers), await response.content.read(4096)


def image_from(page: str, **more: str) -> dict[str, str]:
    """What a browser's ``<img>`` on ``page`` (an address, an origin as browsers send it) sends."""
    return {**BROWSER_IMAGE, "Referer": page, **more}


@pytest.mark.parametrize("path", MEDIA)
async def test_an_img_on_another_site_gets_403_as_a_picture_and_is_counted(start_proxy, path):
    proxy = await started(start_proxy, embed_origins=(SITE,))
    status, headers, body = await get(proxy.url(path), image_from(ELSEWHERE + "/"))
    assert status == 403 and headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(body)).size == (640, 360)  # the error picture, not the camera's frame
    assert "Retry-After" not in headers  # waiting does not help
    # A script or tool naming another site by Origin gets the reason in words.
    status, _, body = await get(proxy.url(path), {**TOOL, "Origin": ELSEWHERE})
    assert status == 403 and REFUSED in body.decode() and ELSEWHERE in body.decode()
    counted = await refusals(proxy)
    assert counted["hotlink"] == 2


@pytest.mark.parametrize("path", MEDIA)
async def test_a_listed_site_a_request_naming_no_site_and_the_proxys_own_pages_are_served(start_proxy, path):
    proxy = await started(start_proxy, embed_origins=(SITE, "http://127.0.0.1:8000"))
    own = proxy.url("/").rstrip("/")
    served = {
        "listed site, Referer": image_from(SITE + "/shop/cameras.html"),
        "listed site, written otherwise": image_from("HTTPS://Shop.Example:443/"),
        "listed site, Origin": {**TOOL, "Origin": "http://127.0.0.1:8000"},
        "Origin first": {**TOOL, "Origin": SITE, "Referer": ELSEWHERE + "/"},
        "no Referer (VLC, curl, referrerpolicy=no-referrer)": BROWSER_IMAGE,
        "a tool": TOOL,
        "own page, as https browsers say": image_from(SITE + "/", **{"Sec-Fetch-Site": "same-origin"}),
        "own page, plain http: the Host's": image_from(own + "/cameras/cam"),
        "own page, by Origin": {**TOOL, "Origin": own},
        "a link from another site": {**BROWSER_PAGE, "Referer": ELSEWHERE + "/"},
    }
    for name, headers in served.items():
        status, _, _ = await get(proxy.url(path), headers)
        assert status == 200, name
    refused = {
        "another port": image_from(own.replace(str(proxy.server.port), "1") + "/"),
        "localhost is another origin than 127.0.0.1": image_from(own.replace("127.0.0.1", "localhost") + "/"),
        "a listed site's name inside another's": image_from("https://shop.example.evil/"),
        "another scheme of a listed site": image_from("http://shop.example/"),
        "a hidden site": {**TOOL, "Origin": "null"},
        "no URL": image_from("not a page"),
        "the browser says another site": image_from(own + "/", **{"Sec-Fetch-Site": "same-site"}),
    }
    for name, headers in refused.items():
        status, _, _ = await get(proxy.url(path), headers)
        assert status == 403, name
    assert (await refusals(proxy))["hotlink"] == len(refused)


@pytest.mark.parametrize("path", MEDIA)
async def test_a_page_of_another_site_hiding_its_address_is_refused_where_the_browser_says_so(start_proxy, path):
    # <img referrerpolicy="no-referrer">, or an <img> in a data: frame, sends no Referer; over
    # https and to localhost the browser still says whose page asks (Sec-Fetch-Site).
    proxy = await started(start_proxy, embed_origins=(SITE,))
    hidden = {**BROWSER_IMAGE, "Sec-Fetch-Dest": "image", "Sec-Fetch-Mode": "no-cors"}
    for said, expected in (("cross-site", 403), ("same-site", 403), ("same-origin", 200)):
        status, _, body = await get(proxy.url(path), {**hidden, "Sec-Fetch-Site": said})
        assert status == expected, said
    assert (await refusals(proxy))["hotlink"] == 2


async def test_by_default_any_site_may_show_and_frame_the_cameras(start_proxy):
    proxy = await started(start_proxy)
    for path in MEDIA:
        status, headers, _ = await get(proxy.url(path), image_from(ELSEWHERE + "/"))
        assert status == 200 and "Content-Security-Policy" not in headers
    for path in ("/", "/cameras/cam"):
        _, headers, _ = await get(proxy.url(path), BROWSER_PAGE)
        assert "Content-Security-Policy" not in headers and "X-Frame-Options" not in headers
    assert (await refusals(proxy))["hotlink"] == 0


async def test_every_page_says_which_sites_may_frame_it(start_proxy):
    proxy = await started(start_proxy, embed_origins=(SITE, "http://127.0.0.1:8000"))
    pages = ("/", "/cameras/cam", "/cameras/cam/stream.mjpg", "/status", "/cameras/nope", "/cameras/cam/snapshot.jpg")
    for path in pages:
        status, headers, _ = await get(proxy.url(path), BROWSER_PAGE)
        assert headers["Content-Security-Policy"] == f"frame-ancestors 'self' {SITE} http://127.0.0.1:8000", path
        assert "X-Frame-Options" not in headers  # frame-ancestors supersedes it; none to contradict it
    # The proxy's own pages alone.
    proxy = await started(start_proxy, embed_origins=())
    _, headers, _ = await get(proxy.url("/cameras/cam"), BROWSER_PAGE)
    assert headers["Content-Security-Policy"] == "frame-ancestors 'self'"
    status, _, _ = await get(proxy.url(MEDIA[0]), image_from(SITE + "/"))
    assert status == 403


async def test_a_reload_applies_the_list_at_once(start_proxy):
    proxy = await started(start_proxy)
    app = proxy.server.app
    assert (await get(proxy.url(MEDIA[1]), image_from(ELSEWHERE + "/")))[0] == 200
    current = app[CONFIG].current
    await apply_config(
        app, dataclasses.replace(current, server=dataclasses.replace(current.server, embed_origins=(SITE,)))
    )
    assert (await get(proxy.url(MEDIA[1]), image_from(ELSEWHERE + "/")))[0] == 403
    _, headers, _ = await get(proxy.url("/"), BROWSER_PAGE)
    assert headers["Content-Security-Policy"] == f"frame-ancestors 'self' {SITE}"


def embed_origins(value: object) -> tuple[str, ...]:
    data = {"server": {"embed_origins": value}, "cameras": [{"id": "demo", "source": "demo"}]}
    return parse_config(data, "proxy.toml", {}).server.embed_origins


def test_embed_origins_default_to_any_and_are_written_as_browsers_send_them():
    assert parse_config({"cameras": [{"id": "d", "source": "demo"}]}, "p.toml", {}).server.embed_origins == ("*",)
    assert embed_origins([]) == ()
    assert embed_origins(["https://Shop.Example/", "http://a.b:80"]) == ("https://shop.example", "http://a.b")


@pytest.mark.parametrize(
    "value", ["https://shop.example", ["https://shop.example/page"], ["shop.example"], ["*", SITE]]
)
def test_bad_embed_origins_are_refused_naming_the_field(value):
    with pytest.raises(ConfigError) as error:
        embed_origins(value)
    message = str(error.value)
    assert message.startswith("proxy.toml: [server]: field 'embed_origins': ") and "\n" not in message


# --- a real browser, on the proxy's own pages and on two other sites ---------------------------

SITE_PAGE = """<!doctype html><title>A site</title>
<img src="{proxy}/cameras/demo/stream.mjpg" alt="live">
<iframe src="{proxy}/cameras/demo" width="400" height="240"></iframe>"""


async def other_site(aiohttp_server) -> str:
    """A site of its own on 127.0.0.1 (another port, so another origin) whose page (``/?proxy=BASE``)
    shows the proxy's demo stream in an ``<img>`` and its camera page in an ``<iframe>``; its origin."""

    async def home(request: web.Request) -> web.Response:
        return web.Response(text=SITE_PAGE.format(proxy=request.query["proxy"]), content_type="text/html")

    site = web.Application()
    site.router.add_get("/", home)
    server = await aiohttp_server(site)
    return f"http://127.0.0.1:{server.port}"


async def test_chromium_on_another_site_gets_no_camera_by_hiding_the_page(start_proxy, aiohttp_server, browser):
    proxy = await start_proxy(demo_camera("demo"), embed_origins=(SITE,))
    base = proxy.url("").rstrip("/")
    hiding = f"""<!doctype html><title>Another site</title>
<img referrerpolicy="no-referrer" src="{base}/cameras/demo/stream.mjpg">
<iframe src="data:text/html,<img src='{base}/cameras/demo/snapshot.jpg'>"></iframe>"""

    async def home(request: web.Request) -> web.Response:
        return web.Response(text=hiding, content_type="text/html")

    site = web.Application()
    site.router.add_get("/", home)
    other = await aiohttp_server(site)
    page = await browser.new_page()
    try:
        await page.goto(f"http://localhost:{other.port}/", wait_until="domcontentloaded")
        for frame in page.frames:
            await frame.wait_for_function("document.images[0].naturalWidth > 0", timeout=10_000)
        widths = [await frame.evaluate("document.images[0].naturalWidth") for frame in page.frames]
        assert widths == [640, 640]  # the 403 picture; the camera's is 320 wide
    finally:
        await page.close()
    assert (await refusals(proxy))["hotlink"] == 2


async def widths_on(browser, url: str) -> list[int]:
    """The ``naturalWidth`` of each image of the page at ``url``, once all have painted."""
    page = await browser.new_page()
    try:
        await page.goto(url, wait_until="domcontentloaded")
        await page.wait_for_function("[...document.images].every(img => img.naturalWidth > 0)", timeout=10_000)
        return await page.evaluate("[...document.images].map(img => img.naturalWidth)")
    finally:
        await page.close()


async def test_chromium_shows_the_camera_on_the_listed_site_and_the_proxys_pages_only(
    start_proxy, aiohttp_server, browser
):
    listed, other = await other_site(aiohttp_server), await other_site(aiohttp_server)
    proxy = await start_proxy(demo_camera("demo"), embed_origins=(listed,))
    base = proxy.url("").rstrip("/")

    # The proxy's own pages: over http://127.0.0.1 (Chromium says same-origin) and plain http
    # on a LAN name (no Sec-Fetch-Site: the Referer's host is the Host).
    assert await widths_on(browser, base + "/cameras/demo") == [320]
    assert await widths_on(browser, base.replace("127.0.0.1", LAN_HOST) + "/cameras/demo") == [320]
    assert await widths_on(browser, base + "/") == [320]
    assert (await refusals(proxy))["hotlink"] == 0

    page = await browser.new_page()
    try:
        await page.goto(f"{listed}/?proxy={base}", wait_until="domcontentloaded")
        await page.wait_for_function("document.images[0].naturalWidth > 0", timeout=10_000)
        assert await page.evaluate("document.images[0].naturalWidth") == 320  # the camera's picture
        framed = page.frames[1]
        await framed.wait_for_function("document.images.length && document.images[0].naturalWidth > 0")
        assert await framed.evaluate("document.images[0].naturalWidth") == 320  # the framed camera page plays

        # Another site: its <img> gets the 403 picture, its frame Chromium's error page.
        def blocked(message) -> bool:
            return "frame-ancestors" in message.text and "blocked" in message.text

        async with page.expect_console_message(blocked, timeout=10_000):
            await page.goto(f"{other}/?proxy={base}", wait_until="domcontentloaded")
        await page.wait_for_function("document.images[0].naturalWidth > 0", timeout=10_000)
        assert await page.evaluate("document.images[0].naturalWidth") == 640  # the 403 picture
        framed = page.frames[1]
        assert framed.url.startswith("chrome-error://") and "stream.mjpg" not in await framed.content()
    finally:
        await page.close()
    assert (await refusals(proxy))["hotlink"] == 1  # the other site's <img>
