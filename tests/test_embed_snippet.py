"""The camera page offers the ``<img>`` snippet to copy (issue 15, item 5): an absolute
address made from the page's own (a signed one for a signed camera, with its expiry), the
name escaped, the box out of sight of a kiosk screen, and the picture needing no script."""

from __future__ import annotations

import time

import aiohttp

from mjpeg_proxy.config import CameraConfig
from mjpeg_proxy.pictures.drawing import utc_text
from mjpeg_proxy.web.signing import sign
from tests.helpers import PushConfig, demo_camera, push_camera, real_frames
from tests.prefix_proxy import PREFIX, PrefixProxy

JPEG = real_frames()[0]
KEY = b"k3y-0123456789abcdef"
NAME = 'Gate <"&> yard'
ESCAPED = "Gate &lt;&quot;&amp;&gt; yard"
"""``NAME`` in the snippet: escaped for an HTML attribute."""
SNIPPET = "document.querySelector('.embed textarea').value"
# The snippet pasted into a page, as that page's browser reads it.
PASTED = """(html) => {
  const template = document.createElement("template");
  template.innerHTML = html;
  const img = template.content.firstChild;
  return {tag: img.tagName, src: img.getAttribute("src"), alt: img.alt, nodes: template.content.childNodes.length};
}"""


async def snippet_on(page, url: str) -> str:
    """The snippet the camera page at ``url`` offers, once its picture has painted."""
    await page.goto(url, wait_until="domcontentloaded")
    await page.wait_for_function("document.images[0].naturalWidth > 0", timeout=10_000)
    return await page.evaluate(SNIPPET)


async def test_the_page_holds_the_escaped_name_and_no_snippet_before_the_browser_makes_one(start_proxy):
    proxy = await start_proxy(push_camera("gate", name=NAME))
    async with aiohttp.ClientSession() as session, session.get(proxy.url("/cameras/gate")) as response:
        html = await response.text()
    in_page = "Gate &lt;&#34;&amp;&gt; yard"  # as Jinja escapes it
    assert f'data-name="{in_page}"' in html and f'alt="{in_page}, live"' in html
    assert '<"&>' not in html
    assert '<details class="embed" hidden' in html  # shown by the script that fills it


async def test_chromium_offers_the_absolute_stream_address_with_the_name_escaped(start_proxy, browser):
    proxy = await start_proxy(push_camera("gate", name=NAME))
    await proxy.publish("gate", JPEG)
    context = await browser.new_context()
    await context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = await context.new_page()
    try:
        snippet = await snippet_on(page, proxy.url("/cameras/gate"))
        stream = proxy.url("/cameras/gate/stream.mjpg")
        assert snippet == f'<img src="{stream}" alt="{ESCAPED}, live">'
        assert await page.evaluate(PASTED, snippet) == {"tag": "IMG", "src": stream, "alt": f"{NAME}, live", "nodes": 1}

        # Out of sight until the mouse moves (a kiosk screen stays clean), then copied.
        box = page.locator(".embed")
        assert await box.evaluate("box => getComputedStyle(box).opacity") == "0"
        await page.mouse.move(200, 200)
        await page.wait_for_function("document.querySelector('.embed').classList.contains('awake')")
        await box.locator("summary").click()
        await box.locator("button").click()
        await page.wait_for_function("document.querySelector('.embed button').textContent === 'Copied'")
        assert await page.evaluate("navigator.clipboard.readText()") == snippet
        assert "expires" not in await box.inner_text()
    finally:
        await context.close()


async def test_chromium_offers_the_signed_stream_link_with_its_expiry_and_it_plays(start_proxy, browser):
    proxy = await start_proxy(
        CameraConfig(id="gate", source=PushConfig(), name=NAME, access="signed"), signing_keys=(KEY,)
    )
    await proxy.publish("gate", JPEG)
    expires = int(time.time()) + 600
    page = await browser.new_page()
    try:
        snippet = await snippet_on(page, proxy.url(sign(KEY, "/cameras/gate", expires)))
        pasted = await page.evaluate(PASTED, snippet)
        text = await page.locator(".embed").evaluate("box => box.textContent")
    finally:
        await page.close()
    src = pasted["src"]
    assert src.startswith(proxy.url(f"/cameras/gate/stream.mjpg?expires={expires}&sig="))
    assert "&amp;sig=" in snippet and pasted["alt"] == f"{NAME}, live"
    assert utc_text(expires) in text and "sign a fresh link for each visitor" in text
    async with aiohttp.ClientSession() as session, session.get(src) as response:
        assert response.status == 200 and response.content_type == "multipart/x-mixed-replace"
        assert JPEG[:64] in await response.content.read(len(JPEG) // 2)
        async with session.get(src.split("?")[0]) as unsigned:
            assert unsigned.status == 403


async def test_the_snippet_is_right_behind_a_path_prefix_and_on_the_stream_page(start_proxy, aiohttp_server, browser):
    proxy = await start_proxy(demo_camera("demo"))
    front = await aiohttp_server(PrefixProxy(proxy.url("/")).app())
    site = str(front.make_url(PREFIX))
    page = await browser.new_page()
    try:
        snippet = await snippet_on(page, site + "cameras/demo")
        assert snippet == f'<img src="{site}cameras/demo/stream.mjpg" alt="Demo demo, live">'
        # A browser opening the stream itself gets the same page, with the same snippet.
        snippet = await snippet_on(page, site + "cameras/demo/stream.mjpg?fps=1")
        assert snippet == f'<img src="{site}cameras/demo/stream.mjpg?fps=1" alt="Demo demo, live">'
    finally:
        await page.close()


async def test_without_javascript_the_picture_plays_and_no_embed_box_shows(start_proxy, browser):
    proxy = await start_proxy(demo_camera("demo"))
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    try:
        await page.goto(proxy.url("/cameras/demo"), wait_until="domcontentloaded")
        await page.wait_for_function("document.images[0].naturalWidth === 320", timeout=10_000)
        assert not await page.locator(".embed").is_visible()
    finally:
        await context.close()
