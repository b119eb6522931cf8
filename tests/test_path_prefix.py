"""Under a path prefix (the README's nginx recipe serving the proxy at ``/webcam/``), every
link, picture and redirect the proxy writes leads to a page under the prefix, and works."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from html.parser import HTMLParser

import aiohttp
import pytest

from mjpeg_proxy.config import CameraConfig
from mjpeg_proxy.sources.demo import DemoConfig
from tests.client_headers import BROWSER_IMAGE, BROWSER_PAGE
from tests.prefix_proxy import PREFIX, PrefixProxy, resolve

AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent")


class Links(HTMLParser):
    """Every ``href`` and ``src`` of a page, with the tag it is on, and its ``<base href>``
    (what a browser resolves the others against), if any."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []
        self.base: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "base":
            self.base = dict(attrs).get("href")
            return
        self.found += [(tag, value) for name, value in attrs if name in ("href", "src") and value is not None]


class Site:
    """The proxy with ``cameras`` demo cameras, seen through a PrefixProxy."""

    def __init__(self, root: str) -> None:
        self.root = root  # http://127.0.0.1:port/webcam/

    def url(self, path: str) -> str:
        return self.root + path

    @contextlib.asynccontextmanager
    async def get(
        self, url: str, headers: dict[str, str], allow_redirects: bool = False
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(url, headers=headers, skip_auto_headers=AUTO_HEADERS, allow_redirects=allow_redirects) as r,
        ):
            yield r


@pytest.fixture(params=[1, 5], ids=["live-index", "snapshot-index"])
async def site(request, start_proxy, aiohttp_server) -> Site:
    cameras = [
        CameraConfig(id=f"cam{i}", source=DemoConfig(width=160, height=90), fps=2) for i in range(1, request.param + 1)
    ]
    proxy = await start_proxy(*cameras)
    front = await aiohttp_server(PrefixProxy(proxy.url("/")).app())
    return Site(str(front.make_url(PREFIX)))


PAGES = [
    "",
    "status",
    "cameras/cam1",
    "cameras/cam1/stream.mjpg?fps=2",  # in the address bar: a page showing the stream
    "nothing",
    "cameras/nope",
    "cameras/nope/stream.mjpg",
    "cameras/cam1/stream.mjpg?fps=abc",
    "cameras/cam1/snapshot.jpg/more",
    "a/b/c/d/e",
]


@pytest.mark.parametrize("path", PAGES)
async def test_every_link_and_picture_on_a_page_stays_under_the_prefix_and_works(site: Site, path: str):
    page_url = site.url(path)
    async with site.get(page_url, BROWSER_PAGE) as response:
        assert response.content_type == "text/html"
        error_page = response.status >= 400
        parser = Links()
        parser.feed(await response.text())
    assert parser.found, "a page with no link or picture"
    base = resolve(page_url, parser.base) if parser.base is not None else page_url
    for tag, link in parser.found:
        target = resolve(base, link)
        assert target.startswith(site.root), f"{link!r} on {path!r} leads to {target}, out of {PREFIX}"
        if error_page:
            assert (tag, target) == ("a", site.root), "the error page's link leads to all cameras"
        headers = BROWSER_IMAGE if tag == "img" else BROWSER_PAGE
        async with site.get(target, headers) as linked:
            assert linked.status == 200, f"{link!r} on {path!r}: {target} answers {linked.status}"
            if linked.content_type == "multipart/x-mixed-replace":
                await asyncio.wait_for(linked.content.readuntil(b"\r\n\r\n"), 5)  # a part begins


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("cameras/cam1/", "cameras/cam1"),
        ("status/", "status"),
        ("cameras//cam1/", "cameras/cam1"),
        ("cameras/cam1/stream.mjpg/?fps=2", "cameras/cam1/stream.mjpg?fps=2"),
    ],
)
async def test_a_redirect_stays_under_the_prefix(site: Site, path: str, target: str):
    async with site.get(site.url(path), BROWSER_PAGE) as response:
        assert response.status == 308
        assert resolve(site.url(path), response.headers["Location"]) == site.url(target)
    async with site.get(site.url(path), BROWSER_PAGE, allow_redirects=True) as response:
        assert (str(response.url), response.status, response.content_type) == (site.url(target), 200, "text/html")


@pytest.mark.parametrize("path", ["", "status", "cameras/cam1", "cameras/nope"])
async def test_a_prefix_said_in_x_forwarded_prefix_holds_without_the_trailing_slash(start_proxy, aiohttp_server, path):
    # Traefik's StripPrefix (and Caddy's handle_path) serve /webcam as well as /webcam/:
    # relative links cannot tell them apart, the prefix the proxy says can.
    proxy = await start_proxy(CameraConfig(id="cam1", source=DemoConfig(width=160, height=90), fps=2))
    front = await aiohttp_server(PrefixProxy(proxy.url("/"), strip_prefix=True).app())
    root = str(front.make_url(PREFIX))
    page_url = root.rstrip("/") if path == "" else root + path  # the bare prefix: /webcam
    async with aiohttp.ClientSession() as session, session.get(page_url, headers=BROWSER_PAGE) as response:
        parser = Links()
        parser.feed(await response.text())
    assert parser.base == PREFIX
    for _, link in parser.found:
        assert resolve(resolve(page_url, parser.base), link).startswith(root), link


async def test_x_forwarded_prefix_from_an_untrusted_peer_is_ignored(start_proxy):
    proxy = await start_proxy(CameraConfig(id="cam1", source=DemoConfig(), fps=2), trusted_proxies=())
    headers = {**BROWSER_PAGE, "X-Forwarded-Prefix": "/elsewhere"}
    async with aiohttp.ClientSession() as session, session.get(proxy.url("/status"), headers=headers) as response:
        parser = Links()
        parser.feed(await response.text())
    assert parser.base == "./"


@pytest.mark.parametrize(
    "prefix",
    ["/%2e%2e", "/a/.%2e/%2E.", "/a/%2e", "/a%2f%2fevil", "//evil", "/a//b", "/a b", '/a"b', "/a/..", "javascript:x"],
)
async def test_a_prefix_that_would_lead_out_of_the_site_is_not_used(start_proxy, prefix):
    proxy = await start_proxy(CameraConfig(id="cam1", source=DemoConfig(), fps=2))
    headers = {**BROWSER_PAGE, "X-Forwarded-Prefix": prefix}
    async with aiohttp.ClientSession() as session, session.get(proxy.url("/status"), headers=headers) as response:
        parser = Links()
        parser.feed(await response.text())
    assert parser.base == "./"
