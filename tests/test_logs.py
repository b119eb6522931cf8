"""Logs an operator can read: a flood of refused requests makes a few lines that still count
every refusal, and JSON log lines carry their time in UTC."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import re
from dataclasses import dataclass

import aiohttp
import pytest

from tests.helpers import LOCALHOST, big_frames, eventually, push_camera, run_camera
from tests.processes import proxy_process
from tests.raw_viewers import RawViewer, raw_viewers

FIRST_LINE = re.compile(r"refused GET /\S+ from (?P<address>\S+) \((?P<reason>\w+)\): .+")
SUMMARY_LINE = re.compile(
    r"refusals \((?P<reason>\w+)\): (?P<count>\d+) more in the last \d+ s, "
    r"from (?P<addresses>\d+\+?) address(es)?; the latest: refused GET .+"
)


@dataclass
class RefusalLine:
    reason: str
    count: int  # 1 for a refusal logged at once
    addresses: str  # how many addresses the line names
    summary: bool
    created: float


def refusal_lines(caplog: pytest.LogCaptureFixture, reason: str | None = None) -> list[RefusalLine]:
    """The log lines about refused requests, each checked to be a whole first line or summary."""
    lines = []
    for record in caplog.records:
        message = record.getMessage()
        if not message.startswith("refus"):
            continue
        if first := FIRST_LINE.fullmatch(message):
            lines.append(RefusalLine(first["reason"], 1, "1", False, record.created))
        else:
            summary = SUMMARY_LINE.fullmatch(message)
            assert summary, f"neither a refusal nor a summary of refusals: {message!r}"
            lines.append(
                RefusalLine(summary["reason"], int(summary["count"]), summary["addresses"], True, record.created)
            )
    return [line for line in lines if reason is None or line.reason == reason]


def totals(lines: list[RefusalLine]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for line in lines:
        counted[line.reason] = counted.get(line.reason, 0) + line.count
    return counted


async def get_status(session: aiohttp.ClientSession, url: str, client: str) -> int:
    async with session.get(url, headers={"X-Forwarded-For": client}) as response:
        await response.read()
        return response.status


async def test_a_burst_of_refusals_is_logged_in_one_line_per_reason_that_counts_them_all(start_proxy, caplog):
    caplog.set_level(logging.INFO, logger="mjpeg_proxy.web.limits")
    proxy = await start_proxy(
        push_camera("cam"),
        push_camera("other"),
        max_viewers_per_camera=1,
        max_connections_per_client=1,
        trusted_proxies=LOCALHOST,
        app_options={"log_summary_interval_s": 3600},  # the whole burst falls in one interval
    )
    cam, other = proxy.url("/cameras/cam/stream.mjpg"), proxy.url("/cameras/other/stream.mjpg")
    async with aiohttp.ClientSession() as session:
        # Clients behind the (trusted) reverse proxy on 127.0.0.1: one watches cam, the
        # camera's only place; another watches other, which takes its only place.
        viewers = [
            await session.get(cam, headers={"X-Forwarded-For": "10.0.0.2"}),
            await session.get(other, headers={"X-Forwarded-For": "10.0.0.1"}),
        ]
        assert [viewer.status for viewer in viewers] == [200, 200]
        await eventually(lambda: proxy.camera("cam").hub.viewers == 1, 10)

        assert await get_status(session, cam, "10.1.0.0") == 503
        assert [(line.reason, line.summary) for line in refusal_lines(caplog)] == [("camera_full", False)]

        statuses = [await get_status(session, cam, f"10.1.0.{i % 20}") for i in range(1, 200)]
        statuses += [await get_status(session, cam, "10.0.0.1") for _ in range(100)]
        assert statuses.count(503) == 199 and statuses.count(429) == 100
        # Within the interval nothing more is written than the first refusal of each reason.
        assert [(line.reason, line.summary) for line in refusal_lines(caplog)] == [
            ("camera_full", False),
            ("client_limit", False),
        ]
        for viewer in viewers:
            viewer.close()

    await proxy.server.close()  # a stopping server reports what it counted
    lines = refusal_lines(caplog)
    assert len(lines) == 4, caplog.text
    assert totals(lines) == {"camera_full": 200, "client_limit": 100}
    summaries = {line.reason: line.addresses for line in lines if line.summary}
    assert summaries == {"camera_full": "20", "client_limit": "1"}


async def test_a_flood_that_goes_on_is_summarised_once_per_interval_until_a_quiet_interval(start_proxy, caplog):
    caplog.set_level(logging.INFO, logger="mjpeg_proxy.web.limits")
    interval_s = 0.25
    proxy = await start_proxy(
        push_camera("cam"), max_viewers_per_camera=1, app_options={"log_summary_interval_s": interval_s}
    )
    url = proxy.url("/cameras/cam/stream.mjpg")
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:
        viewer = await session.get(url)
        assert viewer.status == 200
        await eventually(lambda: proxy.camera("cam").hub.viewers == 1, 10)

        refused, start = 0, loop.time()
        while loop.time() - start < 4 * interval_s and refused < 5000:
            assert await get_status(session, url, f"10.2.0.{refused % 7}") == 503
            refused += 1
        # The flood's last summary comes at the end of its interval.
        await eventually(lambda: totals(refusal_lines(caplog)).get("camera_full") == refused)
        lines = refusal_lines(caplog, "camera_full")
        assert not lines[0].summary and all(line.summary for line in lines[1:])
        assert len(lines) >= 3, "a flood that goes on is reported while it goes on"
        gaps = [later.created - earlier.created for earlier, later in zip(lines, lines[1:], strict=False)]
        assert min(gaps) >= 0.9 * interval_s, gaps  # ~0.9: record times and timers use different clocks

        # An interval with nothing refused ends the flood: no line comes, and the next
        # refusal is logged at once again (time must pass with nothing refused).
        await asyncio.sleep(2 * interval_s)
        assert len(refusal_lines(caplog)) == len(lines)
        assert await get_status(session, url, "10.3.0.1") == 503
        last = refusal_lines(caplog)[-1]
        assert (last.summary, last.count) == (False, 1)
        viewer.close()


async def test_json_log_times_are_rfc3339_in_utc(tmp_path):
    config = tmp_path / "proxy.toml"
    config.write_text('[[cameras]]\nid = "demo"\nsource = "demo"\n', encoding="utf-8")
    async with proxy_process(
        tmp_path,
        "--config",
        str(config),
        "--log-format",
        "json",
        entry=("-m", "mjpeg_proxy"),
        # A local time zone far from UTC (POSIX TZ: UTC+05:45), so local time cannot pass for UTC.
        env={**os.environ, "TZ": "MJP-5:45"},
    ) as proxy:
        await proxy.stop()
    stderr = proxy.stderr()
    now = datetime.datetime.now(datetime.UTC)
    lines = stderr.splitlines()
    assert lines
    for line in lines:
        text = json.loads(line)["time"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text), text
        logged = datetime.datetime.fromisoformat(text)
        assert logged.utcoffset() == datetime.timedelta(0), text
        assert abs(now - logged) < datetime.timedelta(minutes=5), (text, now)


async def test_viewers_that_never_read_are_closed_in_a_few_log_lines(start_proxy, caplog):
    # One client opens stream after stream and reads none of them.
    caplog.set_level(logging.INFO, logger="mjpeg_proxy.web.streaming")
    proxy = await start_proxy(
        push_camera(), resend_seconds=60, write_timeout=1.0, app_options={"log_summary_interval_s": 3600}
    )
    camera = proxy.camera("cam")
    await proxy.publish("cam", big_frames()[0])
    stuck = [await RawViewer.connect(proxy, rcvbuf=4096) for _ in range(20)]
    async with raw_viewers(*stuck):
        await eventually(lambda: camera.hub.viewers == 20, 5)
        playing = asyncio.create_task(run_camera(proxy, big_frames()[1:]))
        try:
            await eventually(lambda: camera.stats.viewers_timed_out == 20, 10)
        finally:
            playing.cancel()
    lines = [record.getMessage() for record in caplog.records if "took no data" in record.getMessage()]
    assert lines == [lines[0]] and lines[0].startswith("camera cam: a viewer (127.0.0.1) took no data for 1 s")
    await proxy.server.close()  # the rest is counted in one line when the server stops
    summary = [
        record.getMessage() for record in caplog.records if "viewers closed for taking no data" in record.getMessage()
    ]
    assert len(summary) == 1 and ": 19 more in the last" in summary[0], summary
