"""MJPEG upstreams end to end: scripted fake cameras on 127.0.0.1, relayed by the proxy,
checked byte for byte at a viewer. Each case is a failure seen in other MJPEG software."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import os
import random
import re
import struct
from pathlib import Path

import pytest
from PIL import Image

from mjpeg_proxy.camera.timing import CameraTiming
from mjpeg_proxy.config import CameraConfig
from mjpeg_proxy.sources.mjpeg import MjpegConfig
from tests.fake_mjpeg import GATE, HANG, FakeMjpegCamera, Pause, part
from tests.helpers import DATA, MjpegViewer, Proxy, eventually, need_binary, real_frames

PETS = real_frames()
CAPTURES = DATA / "captures"


pytestmark = pytest.mark.usefixtures("fast_retries")  # camera retries within a fraction of a second


@pytest.fixture
def start_mjpeg(aiohttp_server, start_proxy):
    """Serve a fake MJPEG camera and a proxy with one ``mjpeg`` camera ``cam`` relaying it."""

    async def start(fake: FakeMjpegCamera, timing: CameraTiming | None = None, **camera: object) -> Proxy:
        server = await aiohttp_server(fake.app())
        stall_timeout = camera.pop("stall_timeout", 5.0)
        section = MjpegConfig(url=str(server.make_url("/video.mjpg")), **camera)
        config = CameraConfig(id="cam", source=section, stall_timeout=stall_timeout)
        return await start_proxy(config, timing=timing)

    return start


def with_comment(jpeg: bytes, payload: bytes) -> bytes:
    """``jpeg`` with a COM segment holding ``payload`` right after SOI: still a valid JPEG."""
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def padded_jpeg(size: int, seed: int = 0) -> bytes:
    """A valid JPEG of about ``size`` bytes: a real frame with COM segments of random bytes."""
    rng = random.Random(seed)
    jpeg = PETS[0]
    while len(jpeg) < size:
        jpeg = with_comment(jpeg, rng.randbytes(min(65533, size - len(jpeg))))
    return jpeg


def capture_parts(name: str) -> tuple[list[bytes], list[bytes]]:
    """The raw bytes of each part of a capture, and the JPEGs of its complete parts."""
    data = (CAPTURES / name).read_bytes()
    raws, jpegs = [], []
    for match in re.finditer(rb"--myboundary\r\nContent-Type: image/jpeg\r\nContent-Length: (\d+)\r\n\r\n", data):
        start = match.end()
        end = start + int(match.group(1))
        following = data.find(b"--myboundary", end)
        raws.append(data[match.start() : following if following >= 0 else len(data)])
        if end <= len(data):
            jpegs.append(data[start:end])
    return raws, jpegs


async def relayed(proxy: Proxy, fake: FakeMjpegCamera, count: int, viewers: int = 1) -> list[bytes]:
    """What one viewer receives of the first ``count`` new frames; the fake's scripts start
    with GATE, opened once ``viewers`` viewers are watching."""
    async with MjpegViewer(proxy.url("/cameras/cam/stream.mjpg")) as viewer:
        await eventually(lambda: proxy.camera("cam").hub.viewers >= viewers, 10)
        fake.gate.set()
        return [p.jpeg for p in await viewer.new_parts(count)]


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/x-mixed-replace; boundary=--myboundary",
        'multipart/x-mixed-replace; boundary="myboundary"',
        "multipart/x-mixed-replace; boundary =myboundary",
        "Multipart/X-Mixed-Replace; BOUNDARY=myboundary",
        "multipart/x-mixed-replace",  # no boundary at all: taken from the first "--" line
    ],
)
async def test_boundary_in_any_spelling(start_mjpeg, content_type):
    fake = FakeMjpegCamera(lambda n: [GATE, *(part(j) for j in PETS[:3]), HANG], content_type)
    proxy = await start_mjpeg(fake)
    assert await relayed(proxy, fake, 3) == PETS[:3]


async def test_ffmpeg_mpjpeg_server_saying_octet_stream_is_read(start_mjpeg):
    # ffmpeg -f mpjpeg -listen 1 sends Content-Type: application/octet-stream, boundary "ffmpeg".
    parts = [
        b"--ffmpeg\r\nContent-type: image/jpeg\r\nContent-length: %d\r\n\r\n" % len(j) + j + b"\r\n" for j in PETS[:3]
    ]
    fake = FakeMjpegCamera(lambda n: [GATE, *parts, HANG], "application/octet-stream")
    proxy = await start_mjpeg(fake)
    assert await relayed(proxy, fake, 3) == PETS[:3]


async def test_first_part_without_a_delimiter_before_it(start_mjpeg):
    first = b"Content-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(PETS[0]) + PETS[0] + b"\r\n"
    fake = FakeMjpegCamera(lambda n: [GATE, first, part(PETS[1]), part(PETS[2]), HANG])
    proxy = await start_mjpeg(fake)
    assert await relayed(proxy, fake, 3) == PETS[:3]


async def test_parts_without_length_split_only_at_the_real_delimiter(start_mjpeg):
    tricky = with_comment(PETS[1], b"a comment with \r\n-- and \r\n--myboundar inside")
    frames = [PETS[0], tricky, PETS[2]]
    fake = FakeMjpegCamera(lambda n: [GATE, *(part(j, length=False) for j in frames), b"--myboundary\r\n", HANG])
    proxy = await start_mjpeg(fake)
    assert await relayed(proxy, fake, 3) == frames


async def test_large_frames_pass_intact(start_mjpeg):
    frames = [padded_jpeg(300_000, 1), padded_jpeg(1_500_000, 2), padded_jpeg(6_000_000, 3)]
    fake = FakeMjpegCamera(lambda n: [GATE, *(part(j) for j in frames), HANG])
    proxy = await start_mjpeg(fake)
    assert await relayed(proxy, fake, 3) == frames


async def test_part_announcing_2_gb_is_refused_and_the_stream_goes_on(start_mjpeg):
    huge = b"--myboundary\r\nContent-Type: image/jpeg\r\nContent-Length: 2147483648\r\n\r\n" + PETS[1][:1000]
    junk = [os.urandom(65536).replace(b"myboundary", b"xxxxxxxxxx") for _ in range(160)]  # 10 MiB
    fake = FakeMjpegCamera(lambda n: [GATE, part(PETS[0]), huge, *junk, b"\r\n", part(PETS[2]), HANG])
    proxy = await start_mjpeg(fake, max_frame_bytes=1024 * 1024)
    assert await relayed(proxy, fake, 2) == [PETS[0], PETS[2]]
    assert proxy.camera("cam").feed.source.stats.dropped == 1


@pytest.mark.parametrize(
    "bad",
    [
        part(PETS[1])[: len(part(PETS[1])) * 6 // 10],  # a JPEG cut at 60 %, then the connection ends
        part(b"<html><body>not a picture</body></html>"),  # a body that is not a JPEG
        part(PETS[1], length=False)[:-5000],  # mid-part close of a part without length
    ],
    ids=["cut-jpeg", "not-jpeg", "close-mid-part"],
)
async def test_nothing_partial_reaches_viewers_and_the_camera_reconnects(start_mjpeg, bad):
    first_connection = [GATE, part(PETS[0]), bad]
    fake = FakeMjpegCamera(lambda n: first_connection if n == 0 else [part(PETS[2]), HANG])
    proxy = await start_mjpeg(fake)
    assert await relayed(proxy, fake, 2) == [PETS[0], PETS[2]]
    assert fake.connections == 2


async def test_last_good_frame_stays_while_the_upstream_is_gone(start_mjpeg):
    fake = FakeMjpegCamera(lambda n: [GATE, part(PETS[0]), part(PETS[1])[:3000]] if n == 0 else [HANG])
    proxy = await start_mjpeg(fake)
    await relayed(proxy, fake, 1)
    await eventually(lambda: fake.connections >= 2)
    assert proxy.camera("cam").hub.latest.frame.jpeg == PETS[0]


async def test_digest_protected_upstream(start_mjpeg):
    fake = FakeMjpegCamera(lambda n: [GATE, *(part(j) for j in PETS[:3]), HANG], username="admin", password="pw-9")
    proxy = await start_mjpeg(fake, username="admin", password="pw-9", auth="digest")
    assert await relayed(proxy, fake, 3) == PETS[:3]
    assert fake.challenges >= 1


async def test_wrong_password_is_auth_failed_and_the_401_page_is_never_a_frame(start_mjpeg, fast_retries, caplog):
    slow_auth = dataclasses.replace(fast_retries, auth_backoff_s=CameraTiming().auth_backoff_s)  # the real, slow retry
    fake = FakeMjpegCamera(lambda n: [part(PETS[0]), HANG], username="admin", password="right")
    proxy = await start_mjpeg(fake, timing=slow_auth, username="admin", password="wrong", auth="digest")
    camera = proxy.camera("cam")
    await eventually(lambda: camera.hub.latest is not None)
    assert camera.state == "auth_failed"
    assert camera.hub.latest.frame.placeholder, "the 401 page must never become a frame"
    (warning,) = [r for r in caplog.records if r.name == "mjpeg_proxy.camera.state" and r.levelno == logging.WARNING]
    delay = float(re.search(r"retrying in ([0-9.]+) s", warning.getMessage()).group(1))
    assert delay >= 60, "a refused password is retried after minutes, not seconds"


async def test_stall_shows_the_offline_picture_then_the_same_viewer_gets_live_frames_again(start_mjpeg):
    fake = FakeMjpegCamera(lambda n: [GATE, part(PETS[0]), part(PETS[1]), HANG] if n == 0 else [part(PETS[2]), HANG])
    proxy = await start_mjpeg(fake, stall_timeout=1.0)
    camera = proxy.camera("cam")
    async with MjpegViewer(proxy.url("/cameras/cam/stream.mjpg")) as viewer:
        await eventually(lambda: camera.hub.viewers == 1, 10)
        fake.gate.set()
        assert [p.jpeg for p in await viewer.new_parts(2)] == PETS[:2]
        offline = await viewer.next_new_part()
        assert camera.stats.errors["stalled"] == 1
        assert offline.jpeg not in PETS and Image.open(io.BytesIO(offline.jpeg)).size == (768, 576)
        assert (await viewer.next_new_part()).jpeg == PETS[2]
    assert fake.connections == 2 and fake.max_open_connections == 1


async def test_a_stall_that_cuts_a_picture_short_blames_no_part_on_the_upstream(start_mjpeg, caplog):
    half = part(PETS[1])[: len(part(PETS[1])) // 2]
    fake = FakeMjpegCamera(lambda n: [GATE, part(PETS[0]), half, HANG] if n == 0 else [part(PETS[2]), HANG])
    proxy = await start_mjpeg(fake, stall_timeout=1.0)
    camera = proxy.camera("cam")
    async with MjpegViewer(proxy.url("/cameras/cam/stream.mjpg")) as viewer:
        await eventually(lambda: camera.hub.viewers == 1, 10)
        fake.gate.set()
        assert (await viewer.next_new_part()).jpeg == PETS[0]
        await eventually(lambda: camera.stats.frames_received == 2, 10)  # after the stall, reconnected
    assert camera.stats.errors["stalled"] == 1
    assert camera.feed.source.stats.dropped == 0
    assert not [r for r in caplog.records if r.name == "mjpeg_proxy.sources.multipart_stream"]


async def test_many_viewers_share_one_upstream_connection(start_mjpeg):
    frames = PETS[:6]
    fake = FakeMjpegCamera(lambda n: [GATE, *(x for j in frames for x in (part(j), Pause(0.05))), HANG])
    proxy = await start_mjpeg(fake)
    results = await asyncio.gather(*(relayed(proxy, fake, 2, viewers=20) for _ in range(20)))
    assert all(r[0] in frames and r[1] in frames for r in results)
    assert fake.connections == 1


@pytest.mark.parametrize(
    ("name", "fps"),
    [
        ("axis-runway-640x480-myboundary.mjpg", 6),
        ("axis-gallery-320x240-myboundary.mjpg", 6),
        ("axis-overhead-160x120-myboundary.mjpg", 17),
    ],
)
@pytest.mark.parametrize("tiny_writes", [False, True], ids=["whole-parts", "1-7-byte-writes"])
async def test_real_axis_captures_replayed_arrive_byte_exact(start_mjpeg, name, fps, tiny_writes):
    raws, jpegs = capture_parts(name)
    rng = random.Random(name)

    def writes(raw: bytes) -> list[bytes]:
        if not tiny_writes:
            return [raw]
        pieces, i = [], 0
        while i < len(raw):
            n = rng.randint(1, 7)
            pieces.append(raw[i : i + n])
            i += n
        return pieces

    script = [x for raw in raws for x in (*writes(raw), Pause(1 / fps))] + [HANG]
    fake = FakeMjpegCamera(lambda n: script if n == 0 else [HANG])
    proxy = await start_mjpeg(fake)
    hub = proxy.camera("cam").hub
    received = []
    async with asyncio.timeout(60):
        while len(received) < len(jpegs):
            part_ = await hub.next_part(received[-1][0] if received else 0)
            received.append((part_.frame.seq, part_.frame.jpeg))
    assert [jpeg for _, jpeg in received] == jpegs
    camera = proxy.camera("cam")
    assert (camera.stats.frames_received, camera.feed.source.stats.resyncs) == (len(jpegs), 0)


async def test_ffmpeg_reads_a_relayed_upstream_without_warnings(start_mjpeg):
    ffmpeg = need_binary("ffmpeg")
    fake = FakeMjpegCamera(lambda n: [x for i in range(40) for x in (part(PETS[i % len(PETS)]), Pause(0.05))] + [HANG])
    proxy = await start_mjpeg(fake)
    process = await asyncio.create_subprocess_exec(
        ffmpeg, "-hide_banner", "-nostdin", "-v", "warning",
        "-i", proxy.url("/cameras/cam/stream.mjpg"), "-frames:v", "20", "-f", "null", "-",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0 and stderr.decode() == ""


def test_captures_are_the_shared_recordings():
    assert sorted(p.name for p in CAPTURES.glob("*.mjpg")) == [
        "axis-gallery-320x240-myboundary.mjpg",
        "axis-overhead-160x120-myboundary.mjpg",
        "axis-runway-640x480-myboundary.mjpg",
    ]
    assert (Path(CAPTURES) / "SOURCE.md").is_file()
