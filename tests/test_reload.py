"""SIGHUP reloads the configuration of a real ``run.py`` process (``systemctl reload``,
logrotate's ``postrotate``): cameras added, removed and changed, viewers of unchanged and
changed cameras kept, a broken file logged and the running configuration kept."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from pathlib import Path

import aiohttp
import pytest

from mjpeg_proxy.config import CameraConfig, Config, ServerConfig
from mjpeg_proxy.sources.demo import DemoConfig
from mjpeg_proxy.sources.een_config import EenCameraConfig, EenConfig
from mjpeg_proxy.web.app import apply_config
from tests.fake_een import FakeEen
from tests.helpers import MjpegViewer, eventually, push_camera, real_frames
from tests.processes import proxy_process

PETS = real_frames()
FRONT = "1006073b"


def cameras_toml(*cameras: tuple[str, float], server: str = "") -> str:
    """A configuration of demo cameras given as (id, fps), with an optional [server] table."""
    tables = [f'[[cameras]]\nid = "{camera_id}"\nsource = "demo"\nfps = {fps}\n' for camera_id, fps in cameras]
    return server + "\n".join(tables)


async def camera_ids(base: str) -> list[str]:
    async with aiohttp.ClientSession() as session, session.get(f"{base}/api/cameras") as response:
        assert response.status == 200
        return [camera["id"] for camera in (await response.json())["cameras"]]


async def until_ids(base: str, expected: list[str]) -> None:
    """Wait (5 s at most) until /api/cameras lists ``expected``, in that order."""
    async with asyncio.timeout(5):
        while await camera_ids(base) != expected:
            await asyncio.sleep(0.05)


async def test_sighup_applies_added_removed_and_changed_cameras_and_keeps_viewers(tmp_path: Path):
    config = tmp_path / "cameras.toml"
    config.write_text(cameras_toml(("a", 5), ("b", 5), ("c", 5)), encoding="utf-8")
    async with proxy_process(tmp_path, "--config", str(config)) as proxy:
        async with (
            MjpegViewer(f"{proxy.base}/cameras/a/stream.mjpg") as kept,
            MjpegViewer(f"{proxy.base}/cameras/b/stream.mjpg") as changed,
            aiohttp.ClientSession() as session,
            session.get(f"{proxy.base}/cameras/c/stream.mjpg") as removed,
        ):
            await kept.new_parts(2)
            await changed.new_parts(2)
            config.write_text(cameras_toml(("a", 5), ("b", 2), ("d", 5)), encoding="utf-8")
            proxy.process.send_signal(signal.SIGHUP)
            await until_ids(proxy.base, ["a", "b", "d"])

            # The removed camera's stream ends cleanly, with the close delimiter.
            body = await asyncio.wait_for(removed.content.read(), 5)
            assert body.rstrip().endswith(b"--"), body[-80:]
            # The same connections go on with new frames: the unchanged camera's and the
            # changed camera's, now from its new source.
            await kept.new_parts(3)
            await changed.new_parts(2)
        await eventually(lambda: "configuration reloaded" in proxy.stderr())
        log = proxy.stderr()
        assert "added ['d'], removed ['c'], changed ['b']; 1 unchanged; [server] unchanged" in log, log
        async with MjpegViewer(f"{proxy.base}/cameras/d/stream.mjpg") as added:
            await added.new_parts(2)
        assert await proxy.stop() < 5 and proxy.process.returncode == 0


async def test_a_broken_file_is_logged_and_the_running_configuration_kept(tmp_path: Path):
    config = tmp_path / "cameras.toml"
    config.write_text(cameras_toml(("a", 5), ("b", 5)), encoding="utf-8")
    async with proxy_process(tmp_path, "--config", str(config)) as proxy:
        async with MjpegViewer(f"{proxy.base}/cameras/a/stream.mjpg") as viewer:
            await viewer.new_parts(1)
            for broken in ("[[cameras]\nid = ", cameras_toml(("a", 5), ("b", 500))):
                config.write_text(broken, encoding="utf-8")
                before = proxy.stderr().count("configuration not reloaded")
                proxy.process.send_signal(signal.SIGHUP)
                await eventually(lambda before=before: proxy.stderr().count("configuration not reloaded") > before)
                assert await camera_ids(proxy.base) == ["a", "b"]
                await viewer.new_parts(1)
        assert "field 'fps'" in proxy.stderr()  # the one-line reason, as at start-up
        assert proxy.process.returncode is None


async def test_settings_that_need_a_restart_say_so_and_the_others_apply(tmp_path: Path):
    config = tmp_path / "cameras.toml"
    config.write_text(cameras_toml(("a", 5)), encoding="utf-8")
    async with proxy_process(tmp_path, "--config", str(config)) as proxy:
        server = '[server]\nrequest_timeout = 60\nmax_viewers_per_camera = 1\ntrusted_proxies = ["10.0.0.0/8"]\n'
        config.write_text(cameras_toml(("a", 5), server=server), encoding="utf-8")
        proxy.process.send_signal(signal.SIGHUP)
        await eventually(lambda: "needs a restart" in proxy.stderr())
        assert "request_timeout: 15.0 -> 60.0" in proxy.stderr()
        assert "[server] max_viewers_per_camera: 1000 -> 1" in proxy.stderr()  # the one line says it
        assert 'trusted_proxies: ["127.0.0.0/8", "::1/128"] -> ["10.0.0.0/8"]' in proxy.stderr()  # as a file writes it
        async with MjpegViewer(f"{proxy.base}/cameras/a/stream.mjpg") as viewer:
            await viewer.new_parts(1)
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{proxy.base}/cameras/a/stream.mjpg") as second,
            ):
                assert second.status == 503  # max_viewers_per_camera = 1 is in force


async def test_sighup_without_a_configuration_file_keeps_serving(tmp_path: Path):
    async with proxy_process(tmp_path) as proxy:
        proxy.process.send_signal(signal.SIGHUP)
        await eventually(lambda: "nothing to reload" in proxy.stderr())
        assert await camera_ids(proxy.base) == ["demo"]
        assert await proxy.stop() < 5 and proxy.process.returncode == 0


async def test_a_reload_adds_een_cameras_and_a_changed_account_logs_in_anew(aiohttp_server, start_proxy):
    # In-process: the account is in the file from the start, its first camera comes later.
    fake = FakeEen()
    fake.add_camera(FRONT, PETS, interval_s=0.1)
    server = await aiohttp_server(fake.app())
    een = EenConfig(fake.username, "wrong password", base_url=str(server.make_url("/")).rstrip("/"))
    demo = CameraConfig(id="demo", source=DemoConfig(), fps=5)
    proxy = await start_proxy(demo)
    app = proxy.server.app
    demo = proxy.camera("demo").config  # as started (always on)
    front = CameraConfig(id="front", source=EenCameraConfig(esn=FRONT, account=een), always_on=True)

    await apply_config(app, Config(ServerConfig(), (demo, front)))
    await eventually(lambda: proxy.camera("front").state == "auth_failed")
    assert fake.logins == 0

    async with MjpegViewer(proxy.url("/cameras/front/stream.mjpg")) as viewer:
        fixed = dataclasses.replace(een, password=fake.password)  # the password put right: a new login
        fixed_front = dataclasses.replace(front, source=EenCameraConfig(esn=FRONT, account=fixed))
        await apply_config(app, Config(ServerConfig(), (demo, fixed_front)))
        # The same connection, now live (an offline picture may come first, from before).
        async with asyncio.timeout(10):
            while (await viewer.next_new_part()).jpeg not in PETS:
                pass
    assert fake.logins == 1
    assert proxy.camera("demo").state != "idle"  # untouched by the account's change


async def test_a_reload_that_turns_always_on_off_lets_the_camera_go_idle(start_proxy):
    cam = push_camera("cam", always_on=True, linger_seconds=0.1)
    proxy = await start_proxy(cam, on_demand=True)
    await proxy.publish("cam", PETS[0])
    await apply_config(proxy.server.app, Config(ServerConfig(), (dataclasses.replace(cam, always_on=False),)))
    # The picture of the source that was replaced is no one's to see any more.
    assert proxy.camera("cam").hub.latest is None
    await eventually(lambda: proxy.camera("cam").state == "idle")
    async with aiohttp.ClientSession() as session, session.get(proxy.url("/api/cameras/cam")) as response:
        status = await response.json()
    assert (status["state"], status["fetching"]) == ("idle", False)


async def test_a_changed_camera_shows_no_picture_of_its_old_source(start_proxy):
    cam = push_camera("cam")
    proxy = await start_proxy(cam)
    await proxy.publish("cam", PETS[0])
    async with MjpegViewer(proxy.url("/cameras/cam/stream.mjpg")) as viewer:
        assert (await viewer.next_new_part()).jpeg == PETS[0]
        await apply_config(proxy.server.app, Config(ServerConfig(), (dataclasses.replace(cam, name="Renamed"),)))
        assert proxy.camera("cam").hub.latest is None
        async with aiohttp.ClientSession() as session:

            async def snapshot() -> bytes:
                async with session.get(proxy.url("/cameras/cam/snapshot.jpg")) as answer:
                    assert answer.status == 200
                    return await answer.read()

            asking = asyncio.create_task(snapshot())
            await eventually(lambda: proxy.camera("cam").state == "starting")  # the snapshot waits
            await proxy.publish("cam", PETS[1])  # the new source's first frame
            assert await asking == PETS[1]
        assert (await viewer.next_new_part()).jpeg == PETS[1]  # the same connection goes on


@pytest.mark.parametrize("after_s", [0.07, 0.25])
async def test_a_sighup_while_the_proxy_starts_does_not_kill_it(tmp_path: Path, after_s: float):
    async with proxy_process(tmp_path, serving=False) as proxy:
        await asyncio.sleep(after_s)  # into the start-up (imports take a tenth of a second or more)
        proxy.process.send_signal(signal.SIGHUP)
        await proxy.until_serving()  # fails if the SIGHUP killed the proxy
        assert await proxy.stop() < 5 and proxy.process.returncode == 0
