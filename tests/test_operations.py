"""Operating a real ``run.py`` process: clean stops with viewers, and logs an operator can ship.

Each test starts the proxy as a site owner would (``python run.py ...``), on 127.0.0.1,
and looks only at what an operator sees: the exit status, the bytes viewers receive,
stderr, and the HTTP answers.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.fake_camera import FakeSnapshotCamera
from tests.fake_een import FakeEen
from tests.helpers import boundary_of, real_frames
from tests.processes import STOP_LIMIT_S, free_port, proxy_process

# --- clean stops with viewers ------------------------------------------------------------


@dataclass
class ReadToEnd:
    """A player on a raw socket: sends its request, then reads the whole answer to EOF."""

    port: int
    http10: bool
    head: bytes = b""
    body: bytearray = field(default_factory=bytearray)
    boundary: bytes = b""
    got_part: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            if self.http10:
                writer.write(b"GET /cameras/demo/stream.mjpg HTTP/1.0\r\n\r\n")
            else:
                writer.write(
                    b"GET /cameras/demo/stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n"
                    b"User-Agent: test-player\r\n\r\n"
                )
            await writer.drain()
            self.head = await reader.readuntil(b"\r\n\r\n")
            status_line, *lines = self.head.decode("latin-1").split("\r\n")
            assert status_line.startswith("HTTP/1.0 200" if self.http10 else "HTTP/1.1 200"), self.head
            headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
            self.boundary = boundary_of(headers["content-type"]).encode()
            delimiter = b"\r\n--" + self.boundary + b"\r\n"
            while chunk := await reader.read(65536):
                self.body += chunk
                # One whole part: the opening delimiter, a part, and the next delimiter.
                if not self.got_part.is_set() and self.body.find(delimiter) > 0:
                    self.got_part.set()
        finally:
            writer.close()


def parse_stream(body: bytes, boundary: bytes) -> int:
    """Check a whole MJPEG body as a player reads it; return its number of parts.

    It must open with ``--B``, carry whole JPEG parts with an exact Content-Length, and end,
    right after a whole part, with the close delimiter ``--B--`` and nothing after it."""
    opening = b"--" + boundary + b"\r\n"
    assert body.startswith(opening), body[:80]
    pos, parts = len(opening), 0
    while True:
        end_of_head = body.find(b"\r\n\r\n", pos)
        assert end_of_head > 0, f"the stream ended inside part headers: {body[pos : pos + 80]!r}"
        headers = dict(
            line.split(": ", 1) for line in body[pos:end_of_head].decode("ascii").split("\r\n") if ": " in line
        )
        assert headers.get("Content-Type") == "image/jpeg", body[pos:end_of_head]
        length = int(headers["Content-Length"])
        jpeg = body[end_of_head + 4 : end_of_head + 4 + length]
        assert len(jpeg) == length, "the stream ended inside a JPEG"
        assert jpeg.startswith(b"\xff\xd8") and jpeg.endswith(b"\xff\xd9"), "a part is not one whole JPEG"
        parts += 1
        pos = end_of_head + 4 + length
        rest = body[pos : pos + len(boundary) + 6]
        if rest == b"\r\n--" + boundary + b"--":
            assert body[pos + len(rest) :] == b"\r\n", f"bytes after the close delimiter: {body[pos + len(rest) :]!r}"
            return parts
        assert rest == b"\r\n--" + boundary + b"\r\n", f"after part {parts}: {rest!r} is no delimiter"
        pos += len(rest)


@pytest.mark.parametrize(
    ("signum", "event_loop", "viewers"),
    [
        (signal.SIGTERM, "uvloop", 20),
        (signal.SIGTERM, "asyncio", 20),
        (signal.SIGINT, "asyncio", 5),
    ],
    ids=["sigterm-uvloop", "sigterm-asyncio", "sigint"],
)
async def test_stop_signal_with_open_viewers_ends_every_stream_with_the_close_delimiter(
    tmp_path, signum, event_loop, viewers
):
    """README: exit status 0 after SIGINT or SIGTERM, open streams ended "well under a second",
    each after a whole part with the closing boundary, so players see a finished stream."""
    if event_loop == "uvloop":
        pytest.importorskip("uvloop")
    async with proxy_process(tmp_path, "--event-loop", event_loop) as proxy:
        port = proxy.port
        # A few HTTP/1.0 players (old tools), the rest HTTP/1.1 like curl and ffmpeg.
        players = [ReadToEnd(port, http10=index % 4 == 3) for index in range(viewers)]
        tasks = [asyncio.create_task(player.run()) for player in players]
        try:
            async with asyncio.timeout(15):
                await asyncio.gather(*(player.got_part.wait() for player in players))
            took = await proxy.stop(signum)
            assert proxy.process.returncode == 0, proxy.stderr()
            async with asyncio.timeout(STOP_LIMIT_S):  # every stream ends: EOF, not a hang
                await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
        stderr = proxy.stderr()
        assert "Traceback" not in stderr, stderr
        assert " ERROR " not in stderr, stderr
        assert "mjpeg-proxy stopped" in stderr
        assert took < STOP_LIMIT_S
        for index, player in enumerate(players):
            body = bytes(player.body)
            # closing() ends the last part's CRLF with the close delimiter: JPEG, CRLF, --B--, CRLF.
            ends_with_close_delimiter = body.endswith(b"\xff\xd9\r\n--" + player.boundary + b"--\r\n")
            http = "HTTP/1.0" if player.http10 else "HTTP/1.1"
            assert ends_with_close_delimiter, f"viewer {index} ({http}) ended with {body[-60:]!r}"
            assert parse_stream(body, player.boundary) >= 1


# --- logs and pages keep secrets ----------------------------------------------------------

CAMERA_USER = "viewer"
CAMERA_PASSWORD = "pw-SECRET-123"
EEN_USER = "een-user-SECRET-0a1b@example.com"
EEN_PASSWORD = "een-pw-SECRET-789"
EEN_API_KEY = "apikey-SECRET-456"
FRONT = "1006073b"
EXPECTED_STATES = {
    "garage-basic": "auth_failed",
    "garage-digest": "auth_failed",
    "offline": "offline",
    "front": "auth_failed",
}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


FORBIDDEN = {
    "camera password": CAMERA_PASSWORD,
    "Basic credentials": b64(f"{CAMERA_USER}:{CAMERA_PASSWORD}"),
    "camera password in base64": b64(CAMERA_PASSWORD),
    "EEN username": EEN_USER,
    "EEN password": EEN_PASSWORD,
    "EEN password in base64": b64(EEN_PASSWORD),
    "EEN credentials in base64": b64(f"{EEN_USER}:{EEN_PASSWORD}"),
    "EEN API key": EEN_API_KEY,
    "EEN API key in base64": b64(EEN_API_KEY),
}


def secrets_in(text: str) -> list[str]:
    return [name for name, secret in FORBIDDEN.items() if secret in text]


def recorder(seen: list[tuple[str, dict[str, str], bytes]]):
    """A middleware that records each request's path, headers and body, as they reach the fake."""

    @web.middleware
    async def record(request: web.Request, handler):
        seen.append((request.path, dict(request.headers), await request.read()))
        return await handler(request)

    return record


def write_config(tmp_path: Path, camera_port: int, een_port: int, closed_port: int) -> Path:
    camera = f"http://127.0.0.1:{camera_port}/snapshot.jpg"
    path = tmp_path / "cameras.toml"
    path.write_text(
        f"""
[een]
username = "{EEN_USER}"
password_env = "MJPEG_PROXY_TEST_EEN_PASSWORD"
api_key_env = "MJPEG_PROXY_TEST_EEN_API_KEY"
base_url = "http://127.0.0.1:{een_port}"
use_brand_subdomain = false

[[cameras]]
id = "garage-basic"
source = "snapshot"
url = "{camera}"
username = "{CAMERA_USER}"
password_env = "MJPEG_PROXY_TEST_CAMERA_PASSWORD"
auth = "basic"
always_on = true
stall_timeout = 1

[[cameras]]
id = "garage-digest"
source = "snapshot"
url = "{camera}"
username = "{CAMERA_USER}"
password_env = "MJPEG_PROXY_TEST_CAMERA_PASSWORD"
auth = "digest"
always_on = true
stall_timeout = 1

[[cameras]]
id = "offline"
source = "mjpeg"
url = "http://127.0.0.1:{closed_port}/stream.mjpg"
username = "{CAMERA_USER}"
password_env = "MJPEG_PROXY_TEST_CAMERA_PASSWORD"
always_on = true
stall_timeout = 1

[[cameras]]
id = "front"
source = "een"
esn = "{FRONT}"
always_on = true
stall_timeout = 1
""",
        encoding="utf-8",
    )
    return path


async def read_some_of_stream(session: aiohttp.ClientSession, url: str) -> str:
    """Open a stream briefly: its headers and its first whole part (the offline picture)."""
    async with session.get(url, headers={"Accept": "*/*"}) as response:
        assert response.status == 200, url
        boundary = boundary_of(response.headers["Content-Type"]).encode()
        body = b""
        async with asyncio.timeout(10):
            while body.count(b"--" + boundary + b"\r\n") < 2:
                body += await response.content.readany()
        return str(response.headers)


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_failing_cameras_log_their_errors_without_secrets_or_tracebacks(tmp_path, aiohttp_server, log_format):
    """README: secrets "never appear in a log line or a page". Cameras that refuse the password,
    one at a closed port and an EEN account whose login is refused all log their errors at
    debug level, with one log record per line (JSON objects with --log-format json), and no
    secret and no traceback reaches stderr, stdout or any page."""
    camera_requests: list[tuple[str, dict[str, str], bytes]] = []
    fake_camera = FakeSnapshotCamera(real_frames(), username=CAMERA_USER, password="the real camera password")
    camera_app = fake_camera.app()
    camera_app.middlewares.append(recorder(camera_requests))
    camera_server = await aiohttp_server(camera_app)

    een_requests: list[tuple[str, dict[str, str], bytes]] = []
    # The API key is right, the password is not: the login is refused.
    fake_een = FakeEen(username=EEN_USER, password="the real een password", api_key=EEN_API_KEY)
    fake_een.add_camera(FRONT, real_frames(), interval_s=0.5)
    een_app = fake_een.app()
    een_app.middlewares.append(recorder(een_requests))
    een_server = await aiohttp_server(een_app)

    config = write_config(tmp_path, camera_server.port, een_server.port, free_port())
    env = {
        **os.environ,
        "MJPEG_PROXY_TEST_CAMERA_PASSWORD": CAMERA_PASSWORD,
        "MJPEG_PROXY_TEST_EEN_PASSWORD": EEN_PASSWORD,
        "MJPEG_PROXY_TEST_EEN_API_KEY": EEN_API_KEY,
    }
    bodies: dict[str, str] = {}
    async with (
        proxy_process(
            tmp_path, "--config", str(config), "--log-level", "debug", "--log-format", log_format, env=env
        ) as proxy,
        aiohttp.ClientSession() as session,
    ):
        # Every camera reports its error (the mjpeg camera twice: a retry, logged at debug level).
        deadline = time.monotonic() + 15
        while True:
            async with session.get(f"{proxy.base}/api/cameras") as response:
                cameras = {camera["id"]: camera for camera in (await response.json())["cameras"]}
            states = {camera_id: camera["state"] for camera_id, camera in cameras.items()}
            if states == EXPECTED_STATES and all(camera["last_error"] for camera in cameras.values()):
                if sum(cameras["offline"]["errors"].values()) >= 2:
                    break
            assert time.monotonic() < deadline, f"cameras did not all report their errors: {cameras}"
            await asyncio.sleep(0.1)

        for camera_id in EXPECTED_STATES:
            async with session.get(f"{proxy.base}/cameras/{camera_id}/snapshot.jpg") as response:
                assert response.status == 503, camera_id  # no frame to show
                bodies[f"snapshot {camera_id}"] = f"{response.headers}\n{await response.text()}"
            bodies[f"stream {camera_id}"] = await read_some_of_stream(
                session, f"{proxy.base}/cameras/{camera_id}/stream.mjpg"
            )
        paths = ["/", "/status", "/api/cameras", "/metrics", *(f"/api/cameras/{c}" for c in EXPECTED_STATES)]
        paths += [f"/cameras/{c}" for c in EXPECTED_STATES]
        for path in paths:
            async with session.get(f"{proxy.base}{path}") as response:
                assert response.status == 200, path
                bodies[path] = f"{response.headers}\n{await response.text()}"
        await proxy.stop(signal.SIGTERM)
        assert proxy.process.returncode == 0

    # The secrets really were used, so their absence below means something.
    assert any(
        headers.get("Authorization") == f"Basic {b64(f'{CAMERA_USER}:{CAMERA_PASSWORD}')}"
        for _, headers, _ in camera_requests
    )
    assert any('username="viewer"' in headers.get("Authorization", "") for _, headers, _ in camera_requests)
    assert any(
        path == "/g/aaa/authenticate" and EEN_PASSWORD.encode() in body and headers.get("Authorization") == EEN_API_KEY
        for path, headers, body in een_requests
    )
    assert fake_een.logins == 0

    stderr, stdout = proxy.stderr(), proxy.stdout()
    records = log_records(stderr, log_format)
    for camera_id in EXPECTED_STATES:  # each failure is in the log, naming the camera...
        assert any(
            level in ("WARNING", "ERROR") and f"camera {camera_id}:" in message for level, _, message in records
        ), f"no warning about camera {camera_id}:\n{stderr}"
    assert any(level == "ERROR" and "login failed" in message for level, _, message in records), stderr
    assert any(level == "DEBUG" for level, _, _ in records), "--log-level debug shows debug lines"
    for name, text in {"stderr": stderr, "stdout": stdout, **bodies}.items():  # ...and no secret anywhere
        assert secrets_in(text) == [], f"{secrets_in(text)} in {name}"
    # Refused logins and a closed port are expected network errors, not crashes.
    assert "Traceback" not in stderr + stdout, stderr


TEXT_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) ([\w.]+): (.*)")


def log_records(stderr: str, log_format: str) -> list[tuple[str, str, str]]:
    """(level, logger, message) of every stderr line, checking each is one whole log record:
    ``time LEVEL logger: message`` in text, a JSON object with the documented keys in JSON."""
    lines = stderr.splitlines()
    assert lines, "no log lines"
    records = []
    for line in lines:
        if log_format == "text":
            match = TEXT_LINE.fullmatch(line)
            assert match, f"a stderr line is not a log record: {line!r}"
            records.append(match.groups())
            continue
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"a stderr line is not JSON: {line!r}")
        assert isinstance(record, dict), line
        assert {"time", "level", "logger", "message"} <= record.keys(), line
        assert record["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), line
        assert re.match(r"\d{4}-\d\d-\d\d", record["time"]), line
        assert isinstance(record["logger"], str) and isinstance(record["message"], str), line
        records.append((record["level"], record["logger"], record["message"]))
    return records
