"""Signed links (issue 15, item 1): a signed camera opens only with a valid, unexpired link."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import os
import time
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest

from mjpeg_proxy.config import CameraConfig, Config, ConfigError, ServerConfig
from mjpeg_proxy.config.loader import load_config
from mjpeg_proxy.sign_link import main as sign_main
from mjpeg_proxy.web.app import apply_config
from mjpeg_proxy.web.appkeys import CONFIG
from mjpeg_proxy.web.signing import LinkRefused, sign, verify
from tests.helpers import PushConfig, need_binary, push_camera, real_frames, refusals, write
from tests.processes import REPO_ROOT, proxy_process

JPEG = real_frames()[0]
KEY = b"k3y-0123456789abcdef"
OLD_KEY = b"old-0123456789abcdef"
PATH = "/cameras/yard/snapshot.jpg"


def pairs(link: str) -> tuple[str, list[tuple[str, str]]]:
    parts = urlsplit(link)
    return parts.path, parse_qsl(parts.query, keep_blank_values=True)


def test_a_link_signed_with_the_key_opens_until_it_expires():
    path, query = pairs(sign(KEY, PATH, 2_000, {"fps": "2"}))
    verify([KEY], path, query, now=1_999)
    with pytest.raises(LinkRefused, match="expired"):
        verify([KEY], path, query, now=2_001)


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda p, q: (p, [(k, v) for k, v in q if k != "sig"]), "needs a signed link"),
        (lambda p, q: (p, [(k, "A" + v[1:]) if k == "sig" else (k, v) for k, v in q]), "signature is wrong"),
        (lambda p, q: (p, [(k, "3") if k == "fps" else (k, v) for k, v in q]), "signature is wrong"),
        (lambda p, q: ("/cameras/other/snapshot.jpg", q), "signature is wrong"),
        (lambda p, q: (p, [*q, ("width", "320")]), "signature is wrong"),
        (lambda p, q: (p, [*q, ("fps", "2")]), "repeated"),
        (lambda p, q: (p, [(k, "2e3") if k == "expires" else (k, v) for k, v in q]), "malformed"),
    ],
)
def test_a_changed_or_incomplete_link_is_refused_with_its_reason(change, reason):
    path, query = change(*pairs(sign(KEY, PATH, 2_000, {"fps": "2"})))
    with pytest.raises(LinkRefused, match=reason):
        verify([KEY], path, query, now=1_000)


def test_an_older_key_is_accepted_while_listed_and_refused_once_rotated_out():
    path, query = pairs(sign(OLD_KEY, PATH, 2_000))
    verify([KEY, OLD_KEY], path, query, now=1_000)
    with pytest.raises(LinkRefused, match="signature is wrong"):
        verify([KEY], path, query, now=1_000)


def test_a_signed_camera_needs_a_signing_key_and_short_keys_are_refused(tmp_path):
    camera = '[[cameras]]\nid = "yard"\nsource = "demo"\naccess = "signed"\n'
    with pytest.raises(ConfigError, match="needs a signing key"):
        load_config(write(tmp_path, camera), {})
    with pytest.raises(ConfigError, match="at least 16 characters"):
        load_config(write(tmp_path, '[server]\nsigning_key_env = "K"\n' + camera), {"K": "short"})
    config = load_config(
        write(tmp_path, '[server]\nsigning_key_env = "K"\nprevious_signing_keys_env = "P"\n' + camera),
        {"K": KEY.decode(), "P": f"{OLD_KEY.decode()}, "},
    )
    assert config.server.signing_keys == (KEY, OLD_KEY) and KEY.decode() not in repr(config.server)


@pytest.fixture
async def signed_proxy(start_proxy):
    proxy = await start_proxy(
        CameraConfig(id="yard", source=PushConfig(), access="signed"),
        CameraConfig(id="open", source=PushConfig()),
        signing_keys=(KEY, OLD_KEY),
    )
    await proxy.publish("yard", JPEG)
    await proxy.publish("open", JPEG)
    return proxy


async def test_a_signed_camera_opens_with_its_link_and_refuses_the_rest_with_a_reason(signed_proxy):
    proxy = signed_proxy
    expires = int(time.time()) + 60
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url(sign(KEY, PATH, expires))) as answer:
            assert answer.status == 200 and await answer.read() == JPEG
        async with session.get(proxy.url(PATH)) as answer:
            assert answer.status == 403 and (await answer.json())["message"] == "this camera needs a signed link"
        async with session.get(proxy.url(sign(KEY, PATH, int(time.time()) - 1))) as answer:
            assert answer.status == 403 and "expired" in (await answer.json())["message"]
        async with session.get(proxy.url("/cameras/open/snapshot.jpg")) as answer:
            assert answer.status == 200  # public cameras as before
        async with session.get(proxy.url(sign(KEY, "/cameras/yard", expires))) as answer:
            page = await answer.text()
        assert answer.status == 200 and "cameras/yard/stream.mjpg?expires=" in page  # the page's stream is signed
        async with session.get(proxy.url("/")) as answer:
            index = await answer.text()
        assert "cameras/open" in index and "cameras/yard" not in index


async def test_refused_links_are_counted_and_logged_so_a_back_end_signing_wrongly_shows(signed_proxy, caplog):
    wrong_key = b"not-the-key-0123456789"
    caplog.set_level("INFO", logger="mjpeg_proxy.web")
    async with aiohttp.ClientSession() as session:
        for link in (PATH, sign(wrong_key, PATH, int(time.time()) + 60), sign(KEY, PATH, int(time.time()) - 1)):
            async with session.get(signed_proxy.url(link)) as answer:
                assert answer.status == 403
        async with session.get(signed_proxy.url(sign(KEY, PATH, int(time.time()) + 60))) as answer:
            assert answer.status == 200
    assert (await refusals(signed_proxy))["signed_link"] == 3
    assert f"refused GET {PATH} from 127.0.0.1 (signed_link): this camera needs a signed link" in caplog.text


async def test_mjpeg_proxy_sign_prints_a_link_the_proxy_opens(tmp_path, signed_proxy):
    # The file names other secrets too; signing needs the signing key alone in the environment.
    config = write(
        tmp_path,
        '[server]\nsigning_key_env = "K"\noperator_token_env = "OPERATOR_TOKEN"\n'
        '[[cameras]]\nid = "yard"\nsource = "snapshot"\nurl = "http://127.0.0.1:9/snapshot.jpg"\n'
        'username = "viewer"\npassword_env = "YARD_PASSWORD"\naccess = "signed"\n',
    )
    out = io.StringIO()
    assert sign_main(["--config", str(config), "--expires", "60", PATH], out, environ={"K": KEY.decode()}) == 0
    link = out.getvalue().strip()
    assert link.startswith(f"{PATH}?expires=") and "&sig=" in link
    async with aiohttp.ClientSession() as session:
        async with session.get(signed_proxy.url(link)) as answer:
            assert answer.status == 200 and await answer.read() == JPEG


def test_mjpeg_proxy_sign_refuses_an_expiry_the_proxy_would_refuse(tmp_path, capsys):
    # --expires past the year 33658 would make an expiry of 13 digits: a link that never opens.
    config = write(tmp_path, '[server]\nsigning_key_env = "K"\n')
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_status:
        sign_main(["--config", str(config), "--expires", "99999999999999", PATH], out, environ={"K": KEY.decode()})
    assert exit_status.value.code == 2 and out.getvalue() == ""
    assert "expires" in capsys.readouterr().err
    with pytest.raises(ValueError, match="expiry"):
        sign(KEY, PATH, 10**12)


def test_the_readmes_python_snippet_signs_links_the_proxy_accepts():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Signed links") :]
    snippet = section[section.index("```python\n") + len("```python\n") :]
    namespace: dict = {}
    exec(snippet[: snippet.index("```")], namespace)  # noqa: S102 - the README's own example
    path, query = pairs(namespace["signed"](KEY, "/cameras/yard/stream.mjpg", 60, fps="2"))
    verify([KEY], path, query, now=time.time())


async def test_ffmpeg_and_curl_play_a_signed_stream(signed_proxy):
    link = signed_proxy.url(sign(KEY, "/cameras/yard/stream.mjpg", int(time.time()) + 60))
    ffprobe = await asyncio.create_subprocess_exec(
        need_binary("ffprobe"),
        "-v",
        "error",
        "-show_entries",
        "stream=codec_name",
        "-of",
        "csv=p=0",
        link,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(ffprobe.communicate(), 30)
    assert out.decode().strip() == "mjpeg"
    curl = await asyncio.create_subprocess_exec(
        need_binary("curl"),
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        signed_proxy.url("/cameras/yard/snapshot.jpg"),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(curl.communicate(), 30)
    assert out.decode() == "403"


async def test_chromium_shows_the_signed_camera_page_and_its_stream(signed_proxy, browser):
    page = await browser.new_page()
    try:
        await page.goto(signed_proxy.url(sign(KEY, "/cameras/yard", int(time.time()) + 60)))
        await page.wait_for_function("[...document.images].some(img => img.naturalWidth > 0)", timeout=10_000)
        width = await page.evaluate("Math.max(...[...document.images].map(img => img.naturalWidth))")
        assert width == 768  # the camera's frame, not an error picture
        answer = await page.goto(signed_proxy.url("/cameras/yard"))
        assert answer is not None and answer.status == 403
        assert "needs a signed link" in await page.content()
    finally:
        await page.close()


async def test_a_reload_ends_the_streams_a_camera_no_longer_admits(start_proxy, caplog):
    # The owner makes a leaked public camera signed, and drops a leaked key: the streams
    # already playing without a link, or with the dropped key's, end; a valid one plays on.
    yard, gate = push_camera("yard", access="signed"), push_camera("gate")
    proxy = await start_proxy(yard, gate, signing_keys=(KEY, OLD_KEY))
    for camera_id in proxy.pushed:
        await proxy.publish(camera_id, JPEG)
    far = int(time.time()) + 3600
    links = {
        "unsigned": "/cameras/gate/stream.mjpg",
        "old key": sign(OLD_KEY, "/cameras/yard/stream.mjpg", far),
        "kept key": sign(KEY, "/cameras/gate/stream.mjpg", far),
    }
    async with aiohttp.ClientSession() as session:
        answers = {name: await session.get(proxy.url(link)) for name, link in links.items()}
        for answer in answers.values():
            assert answer.status == 200
            await answer.content.readuntil(b"\xff\xd9")  # playing
        running_yard, running_gate = proxy.server.app[CONFIG].cameras
        new = Config(
            ServerConfig(signing_keys=(KEY,)), (running_yard, dataclasses.replace(running_gate, access="signed"))
        )
        with caplog.at_level(logging.INFO, logger="mjpeg_proxy.web.app"):
            await apply_config(proxy.server.app, new)
        # Both end; the unchanged camera's with the close delimiter after its picture (the
        # changed one has no picture of its new source to end with).
        assert (await asyncio.wait_for(answers["old key"].content.read(), 5)).endswith(b"--\r\n")
        await asyncio.wait_for(answers["unsigned"].content.read(), 5)
        assert "2 streams ended" in caplog.text
        await proxy.publish("gate", real_frames()[1])
        await asyncio.wait_for(answers["kept key"].content.readuntil(real_frames()[1][-50:]), 5)  # plays on
        for answer in answers.values():
            answer.close()


async def test_the_start_up_log_tells_how_to_open_a_signed_camera(tmp_path):
    config = write(
        tmp_path,
        '[server]\nsigning_key_env = "K"\n'
        '[[cameras]]\nid = "gate"\nsource = "demo"\naccess = "signed"\n'
        '[[cameras]]\nid = "lobby"\nsource = "demo"\n',
    )
    async with proxy_process(tmp_path, "--config", str(config), env={**os.environ, "K": KEY.decode()}) as proxy:
        log = proxy.stderr()
    # Clicking the plain address of a signed camera would only get a 403.
    assert f"camera gate (demo): signed links only: mjpeg-proxy sign --config {config} /cameras/gate/stream.mjpg" in log
    assert f"camera lobby (demo): {proxy.base}/cameras/lobby/stream.mjpg" in log
