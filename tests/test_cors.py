"""Cross-origin use: pages on other sites read streams, snapshots and the JSON API (CORS,
preflight included), from any origin by default or from the origins ``cors_origins`` lists."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from mjpeg_proxy.config import ConfigError
from mjpeg_proxy.config.loader import parse_config
from tests.helpers import demo_camera, push_camera, real_frames

FRAME = real_frames()[0]
SITE = "https://shop.example"
ELSEWHERE = "https://elsewhere.example"
# Every CORS resource, answering as it does: a stream, a snapshot, the API, and errors of each.
CORS_PATHS = [
    ("/cameras/cam/stream.mjpg", 200),
    ("/cameras/cam/snapshot.jpg", 200),
    ("/api/cameras", 200),
    ("/api/cameras/cam", 200),
    ("/api/cameras/nope", 404),
    ("/cameras/nope/snapshot.jpg", 404),
    ("/cameras/cam/stream.mjpg?fps=abc", 400),
]


async def started(start_proxy, **server_options):
    proxy = await start_proxy(push_camera("cam"), **server_options)
    await proxy.publish("cam", FRAME)
    return proxy


async def answer(method: str, url: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    """Status and headers of one request; a stream is closed once its headers are in."""
    async with aiohttp.ClientSession() as session, session.request(method, url, headers=headers) as response:
        return response.status, dict(response.headers)


def preflight_headers(origin: str, method: str = "GET", asked: str | None = None) -> dict[str, str]:
    headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if asked:
        headers["Access-Control-Request-Headers"] = asked
    return headers


@pytest.mark.parametrize(("path", "status"), CORS_PATHS)
async def test_any_origin_may_read_streams_snapshots_and_the_api(start_proxy, path, status):
    proxy = await started(start_proxy)
    for method in ("GET", "HEAD"):
        got, headers = await answer(method, proxy.url(path), {"Origin": SITE})
        assert got == status, (method, path)
        assert headers["Access-Control-Allow-Origin"] == "*", (method, path)
        assert "Retry-After" in headers["Access-Control-Expose-Headers"]
        assert "Access-Control-Allow-Credentials" not in headers  # no credentials are ever involved
        assert "Vary" not in headers  # the same answer for every origin: caches may share it
    # The same headers without an Origin, so a cache in front never stores an answer without them.
    _, headers = await answer("GET", proxy.url(path), {})
    assert headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("path", [path for path, _ in CORS_PATHS])
async def test_preflight_allows_get_and_head_with_the_headers_asked_for(start_proxy, path):
    proxy = await started(start_proxy)
    status, headers = await answer(
        "OPTIONS", proxy.url(path), preflight_headers(SITE, asked="x-requested-with,cache-control")
    )
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert {m.strip() for m in headers["Access-Control-Allow-Methods"].split(",")} == {"GET", "HEAD"}
    assert headers["Access-Control-Allow-Headers"] == "x-requested-with,cache-control"
    assert int(headers["Access-Control-Max-Age"]) > 0
    assert "Access-Control-Allow-Credentials" not in headers


async def test_options_without_a_preflight_lists_the_methods(start_proxy):
    proxy = await started(start_proxy)
    status, headers = await answer("OPTIONS", proxy.url("/cameras/cam/snapshot.jpg"), {})
    assert status == 204
    assert {m.strip() for m in headers["Allow"].split(",")} == {"GET", "HEAD", "OPTIONS"}


async def test_pages_and_monitoring_are_not_opened_to_other_origins(start_proxy):
    proxy = await started(start_proxy)
    for path in ("/", "/cameras/cam", "/status", "/metrics", "/healthz"):
        _, headers = await answer("GET", proxy.url(path), {"Origin": SITE})
        assert "Access-Control-Allow-Origin" not in headers, path


@pytest.mark.parametrize(("path", "status"), CORS_PATHS)
async def test_a_restricted_list_allows_only_its_origins_and_varies_on_origin(start_proxy, path, status):
    proxy = await started(start_proxy, cors_origins=(SITE, "http://127.0.0.1:8000"))
    got, headers = await answer("GET", proxy.url(path), {"Origin": SITE})
    assert (got, headers["Access-Control-Allow-Origin"], headers["Vary"]) == (status, SITE, "Origin")

    for origin in (ELSEWHERE, "https://shop.example.evil", "null"):
        got, headers = await answer("GET", proxy.url(path), {"Origin": origin})
        assert got == status  # served as to any same-origin client, but not readable by that page
        assert "Access-Control-Allow-Origin" not in headers, origin
        assert headers["Vary"] == "Origin"
    _, headers = await answer("GET", proxy.url(path), {})
    assert "Access-Control-Allow-Origin" not in headers and headers["Vary"] == "Origin"

    status, headers = await answer("OPTIONS", proxy.url(path), preflight_headers("http://127.0.0.1:8000"))
    assert (status, headers["Access-Control-Allow-Origin"]) == (204, "http://127.0.0.1:8000")
    status, headers = await answer("OPTIONS", proxy.url(path), preflight_headers(ELSEWHERE))
    assert status == 403 and "Access-Control-Allow-Origin" not in headers


async def test_an_empty_list_allows_no_other_origin(start_proxy):
    proxy = await started(start_proxy, cors_origins=())
    _, headers = await answer("GET", proxy.url("/api/cameras"), {"Origin": SITE})
    assert "Access-Control-Allow-Origin" not in headers
    status, _ = await answer("OPTIONS", proxy.url("/api/cameras"), preflight_headers(SITE))
    assert status == 403


def origins(value: object) -> tuple[str, ...]:
    data = {"server": {"cors_origins": value}, "cameras": [{"id": "demo", "source": "demo"}]}
    return parse_config(data, "proxy.toml", {}).server.cors_origins


def test_cors_origins_default_to_any_and_are_written_as_browsers_send_them():
    assert parse_config({"cameras": [{"id": "d", "source": "demo"}]}, "p.toml", {}).server.cors_origins == ("*",)
    assert origins(["*"]) == ("*",)
    assert origins([]) == ()
    # Browsers send a lowercase host in punycode, and no default port.
    assert origins(["https://Shop.Example/", "https://bücher.example:443", "http://[::1]:8080", "http://a.b:80"]) == (
        "https://shop.example",
        "https://xn--bcher-kva.example",
        "http://[::1]:8080",
        "http://a.b",
    )


@pytest.mark.parametrize(
    "value",
    [
        "*",
        ["https://shop.example/page"],
        ["shop.example"],
        ["ftp://shop.example"],
        ["null"],
        ["https://user:pw@shop.example"],
        ["https://shop.example?x=1"],
        ["http://exa mple.com"],
        [1],
        ["*", SITE],
    ],
)
def test_bad_cors_origins_are_refused_naming_the_field(value):
    with pytest.raises(ConfigError) as error:
        origins(value)
    message = str(error.value)
    assert message.startswith("proxy.toml: [server]: field 'cors_origins': ") and "\n" not in message
    assert "unknown key" not in message
    assert "pw" not in message  # a password written by mistake is not repeated


# --- a real browser on another origin ------------------------------------------------------

READ_ACROSS_ORIGINS_JS = """async (proxy) => {
  // A custom header makes this fetch() preflighted.
  const api = await (await fetch(proxy + "/api/cameras", {headers: {"X-Requested-With": "page"}})).json();
  const snapshot = await (await fetch(proxy + "/cameras/demo/snapshot.jpg")).blob();
  return {ids: api.cameras.map(c => c.id), type: snapshot.type, bytes: snapshot.size};
}"""
LOAD_IMAGE_JS = """(url) => {
  const img = document.createElement("img");
  img.crossOrigin = "anonymous";
  img.onerror = () => { img.dataset.failed = "yes"; };
  img.src = url;
  document.body.append(img);
}"""
# Pixels of every <img> drawn into a canvas; getImageData throws on a tainted canvas.
READ_PIXELS_JS = """() => [...document.images].map(img => {
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(img, 0, 0);
  const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
  return data.some((value, i) => i % 4 !== 3 && value > 0);
})"""


async def page_on_another_origin(aiohttp_server, browser):
    """A Chromium page loaded from a site of its own on 127.0.0.1 (another port, so another origin)."""

    async def home(request: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><title>Another site</title><body></body>", content_type="text/html")

    site = web.Application()
    site.router.add_get("/", home)
    server = await aiohttp_server(site)
    page = await browser.new_page()
    await page.goto(str(server.make_url("/")))
    return page, f"http://127.0.0.1:{server.port}"


async def test_a_page_on_another_origin_fetches_the_api_and_draws_snapshot_and_stream_into_a_canvas(
    start_proxy,
    aiohttp_server,
    browser,
):
    proxy = await start_proxy(demo_camera("demo"))
    page, _ = await page_on_another_origin(aiohttp_server, browser)
    base = proxy.url("").rstrip("/")

    read = await page.evaluate(READ_ACROSS_ORIGINS_JS, base)
    assert read["ids"] == ["demo"]
    assert read["type"] == "image/jpeg" and read["bytes"] > 1000

    for path in ("/cameras/demo/snapshot.jpg", "/cameras/demo/stream.mjpg"):
        await page.evaluate(LOAD_IMAGE_JS, base + path)
    await page.wait_for_function(
        "[...document.images].every(img => img.dataset.failed || img.naturalWidth === 320)", timeout=10000
    )
    assert await page.evaluate("[...document.images].map(img => img.dataset.failed || 'loaded')") == ["loaded"] * 2
    assert await page.evaluate(READ_PIXELS_JS) == [True, True]


async def test_a_page_on_an_origin_not_listed_cannot_read_the_api(start_proxy, aiohttp_server, browser):
    page, page_origin = await page_on_another_origin(aiohttp_server, browser)
    proxy = await start_proxy(demo_camera("demo"), cors_origins=(SITE,))
    base = proxy.url("").rstrip("/")
    blocked = "fetch(proxy + '/api/cameras').then(() => 'read', error => error.name)"
    assert await page.evaluate(f"(proxy) => {blocked}", base) == "TypeError"

    listed = await start_proxy(demo_camera("demo"), cors_origins=(page_origin,))
    assert (await page.evaluate(READ_ACROSS_ORIGINS_JS, listed.url("").rstrip("/")))["ids"] == ["demo"]
