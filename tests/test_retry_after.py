"""Retry-After: an upstream that answers 429 or 503 with it gets no request inside that
window (snapshot, MJPEG and EEN cameras, and EEN logins); a value that makes no sense
falls back to the normal backoff, never to a tight loop; frames resume after the window."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from email.utils import formatdate, parsedate_to_datetime

import pytest
from aiohttp import web

from mjpeg_proxy.camera.backoff import Backoff
from mjpeg_proxy.config import CameraConfig
from mjpeg_proxy.sources.een_config import EenCameraConfig, EenConfig
from mjpeg_proxy.sources.mjpeg import MjpegConfig
from mjpeg_proxy.sources.retry_after import MAX_RETRY_AFTER_S, retry_after_s
from mjpeg_proxy.sources.snapshot import SnapshotConfig
from tests.fake_een import FakeEen
from tests.fake_mjpeg import part
from tests.helpers import MjpegViewer, Proxy, eventually, real_frames

PETS = real_frames()
FRONT = "1006073b"
NOW = 1_700_000_000.0  # a fixed "now" for the parser's own tests, seconds since the epoch

# Values a broken or hostile upstream sends; each must fall back to the normal backoff.
NONSENSE = {
    "zero": "0",
    "negative": "-5",
    "word": "soon",
    "empty": "",
    "plus-sign": "+5",
    "non-ascii-digits": "\u0665",  # ARABIC-INDIC DIGIT FIVE: int() would read it as 5
    "past-date": "Sun, 06 Nov 1994 08:49:37 GMT",
    "over-the-cap": str(int(MAX_RETRY_AFTER_S) + 1),
    "huge": "99999999999999999999999",
    "thousands-of-digits": "9" * 5000,  # int() refuses over 4300 digits
    "far-date": "Fri, 31 Dec 9999 23:59:59 GMT",
    "impossible-date": "Mon, 32 Nov 2094 08:49:37 GMT",
}


def http_date(wall: float) -> str:
    """``wall`` (seconds since the epoch) as an IMF-fixdate, e.g. ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    return formatdate(wall, usegmt=True)


# --- reading Retry-After ---------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", 120.0), (" 7 ", 7.0), ("1", 1.0), ("3600", 3600.0), ("5.0", 5.0), ("1.5", 1.5), ("05", 5.0)],
)
def test_delay_seconds_are_read(status, value, expected):
    assert retry_after_s(status, {"Retry-After": value}, NOW) == expected


@pytest.mark.parametrize(
    "value",
    [
        http_date(NOW + 30),  # IMF-fixdate
        time.strftime("%A, %d-%b-%y %H:%M:%S GMT", time.gmtime(NOW + 30)),  # obsolete RFC 850 form
        time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(NOW + 30)),  # obsolete asctime form
    ],
    ids=["imf-fixdate", "rfc850", "asctime"],
)
def test_an_http_date_is_read_in_all_three_forms(value):
    assert retry_after_s(503, {"Retry-After": value}, NOW) == 30.0


def test_a_date_counts_from_the_answers_own_date_so_a_wrong_camera_clock_does_not_matter():
    # A camera whose clock is nine years behind ours still means "in 45 s".
    camera_now = NOW - 9 * 365 * 86400
    headers = {"Retry-After": http_date(camera_now + 45), "Date": http_date(camera_now)}

    assert retry_after_s(429, headers, NOW) == 45.0


@pytest.mark.parametrize("value", NONSENSE.values(), ids=NONSENSE.keys())
def test_nonsense_is_ignored(value):
    assert retry_after_s(503, {"Retry-After": value}, NOW) is None


@pytest.mark.parametrize("status", [200, 301, 401, 500, 502, 504])
def test_only_429_and_503_are_honoured(status):
    assert retry_after_s(status, {"Retry-After": "30"}, NOW) is None


def test_no_header_is_no_wait():
    assert retry_after_s(503, {}, NOW) is None


def test_a_named_wait_is_kept_and_spread_by_at_most_a_tenth():
    assert Backoff(1.0, 60.0, rand=lambda: 0.0).at_least(30.0) == 30.0
    assert Backoff(1.0, 60.0, rand=lambda: 1.0).at_least(30.0) == pytest.approx(33.0)


# --- snapshot and MJPEG cameras against a busy camera on 127.0.0.1 -------------------------


class BusyCamera:
    """A camera that answers its first ``busy`` requests with ``status`` and a
    ``Retry-After`` of ``retry_after()`` (made at the moment of the answer), then serves
    real frames: ``/snapshot.jpg`` one per request, ``/video.mjpg`` a stream of them.
    ``request_times`` holds each request's ``time.monotonic()``, ``request_walls`` its
    ``time.time()``, ``retry_afters`` the values sent."""

    def __init__(self, status: int, retry_after: Callable[[], str], busy: int = 1) -> None:
        self.status = status
        self.retry_after = retry_after
        self.busy = busy
        self.request_times: list[float] = []
        self.request_walls: list[float] = []
        self.retry_afters: list[str] = []
        self._frames = itertools.cycle(PETS)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/snapshot.jpg", self._answer)
        app.router.add_get("/video.mjpg", self._answer)
        return app

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        self.request_times.append(time.monotonic())
        self.request_walls.append(time.time())
        if len(self.request_times) <= self.busy:
            self.retry_afters.append(self.retry_after())
            return web.Response(status=self.status, text="busy", headers={"Retry-After": self.retry_afters[-1]})
        if request.path == "/snapshot.jpg":
            return web.Response(body=next(self._frames), content_type="image/jpeg")
        response = web.StreamResponse(headers={"Content-Type": "multipart/x-mixed-replace; boundary=myboundary"})
        await response.prepare(request)
        for _ in range(600):  # a minute of frames, more than any test watches
            await response.write(part(next(self._frames)))
            await asyncio.sleep(0.1)
        return response


@pytest.fixture
def start_busy(aiohttp_server, start_proxy):
    """Serve ``fake`` and start a proxy with one camera ``cam`` of ``kind`` (snapshot or mjpeg) on it."""

    async def start(fake: BusyCamera, kind: str) -> Proxy:
        server = await aiohttp_server(fake.app())
        path = "/snapshot.jpg" if kind == "snapshot" else "/video.mjpg"
        return await start_proxy(
            CameraConfig(
                id="cam",
                source=(SnapshotConfig if kind == "snapshot" else MjpegConfig)(url=str(server.make_url(path))),
                fps=5,
            )
        )

    return start


async def a_camera_frame(proxy: Proxy, camera_id: str, frames: list[bytes] = PETS) -> bytes:
    """The first frame from the camera (not an offline picture) that a new viewer sees."""
    async with MjpegViewer(proxy.url(f"/cameras/{camera_id}/stream.mjpg")) as viewer:
        async with asyncio.timeout(15):
            while (jpeg := (await viewer.next_new_part()).jpeg) not in frames:
                pass
    return jpeg


@pytest.mark.parametrize("kind", ["snapshot", "mjpeg"])
@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_seconds_hold_back_the_next_request(start_busy, kind, status):
    fake = BusyCamera(status, lambda: "2")
    proxy = await start_busy(fake, kind)

    await a_camera_frame(proxy, "cam")

    first, second = fake.request_times[:2]
    assert second - first >= 2.0
    assert "asks for no request for 2 s" in proxy.camera("cam").stats.last_error


@pytest.mark.parametrize("kind", ["snapshot", "mjpeg"])
async def test_retry_after_date_holds_back_the_next_request_until_that_date(start_busy, kind):
    fake = BusyCamera(503, lambda: http_date(time.time() + 3))
    proxy = await start_busy(fake, kind)

    await a_camera_frame(proxy, "cam")

    assert fake.request_walls[1] >= parsedate_to_datetime(fake.retry_afters[0]).timestamp()


@pytest.mark.parametrize("kind", ["snapshot", "mjpeg"])
@pytest.mark.parametrize("value", NONSENSE.values(), ids=NONSENSE.keys())
async def test_nonsense_retry_after_falls_back_to_the_backoff(fast_retries, start_busy, kind, value):
    fake = BusyCamera(503, lambda: value, busy=3)
    proxy = await start_busy(fake, kind)

    # Frames come back within seconds: no absurd wait was taken from the header.
    await a_camera_frame(proxy, "cam")

    # And never a tight loop: each retry waited at least the backoff's shortest delay.
    gaps = [b - a for a, b in itertools.pairwise(fake.request_times[:4])]
    assert len(gaps) == 3
    assert min(gaps) >= fast_retries.backoff_s[0] / 2


# --- EEN: preview requests and logins ---------------------------------------------------


@pytest.fixture
def een() -> FakeEen:
    fake = FakeEen()
    fake.add_camera(FRONT, PETS, interval_s=0.1)
    return fake


@pytest.fixture
def start_een(aiohttp_server, start_proxy):
    """Serve ``fake`` and start a proxy with its camera ``FRONT``."""

    async def start(fake: FakeEen) -> Proxy:
        server = await aiohttp_server(fake.app())
        account = EenConfig(fake.username, fake.password, base_url=str(server.make_url("/")).rstrip("/"))
        return await start_proxy(CameraConfig(id=FRONT, source=EenCameraConfig(esn=FRONT, account=account)))

    return start


@pytest.mark.parametrize("status", [429, 503])
async def test_een_preview_retry_after_seconds_hold_back_that_camera(een, start_een, status):
    camera = een.cameras[FRONT]
    camera.fail_with, camera.fail_headers = [status], {"Retry-After": "2"}
    proxy = await start_een(een)

    await a_camera_frame(proxy, FRONT)

    first, second = camera.request_times[:2]
    assert second - first >= 2.0


async def test_een_preview_retry_after_date_holds_back_that_camera(een, start_een):
    wall, monotonic = time.time(), time.monotonic()
    until = http_date(wall + 4)
    camera = een.cameras[FRONT]
    camera.fail_with, camera.fail_headers = [503], {"Retry-After": until}
    proxy = await start_een(een)

    await a_camera_frame(proxy, FRONT)

    second_request_wall = wall + (camera.request_times[1] - monotonic)
    assert second_request_wall >= parsedate_to_datetime(until).timestamp() - 0.01  # 0.01: the two clocks' reading


@pytest.mark.parametrize("status", [429, 503])
async def test_een_login_retry_after_holds_back_the_next_login(een, start_een, status):
    een.login_status, een.login_headers = status, {"Retry-After": "2"}
    proxy = await start_een(een)
    await eventually(lambda: een.authenticate_calls == 1)
    een.login_status = None

    await a_camera_frame(proxy, FRONT)

    first, second = een.authenticate_times[:2]
    assert second - first >= 2.0
    assert een.logins == 1


@pytest.mark.parametrize("value", ["0", "soon", "Fri, 31 Dec 9999 23:59:59 GMT"], ids=["zero", "word", "far-date"])
async def test_een_nonsense_retry_after_falls_back_to_the_backoff(fast_retries, een, start_een, value):
    camera = een.cameras[FRONT]
    camera.fail_with, camera.fail_headers = [503] * 3, {"Retry-After": value}
    proxy = await start_een(een)

    await a_camera_frame(proxy, FRONT)

    gaps = [b - a for a, b in itertools.pairwise(camera.request_times[:4])]
    assert len(gaps) == 3
    assert min(gaps) >= fast_retries.backoff_s[0] / 2
