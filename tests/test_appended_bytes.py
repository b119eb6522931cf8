"""Cameras whose firmware appends bytes after each JPEG's end marker, end to end.

Fake snapshot, MJPEG and EEN cameras on 127.0.0.1 send every picture with bytes after it
(a vendor block, stale buffer bytes, a second JPEG, ...). Viewers must get the pictures
themselves, byte for byte, each with a Content-Length that matches, and the trimming must
show in /api/cameras, /status and /metrics.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import aiohttp
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from mjpeg_proxy.config import CameraConfig
from mjpeg_proxy.sources.een_config import EenCameraConfig, EenConfig
from mjpeg_proxy.sources.mjpeg import MjpegConfig
from mjpeg_proxy.sources.snapshot import SnapshotConfig
from tests.fake_camera import FakeSnapshotCamera
from tests.fake_een import FakeEen
from tests.fake_mjpeg import GATE, HANG, FakeMjpegCamera
from tests.helpers import MjpegViewer, Proxy, eventually
from tests.jpeg_samples import JUNK, variants

ESN = "1006073b"
BOUNDARY = b"--myboundary"


pytestmark = pytest.mark.usefixtures("fast_retries")  # camera retries within a fraction of a second


def sent(*pairs: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    """(JPEG, appended bytes) for each (variant name, junk name)."""
    return [(variants()[name], JUNK[junk]) for name, junk in pairs]


SNAPSHOTS = sent(("EXIF thumbnail", "a second whole JPEG"), ("restart marker every block", "random bytes"))
PREVIEWS = sent(("progressive", "vendor block ending in FF D9"), ("baseline", "stale buffer bytes"))
PARTS = sent(
    ("EXIF thumbnail", "vendor block ending in FF D9"),
    ("progressive", "stale buffer bytes"),
    ("CMYK (Adobe APP14)", "zero padding then a trailer"),
    ("arithmetic (file)", "a second whole JPEG"),
)
# The Content-Length of each part in PARTS: the whole body, more than the body (it reaches
# into the next part), less than the JPEG, and none; the length of the JPEG alone would
# leave the appended bytes between the parts, outside every frame.
LENGTHS = [
    lambda body: b"Content-Length: %d\r\n" % len(body),
    lambda body: b"Content-Length: %d\r\n" % (len(body) + 4000),
    lambda body: b"Content-Length: %d\r\n" % (len(body) // 3),
    lambda body: b"",
]


def mjpeg_script() -> list[object]:
    parts = [
        BOUNDARY + b"\r\nContent-Type: image/jpeg\r\n" + length(jpeg + junk) + b"\r\n" + jpeg + junk + b"\r\n"
        for (jpeg, junk), length in zip(PARTS, LENGTHS, strict=True)
    ]
    return [GATE, *parts, BOUNDARY + b"\r\n", HANG]


def decodes(jpeg: bytes) -> bool:
    with Image.open(io.BytesIO(jpeg)) as image:
        image.load()
    return True


@dataclass
class Cameras:
    """A proxy with cameras ``snap``, ``mjpeg`` and ``een``; the MJPEG camera's first
    connection waits at GATE until the test opens ``mjpeg.gate``."""

    proxy: Proxy
    mjpeg: FakeMjpegCamera

    async def watch_mjpeg(self, viewer: MjpegViewer) -> list[bytes]:
        await eventually(lambda: self.proxy.camera("mjpeg").hub.viewers >= 1, 10)
        self.mjpeg.gate.set()
        return [part.jpeg for part in await viewer.new_parts(len(PARTS))]


@pytest.fixture
async def cameras(aiohttp_server, start_proxy) -> Cameras:
    snapshot_camera = await aiohttp_server(FakeSnapshotCamera([jpeg + junk for jpeg, junk in SNAPSHOTS]).app())
    mjpeg = FakeMjpegCamera(lambda n: mjpeg_script() if n == 0 else [HANG])
    mjpeg_camera = await aiohttp_server(mjpeg.app())
    een = FakeEen()
    een.add_camera(ESN, [jpeg + junk for jpeg, junk in PREVIEWS], interval_s=0.1)
    een_server = await aiohttp_server(een.app())
    account = EenConfig(username=een.username, password=een.password, base_url=str(een_server.make_url("/")))
    proxy = await start_proxy(
        CameraConfig(id="snap", source=SnapshotConfig(url=str(snapshot_camera.make_url("/snapshot.jpg"))), fps=10),
        CameraConfig(id="mjpeg", source=MjpegConfig(url=str(mjpeg_camera.make_url("/video.mjpg"))), stall_timeout=5),
        CameraConfig(id="een", source=EenCameraConfig(esn=ESN, account=account)),
    )
    return Cameras(proxy, mjpeg)


@pytest.mark.parametrize(
    ("camera", "pictures"),
    [("snap", SNAPSHOTS), ("een", PREVIEWS), ("mjpeg", PARTS)],
    ids=["snapshot", "een-preview", "mjpeg-part"],
)
async def test_viewers_get_each_picture_without_the_appended_bytes(cameras, camera, pictures):
    proxy, jpegs = cameras.proxy, [jpeg for jpeg, _ in pictures]
    # The strict reader checks each part's Content-Length against its bytes.
    async with MjpegViewer(proxy.url(f"/cameras/{camera}/stream.mjpg")) as viewer:
        if camera == "mjpeg":
            got = await cameras.watch_mjpeg(viewer)
        else:
            got = [part.jpeg for part in await viewer.new_parts(len(jpegs))]

    if camera == "mjpeg":
        assert got == jpegs  # each Content-Length case, in order
    else:
        assert set(got) <= set(jpegs) and len(set(got)) == len(jpegs)  # in turn, from any one
    assert all(decodes(jpeg) for jpeg in got)

    async with aiohttp.ClientSession() as session, session.get(proxy.url(f"/cameras/{camera}/snapshot.jpg")) as r:
        assert r.status == 200
        body = await r.read()
    assert body in jpegs
    assert int(r.headers["Content-Length"]) == len(body)


async def test_trimmed_frames_are_counted_in_status_and_metrics(cameras):
    proxy = cameras.proxy
    async with MjpegViewer(proxy.url("/cameras/mjpeg/stream.mjpg")) as viewer:
        await cameras.watch_mjpeg(viewer)
        await eventually(lambda: min(proxy.camera(camera).stats.frames_received for camera in ("snap", "een")) >= 2)
        async with aiohttp.ClientSession() as session:
            async with session.get(proxy.url("/api/cameras")) as r:
                api = {camera["id"]: camera for camera in (await r.json())["cameras"]}
            async with session.get(proxy.url("/status")) as r:
                page = await r.text()
            async with session.get(proxy.url("/metrics")) as r:
                metrics = await r.text()

    # Every frame these cameras sent had bytes appended, and the counts say so.
    assert api["mjpeg"]["frames_trimmed"] == api["mjpeg"]["frames_received"] == len(PARTS)
    for camera in ("snap", "een"):
        assert api[camera]["frames_trimmed"] == api[camera]["frames_received"] >= 2, camera

    row = next(row for row in re.findall(r"<tr>(.*?)</tr>", page, flags=re.S) if "cameras/mjpeg" in row)
    cells = re.findall(r'<td class="n"[^>]*>([^<]*)</td>', row)
    headings = re.findall(r"<th>([^<]*)</th>", page)
    numeric = headings[headings.index("Viewers") :]
    assert dict(zip(numeric, cells, strict=False))["Trimmed"] == str(len(PARTS))

    samples = {
        (sample.name, sample.labels.get("camera")): sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
    }
    assert samples[("mjpeg_proxy_frames_trimmed_total", "mjpeg")] == len(PARTS)
    for camera in ("snap", "een"):
        trimmed = samples[("mjpeg_proxy_frames_trimmed_total", camera)]
        assert trimmed == samples[("mjpeg_proxy_frames_received_total", camera)] >= 2, camera
