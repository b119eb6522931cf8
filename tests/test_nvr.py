"""Many channels behind one host (an NVR): a wall page opens 16 streams at once; the
device answers 401 when it is busy, as for a wrong password. Short requests to one host
are capped (``max_upstream_requests_per_host``), established streams are not, and a 401
while the same credentials work for another camera on the host is retried in seconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

import pytest

from mjpeg_proxy.camera.timing import CameraTiming
from mjpeg_proxy.config import CameraConfig, ServerConfig
from mjpeg_proxy.sources.mjpeg import MjpegConfig
from mjpeg_proxy.sources.snapshot import SnapshotConfig
from tests.fake_nvr import FakeNvr
from tests.helpers import MjpegViewer, Proxy, eventually, real_frames

PETS = real_frames()
CAP = ServerConfig.max_upstream_requests_per_host
TIMING = CameraTiming(backoff_s=(0.05, 0.2))
"""Channels refused as busy retry within a fraction of a second; refused credentials wait
the real minutes, which tell the two apart."""
AUTH_BACKOFF_STEP_S = TIMING.auth_backoff_s[0]


@pytest.fixture
def start_nvr(aiohttp_server, start_proxy):
    """Serve ``nvr`` and start a proxy with one on-demand camera ``ch<n>`` per channel, timed by ``TIMING``."""

    async def start(nvr: FakeNvr, kind: str, passwords: dict[int, str] | None = None, **camera: object) -> Proxy:
        server_url = str((await aiohttp_server(nvr.app())).make_url("/"))
        cameras = [
            CameraConfig(
                id=f"ch{n}",
                source=(SnapshotConfig if kind == "snapshot" else MjpegConfig)(
                    url=nvr.url(server_url, n, kind),
                    username=nvr.username,
                    password=(passwords or {}).get(n, nvr.password),
                    auth="digest",
                ),
                **camera,
            )
            for n in range(1, nvr.channels + 1)
        ]
        return await start_proxy(*cameras, on_demand=True, timing=TIMING)

    return start


def stream_url(proxy: Proxy, n: int) -> str:
    return proxy.url(f"/cameras/ch{n}/stream.mjpg")


async def open_viewers(stack: contextlib.AsyncExitStack, proxy: Proxy, channels: range) -> list[MjpegViewer]:
    """Open one viewer per channel, all at once, as a wall page does."""
    return await asyncio.gather(*(stack.enter_async_context(MjpegViewer(stream_url(proxy, n))) for n in channels))


async def camera_frame(viewer: MjpegViewer, timeout_s: float = 10.0) -> bytes:
    """The first frame from the camera (not an offline picture) the viewer gets."""
    async with asyncio.timeout(timeout_s):
        while (jpeg := (await viewer.next_new_part()).jpeg) not in PETS:
            pass
    return jpeg


def retry_delays(caplog: pytest.LogCaptureFixture, camera_id: str) -> list[float]:
    """The "retrying in X s" delays the camera logged."""
    return [
        float(match.group(1))
        for record in caplog.records
        if record.name == "mjpeg_proxy.camera.state" and record.getMessage().startswith(f"camera {camera_id}: ")
        for match in [re.search(r"retrying in ([0-9.]+) s", record.getMessage())]
        if match
    ]


@pytest.mark.parametrize("kind", ["mjpeg", "snapshot"])
async def test_16_channels_opened_at_once_all_show_a_picture_without_a_refused_login(start_nvr, kind):
    nvr = FakeNvr(PETS, channels=16, max_startups=CAP)
    proxy = await start_nvr(nvr, kind, fps=2)

    async with contextlib.AsyncExitStack() as stack:
        viewers = await open_viewers(stack, proxy, range(1, 17))
        await asyncio.gather(*(camera_frame(viewer) for viewer in viewers))
        if kind == "mjpeg":
            # Established streams are not capped: all 16 stream at once.
            assert nvr.streams == 16

    assert nvr.max_startups_seen <= CAP
    assert nvr.busy_refusals == 0
    for n in range(1, 17):
        assert proxy.camera(f"ch{n}").stats.errors["auth_failed"] == 0


async def test_a_channel_refused_for_the_connection_limit_retries_in_seconds_and_gets_in(start_nvr, caplog):
    caplog.set_level(logging.INFO)
    nvr = FakeNvr(PETS, channels=16, max_streams=12)
    proxy = await start_nvr(nvr, "mjpeg", linger_seconds=0)

    async with contextlib.AsyncExitStack() as wall:
        viewers = await open_viewers(wall, proxy, range(1, 17))
        await eventually(lambda: sum(proxy.camera(f"ch{n}").state == "live" for n in range(1, 17)) == 12, 15)
        waiting = [n for n in range(1, 17) if proxy.camera(f"ch{n}").state != "live"]
        for n in waiting:
            camera = proxy.camera(f"ch{n}")
            await eventually(lambda camera=camera: camera.stats.errors["unavailable"] >= 1)
            assert camera.state == "offline"
            assert "connection limit" in camera.stats.last_error
            # The normal backoff (seconds), not the one after refused credentials (minutes).
            assert max(retry_delays(caplog, f"ch{n}")) < AUTH_BACKOFF_STEP_S / 2

        # Four viewers of streaming channels leave: their cameras close their upstreams,
        # and the waiting channels get in.
        live = [n for n in range(1, 17) if n not in waiting]
        for n in live[:4]:
            await viewers[n - 1].__aexit__(None, None, None)
        await asyncio.gather(*(camera_frame(viewers[n - 1], timeout_s=30) for n in waiting))

    for n in range(1, 17):
        assert proxy.camera(f"ch{n}").stats.errors["auth_failed"] == 0


@pytest.mark.parametrize("kind", ["mjpeg", "snapshot"])
async def test_a_wrong_password_is_auth_failed_with_the_long_backoff_while_other_channels_work(start_nvr, caplog, kind):
    nvr = FakeNvr(PETS, channels=4)
    proxy = await start_nvr(nvr, kind, passwords={4: "not-the-password"})

    async with contextlib.AsyncExitStack() as stack:
        viewers = await open_viewers(stack, proxy, range(1, 5))
        await asyncio.gather(*(camera_frame(viewer) for viewer in viewers[:3]))
        wrong = proxy.camera("ch4")
        await eventually(lambda: wrong.state == "auth_failed")

    assert "username or password" in wrong.stats.last_error
    assert min(retry_delays(caplog, "ch4")) >= AUTH_BACKOFF_STEP_S / 2


async def test_a_wrong_password_on_every_channel_is_auth_failed_with_the_long_backoff(start_nvr, caplog):
    nvr = FakeNvr(PETS, channels=4, password="the-real-one")
    proxy = await start_nvr(nvr, "mjpeg", passwords=dict.fromkeys(range(1, 5), "an-old-one"))

    async with contextlib.AsyncExitStack() as stack:
        await open_viewers(stack, proxy, range(1, 5))
        await eventually(lambda: all(proxy.camera(f"ch{n}").state == "auth_failed" for n in range(1, 5)))

    for n in range(1, 5):
        assert min(retry_delays(caplog, f"ch{n}")) >= AUTH_BACKOFF_STEP_S / 2


async def test_silent_channels_do_not_keep_the_other_channels_of_their_host_out(start_nvr):
    # Four inputs without a signal answer and then send nothing; they are the camera's
    # watchdog's to judge, and must not hold the host's places while they are silent.
    nvr = FakeNvr(PETS, channels=8, max_startups=16, silent_channels=frozenset({1, 2, 3, 4}))
    proxy = await start_nvr(nvr, "mjpeg", stall_timeout=3.0)
    async with contextlib.AsyncExitStack() as stack:
        silent = await open_viewers(stack, proxy, range(1, 5))
        await eventually(lambda: nvr.max_streams_seen >= 4)  # the silent ones are in first
        viewers = await open_viewers(stack, proxy, range(5, 9))
        await asyncio.gather(*(camera_frame(viewer, timeout_s=5) for viewer in viewers))
        assert len(silent) == 4
    for n in range(5, 9):
        assert proxy.camera(f"ch{n}").stats.errors["stalled"] == 0


async def test_waiting_for_a_place_at_the_host_is_not_a_stall(start_nvr):
    # Start-ups take 1 s on this NVR, so 16 channels come up in four rounds, the last after
    # about 4 s: longer than the stall timeout, which counts from each request's start.
    nvr = FakeNvr(PETS, channels=16, max_startups=16, startup_s=1.0)
    proxy = await start_nvr(nvr, "mjpeg", stall_timeout=3.0)
    async with contextlib.AsyncExitStack() as stack:
        viewers = await open_viewers(stack, proxy, range(1, 17))
        await asyncio.gather(*(camera_frame(viewer) for viewer in viewers))
    assert nvr.max_startups_seen <= CAP
    for n in range(1, 17):
        assert proxy.camera(f"ch{n}").stats.errors["stalled"] == 0, f"ch{n}"


@pytest.mark.parametrize("kind", ["mjpeg", "snapshot"])
async def test_a_device_that_allows_fewer_start_ups_than_the_cap_gets_no_channel_refused(start_nvr, kind):
    # Its busy 401s come while the first channels' logins are still in flight: the verdict
    # waits for their answers, which accept the same password; and the host's cap drops to
    # what the device allows, so the channels take turns instead of colliding again.
    nvr = FakeNvr(PETS, channels=8, max_startups=CAP - 2, startup_s=0.5)
    proxy = await start_nvr(nvr, kind, fps=2)
    async with contextlib.AsyncExitStack() as stack:
        viewers = await open_viewers(stack, proxy, range(1, 9))
        await asyncio.gather(*(camera_frame(viewer, timeout_s=15) for viewer in viewers))
    assert nvr.busy_refusals > 0  # the device did refuse some, as busy
    for n in range(1, 9):
        assert proxy.camera(f"ch{n}").stats.errors["auth_failed"] == 0, f"ch{n}"


async def test_a_login_cut_short_does_not_make_the_others_refused(start_nvr):
    # One start-up at a time, 2 s each: channels 2-4 are refused as busy while channel 1
    # logs in, and channel 1's viewer leaves before its answer. Nothing says the password
    # is wrong, so none of them may wait minutes as "refused".
    nvr = FakeNvr(PETS, channels=4, max_startups=1, startup_s=2.0)
    proxy = await start_nvr(nvr, "mjpeg", linger_seconds=0)
    async with contextlib.AsyncExitStack() as first:
        await open_viewers(first, proxy, range(1, 2))
        await eventually(lambda: nvr.startups == 1)
        async with contextlib.AsyncExitStack() as others:
            viewers = await open_viewers(others, proxy, range(2, 5))
            await eventually(lambda: nvr.busy_refusals >= 1)
            await first.aclose()  # channel 1's viewer leaves: its login is cut short
            await asyncio.gather(*(camera_frame(viewer, timeout_s=20) for viewer in viewers))
    for n in range(2, 5):
        assert proxy.camera(f"ch{n}").stats.errors["auth_failed"] == 0, f"ch{n}"


async def test_channels_of_a_host_that_answers_nothing_are_all_reported_stalled_in_time(start_proxy):
    # A device that takes connections and never answers: waiting for a place there is no
    # reason to report the problem later than the stall timeout.
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.read()  # until the proxy gives up
        writer.close()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        cameras = [
            CameraConfig(id=f"ch{n}", source=MjpegConfig(url=f"http://127.0.0.1:{port}/cam/{n}"), stall_timeout=2.0)
            for n in range(1, 3 * CAP + 1)
        ]
        proxy = await start_proxy(*cameras)
        # Three rounds of the cap would take three stall timeouts if the waits were not counted.
        await eventually(lambda: all(proxy.camera(c.id).stats.errors["stalled"] for c in cameras), timeout_s=3.5)
    finally:
        server.close()
