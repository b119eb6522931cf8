"""Operator pages kept private (issue 15, item 2): ``/status``, ``/api/...`` and ``/metrics`` only
for the operator networks or the operator token, and signed cameras on the index only when so
configured."""

from __future__ import annotations

import base64
import html
import ipaddress
import logging
import re

import aiohttp
import pytest
from multidict import CIMultiDictProxy
from prometheus_client.parser import text_string_to_metric_families

from mjpeg_proxy.config import Config, ConfigError, ServerConfig
from mjpeg_proxy.config.loader import load_config
from mjpeg_proxy.web.access import INDEX_LINK_S, index_link_expiry
from mjpeg_proxy.web.app import apply_config
from mjpeg_proxy.web.appkeys import CONFIG
from mjpeg_proxy.web.operators import warn_if_open
from mjpeg_proxy.web.pages import TILE_WIDTH
from tests.client_headers import BROWSER_PAGE, TOOL
from tests.helpers import push_camera, real_frames, write

JPEG = real_frames()[0]
TOKEN = "operator-0123456789abcdef"
KEY = b"k3y-0123456789abcdef"
OPERATOR_PATHS = ["/status", "/api/cameras", "/api/cameras/cam", "/api/cameras/nope", "/metrics"]
PUBLIC_PATHS = ["/", "/healthz", "/cameras/cam", "/cameras/cam/snapshot.jpg"]
OUTSIDER = {"X-Forwarded-For": "203.0.113.9"}  # from 127.0.0.1, a trusted proxy: the client is 203.0.113.9
OFFICE = ipaddress.ip_network("10.0.0.0/8")


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, CIMultiDictProxy[str], bytes]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers or {}) as answer:
        return answer.status, answer.headers, await answer.read()


async def started(start_proxy, *cameras, **server_options):
    proxy = await start_proxy(push_camera("cam"), *cameras, signing_keys=(KEY,), **server_options)
    for camera_id in proxy.pushed:
        await proxy.publish(camera_id, JPEG)
    return proxy


async def refusals(proxy, headers: dict[str, str]) -> float:
    status, _, body = await fetch(proxy.url("/metrics"), headers)
    assert status == 200
    (family,) = (f for f in text_string_to_metric_families(body.decode()) if f.name == "mjpeg_proxy_refused_requests")
    return next(s.value for s in family.samples if s.labels == {"reason": "operator_only"})


async def test_outside_the_operator_networks_is_refused_with_403_and_counted(start_proxy):
    proxy = await started(start_proxy, operator_networks=(OFFICE,))
    assert await refusals(proxy, {"X-Forwarded-For": "10.1.2.3"}) == 0  # listed from the first scrape
    for path in OPERATOR_PATHS:
        status, headers, body = await fetch(proxy.url(path), {**OUTSIDER, **TOOL})
        assert status == 403, path
        assert "WWW-Authenticate" not in headers  # no token to offer: a login prompt would be no use
        assert b"cameras" not in body and b"cam" not in body.replace(b"operators", b""), body  # nothing inside
        status, _, _ = await fetch(proxy.url(path), {"X-Forwarded-For": "10.1.2.3"})
        assert status == (404 if path.endswith("nope") else 200), path
    assert await refusals(proxy, {"X-Forwarded-For": "10.1.2.3"}) == len(OPERATOR_PATHS)
    for path in PUBLIC_PATHS:
        assert (await fetch(proxy.url(path), OUTSIDER))[0] == 200, path  # the public side stays open


async def test_an_address_in_the_operator_networks_is_admitted_without_a_token(start_proxy):
    proxy = await started(start_proxy, operator_networks=(ipaddress.ip_network("127.0.0.1/32"),), operator_token=TOKEN)
    status, _, body = await fetch(proxy.url("/api/cameras"))  # straight from 127.0.0.1
    assert status == 200 and b'"cam"' in body
    assert (await fetch(proxy.url("/api/cameras"), OUTSIDER))[0] == 401  # someone behind the trusted proxy


@pytest.mark.parametrize(
    "headers",
    [{}, bearer("wrong-0123456789abcdef"), basic("admin", "wrong"), basic("admin", ""), {"Authorization": "Basic %%"}],
    ids=["none", "wrong bearer", "wrong basic", "empty basic", "malformed basic"],
)
async def test_without_the_right_token_401_offers_both_challenges(start_proxy, headers):
    proxy = await started(start_proxy, operator_token=TOKEN)
    for path in OPERATOR_PATHS:
        async with aiohttp.ClientSession() as session, session.get(proxy.url(path), headers=headers) as answer:
            assert answer.status == 401, path
            assert answer.headers.getall("WWW-Authenticate") == [
                'Bearer realm="mjpeg-proxy"',
                'Basic realm="mjpeg-proxy operator pages", charset="UTF-8"',
            ]
            assert (await answer.json())["message"].startswith("this page is for the proxy's operators")


async def test_the_token_as_bearer_or_as_a_basic_password_opens_the_operator_pages(start_proxy):
    proxy = await started(start_proxy, operator_token=TOKEN)
    for headers in (bearer(), {"Authorization": f"bearer {TOKEN}"}, basic("anyone", TOKEN), basic("", TOKEN)):
        status, _, body = await fetch(proxy.url("/api/cameras/cam"), headers)
        assert status == 200 and b'"state"' in body, headers
        assert (await fetch(proxy.url("/status"), headers))[0] == 200
    await fetch(proxy.url("/status"))  # refused
    assert await refusals(proxy, bearer()) == 1  # Prometheus scrapes with the token


async def test_a_browser_gets_the_error_page_with_its_login_prompt(start_proxy):
    proxy = await started(start_proxy, operator_token=TOKEN)
    async with aiohttp.ClientSession() as session, session.get(proxy.url("/status"), headers=BROWSER_PAGE) as answer:
        page = await answer.text()
        assert answer.status == 401 and answer.content_type == "text/html"
        assert len(answer.headers.getall("WWW-Authenticate")) == 2  # the Basic one opens the prompt
        assert "for the proxy&#39;s operators" in page and "cam" not in page.replace("camera", "")


async def test_cors_preflight_and_the_public_side_need_no_credentials(start_proxy):
    proxy = await started(start_proxy, operator_token=TOKEN, operator_networks=(OFFICE,))
    preflight = {"Origin": "https://shop.example", "Access-Control-Request-Method": "GET"}
    async with aiohttp.ClientSession() as session:
        async with session.options(proxy.url("/api/cameras"), headers=preflight) as answer:
            assert answer.status == 204 and answer.headers["Access-Control-Allow-Origin"] == "*"
        async with session.head(proxy.url("/cameras/cam/stream.mjpg"), headers=OUTSIDER) as answer:
            assert answer.status == 200
    for path in PUBLIC_PATHS:
        assert (await fetch(proxy.url(path), OUTSIDER))[0] == 200, path


async def test_a_reload_that_sets_the_token_closes_the_pages_at_once(start_proxy, caplog):
    proxy = await started(start_proxy)
    assert (await fetch(proxy.url("/status"), OUTSIDER))[0] == 200  # open to all, as before
    cameras = proxy.server.app[CONFIG].cameras
    with caplog.at_level(logging.INFO, logger="mjpeg_proxy.web.app"):
        await apply_config(proxy.server.app, Config(ServerConfig(operator_token=TOKEN, signing_keys=(KEY,)), cameras))
    assert (await fetch(proxy.url("/status"), OUTSIDER))[0] == 401
    assert (await fetch(proxy.url("/status"), {**OUTSIDER, **bearer()}))[0] == 200
    assert "operator_token: changed" in caplog.text and TOKEN not in caplog.text  # the secret stays out of the log


def test_bad_operator_settings_are_refused_with_the_key_named(tmp_path):
    camera = '[[cameras]]\nid = "yard"\nsource = "demo"\n'
    cases = [
        ('operator_token_env = "T"', {"T": "short"}, "operator_token_env.*at least 16"),
        ('operator_token_env = "T"', {}, "operator_token_env.*T is not set"),
        ('operator_networks = ["10.0.0.1/8"]', {}, "operator_networks.*host bits set"),
        ('operator_networks = "10.0.0.0/8"', {}, "operator_networks.*must be a list"),
        ('index_signed_cameras = "operators"', {}, "index_signed_cameras.*needs operator_networks"),
        ('index_signed_cameras = "all"', {}, "index_signed_cameras.*one of 'hidden', 'operators', 'everyone'"),
    ]
    for setting, environ, message in cases:
        with pytest.raises(ConfigError, match=message):
            load_config(write(tmp_path, f"[server]\n{setting}\n{camera}"), environ)
    text = '[server]\noperator_token_env = "T"\noperator_networks = ["10.0.0.0/8"]\n'
    text += 'index_signed_cameras = "operators"\n'
    server = load_config(write(tmp_path, text + camera), {"T": TOKEN}).server
    assert server.operator_token == TOKEN and server.operator_networks == (OFFICE,) and TOKEN not in repr(server)


def test_the_log_warns_once_at_start_when_a_reachable_proxy_has_open_operator_pages(caplog):
    with caplog.at_level(logging.WARNING):
        for server in (ServerConfig(), ServerConfig(host="::1"), ServerConfig(host="0.0.0.0", operator_token=TOKEN)):
            warn_if_open(server)
        assert caplog.records == []
        warn_if_open(ServerConfig(host="0.0.0.0"))
    (record,) = caplog.records
    assert "operator_networks" in record.message and "operator_token_env" in record.message


def tile_links(index: str, camera_id: str) -> list[str]:
    """Every link of the index page that leads to ``camera_id``, unescaped."""
    return [html.unescape(link) for link in re.findall(rf'(?:src|href)="(cameras/{camera_id}[^"]*)"', index)]


@pytest.mark.parametrize(
    "mode, operator_sees, stranger_sees",
    [("hidden", False, False), ("operators", True, False), ("everyone", True, True)],
)
async def test_the_index_shows_signed_cameras_as_configured_with_working_links(
    start_proxy, mode, operator_sees, stranger_sees
):
    proxy = await started(
        start_proxy, push_camera("yard", access="signed"), operator_token=TOKEN, index_signed_cameras=mode
    )
    for headers, sees in ((bearer(), operator_sees), (OUTSIDER, stranger_sees)):
        status, _, body = await fetch(proxy.url("/"), headers)
        links = tile_links(body.decode(), "yard")
        assert status == 200 and bool(links) == sees, (mode, headers)
        assert tile_links(body.decode(), "cam")  # the public camera always
        for link in links:  # each works for whoever has it
            assert "expires=" in link and "sig=" in link, link
            if "stream.mjpg?" in link:
                async with aiohttp.ClientSession() as session, session.head(proxy.url(f"/{link}")) as answer:
                    assert answer.status == 200 and answer.content_type == "multipart/x-mixed-replace", link
                continue
            status, response_headers, body = await fetch(proxy.url(f"/{link}"), OUTSIDER)
            assert status == 200, link
            if "snapshot.jpg?" in link:
                assert response_headers["Content-Type"] == "image/jpeg" and body == JPEG
        if sees:
            assert any("snapshot.jpg?" in link for link in links) and any("stream.mjpg?" in link for link in links)


def test_the_index_links_stay_the_same_for_an_hour_and_hold_at_least_an_hour():
    start = 1_767_225_600  # a whole hour
    assert index_link_expiry(start) == index_link_expiry(start + INDEX_LINK_S - 1) == start + 2 * INDEX_LINK_S
    for now in (start, start + 1, start + INDEX_LINK_S - 1):
        assert INDEX_LINK_S < index_link_expiry(now) - now <= 2 * INDEX_LINK_S


async def test_chromium_refreshes_signed_snapshot_tiles_on_the_index(start_proxy, browser):
    others = [push_camera(f"cam{n}") for n in range(4)]  # six cameras: the index shows snapshots
    proxy = await started(start_proxy, push_camera("yard", access="signed"), *others, index_signed_cameras="everyone")
    page = await browser.new_page()
    signed_snapshots = []
    page.on(
        "response",
        lambda response: (
            signed_snapshots.append(response.status) if "/cameras/yard/snapshot.jpg?" in response.url else None
        ),
    )
    try:
        await page.goto(proxy.url("/"))
        await page.wait_for_function(
            "[...document.querySelectorAll('img[data-refresh]')]"
            ".every(img => img.src.startsWith('blob:') && img.complete && img.naturalWidth > 0)",
            timeout=10_000,
        )
        widths = await page.evaluate("[...document.images].map(img => img.naturalWidth)")
        # Every tile a camera frame after a refresh, at the tiles' width, the signed one too.
        assert widths == [TILE_WIDTH] * len(proxy.pushed)
        assert len(signed_snapshots) > 1 and set(signed_snapshots) == {200}
    finally:
        await page.close()


async def test_answers_that_depend_on_who_asks_are_kept_out_of_shared_caches(start_proxy):
    # A cache in front of the proxy (Varnish keeps an answer without Cache-Control for two
    # minutes) must not hand an operator's /status, or the index with its signed links, to
    # the next visitor: the office is admitted by its address, so no Authorization header
    # keeps the cache off.
    proxy = await started(
        start_proxy, push_camera("yard", access="signed"), operator_networks=(OFFICE,), index_signed_cameras="operators"
    )
    for path in ("/", "/status", "/api/cameras", "/metrics"):
        status, headers, body = await fetch(proxy.url(path), {"X-Forwarded-For": "10.1.2.3"})
        assert status == 200 and "no-store" in headers.get("Cache-Control", ""), path
    assert b"yard" in (await fetch(proxy.url("/"), {"X-Forwarded-For": "10.1.2.3"}))[2]


async def test_a_relay_that_is_no_trusted_proxy_lends_nobody_its_operator_network(start_proxy, caplog):
    # nginx on this machine with trusted_proxies = []: every request comes from 127.0.0.1,
    # which operator_networks lists for the owner's own curl; nginx says who the client is.
    loopback = ipaddress.ip_network("127.0.0.1/32")
    proxy = await started(start_proxy, operator_networks=(loopback,), operator_token=TOKEN, trusted_proxies=())
    assert (await fetch(proxy.url("/status")))[0] == 200  # the owner, on this machine
    with caplog.at_level(logging.WARNING, logger="mjpeg_proxy.web.operators"):
        for forwarded in ({"X-Forwarded-For": "203.0.113.9"}, {"X-Forwarded-For": "127.0.0.1"}, {"X-Real-IP": "::1"}):
            assert (await fetch(proxy.url("/status"), forwarded))[0] == 401, forwarded
            assert (await fetch(proxy.url("/status"), {**forwarded, **bearer()}))[0] == 200  # the token still opens
    (warning,) = caplog.records  # once, naming the setting
    assert "127.0.0.1" in warning.message and "trusted_proxies" in warning.message
