"""SnapshotSource against a mocked upstream (aioresponses), and the Pacer on a fake clock."""

from __future__ import annotations

import base64
import itertools
import random
from pathlib import Path

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from mjpeg_proxy.camera.errors import (
    AuthError,
    BadFrame,
    ForbiddenError,
    NotFoundError,
    UpstreamUnavailable,
)
from mjpeg_proxy.camera.timing import Clock
from mjpeg_proxy.sources.pacer import Pacer
from mjpeg_proxy.sources.snapshot import SnapshotConfig, SnapshotSource
from mjpeg_proxy.sources.upstream_hosts import UpstreamHosts

FRAMES_DIR = Path(__file__).parent / "data" / "frames" / "opencv-vtest-pets2009"
URL_ = "http://cam.test/snapshot.jpg"
SECRET_URL = "http://cam.test/snapshot.jpg?token=SECRETTOKEN"
PASSWORD = "hunter2-PASSWORD"
CAP = 1024 * 1024


@pytest.fixture
def jpeg() -> bytes:
    return (FRAMES_DIR / "frame_001.jpg").read_bytes()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def snapshot(http, url: str = URL_, pacer: Pacer | None = None, **kwargs) -> SnapshotSource:
    kwargs.setdefault("max_frame_bytes", CAP)
    return SnapshotSource(SnapshotConfig(url, **kwargs), pacer or Pacer(4.0), http, UpstreamHosts(4))


def sent_authorization(request) -> str | None:
    """The Authorization header value a recorded request was made with."""
    headers = request.kwargs.get("headers") or {}
    if "Authorization" in headers:
        return headers["Authorization"]
    auth = request.kwargs.get("auth")
    return auth.encode() if auth is not None else None


def assert_no_secret(error: BaseException) -> None:
    text = str(error)
    assert "SECRETTOKEN" not in text
    assert "token=" not in text
    assert PASSWORD not in text


# --- fetch: success ------------------------------------------------------------------


async def test_jpeg_answer_is_returned_byte_identical(http, upstream, jpeg):
    upstream.get(URL_, status=200, body=jpeg, content_type="image/jpeg")

    assert (await snapshot(http).fetch()).jpeg == jpeg


async def test_each_fetch_is_a_new_request_returning_the_new_picture(http, upstream):
    first, second = (FRAMES_DIR / "frame_001.jpg").read_bytes(), (FRAMES_DIR / "frame_002.jpg").read_bytes()
    upstream.get(URL_, body=first, content_type="image/jpeg")
    upstream.get(URL_, body=second, content_type="image/jpeg")
    source = snapshot(http)

    assert (await source.fetch()).jpeg == first
    assert (await source.fetch()).jpeg == second
    assert len(upstream.requests[("GET", URL(URL_))]) == 2


async def test_padding_after_the_picture_is_trimmed(http, upstream, jpeg):
    upstream.get(URL_, body=jpeg + b"\r\n", content_type="image/jpeg")

    assert (await snapshot(http).fetch()).jpeg == jpeg


async def test_body_of_exactly_the_cap_is_accepted(http, upstream, jpeg):
    upstream.get(URL_, body=jpeg, content_type="image/jpeg", headers={"Content-Length": str(len(jpeg))})

    assert (await snapshot(http, max_frame_bytes=len(jpeg)).fetch()).jpeg == jpeg


# --- fetch: HTTP status ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_class", "state"),
    [
        (401, AuthError, "auth_failed"),
        (403, ForbiddenError, "forbidden"),
        (404, NotFoundError, "not_found"),
        (500, UpstreamUnavailable, "unavailable"),
        (502, UpstreamUnavailable, "unavailable"),
        (503, UpstreamUnavailable, "unavailable"),
    ],
)
async def test_http_error_status_becomes_its_source_error(http, upstream, status, error_class, state):
    upstream.get(SECRET_URL, status=status, body=b"<html>nope</html>", content_type="text/html")

    with pytest.raises(error_class) as caught:
        await snapshot(http, SECRET_URL).fetch()

    assert caught.value.kind == state
    assert f"HTTP {status}" in str(caught.value)
    assert "http://cam.test/snapshot.jpg" in str(caught.value)
    assert_no_secret(caught.value)


async def test_401_message_hints_at_the_credentials(http, upstream):
    upstream.get(URL_, status=401)

    with pytest.raises(AuthError, match="username or password"):
        await snapshot(http, username="admin", password=PASSWORD, auth="basic").fetch()


async def test_4xx_other_than_401_403_404_is_unavailable(http, upstream):
    upstream.get(URL_, status=429)

    with pytest.raises(UpstreamUnavailable, match="HTTP 429"):
        await snapshot(http).fetch()


# --- fetch: bodies that are not one frame ----------------------------------------------


async def test_html_answer_with_status_200_is_never_a_frame(http, upstream):
    upstream.get(SECRET_URL, status=200, body="<!DOCTYPE html><html>login</html>", content_type="text/html")

    with pytest.raises(BadFrame, match="not a JPEG") as caught:
        await snapshot(http, SECRET_URL).fetch()
    assert_no_secret(caught.value)


async def test_empty_answer_is_never_a_frame(http, upstream):
    upstream.get(URL_, status=200, body=b"", content_type="image/jpeg")

    with pytest.raises(BadFrame):
        await snapshot(http).fetch()


async def test_jpeg_cut_short_is_never_a_frame(http, upstream, jpeg):
    upstream.get(URL_, status=200, body=jpeg[: len(jpeg) * 60 // 100], content_type="image/jpeg")

    with pytest.raises(BadFrame, match="incomplete JPEG"):
        await snapshot(http).fetch()


async def test_body_over_the_cap_with_content_length_is_refused(http, upstream, jpeg):
    upstream.get(URL_, body=jpeg, content_type="image/jpeg", headers={"Content-Length": str(len(jpeg))})

    with pytest.raises(BadFrame, match=str(len(jpeg) - 1)):
        await snapshot(http, max_frame_bytes=len(jpeg) - 1).fetch()


async def test_announced_size_over_the_cap_is_refused(http, upstream, jpeg):
    upstream.get(URL_, body=jpeg, content_type="image/jpeg", headers={"Content-Length": str(50 * CAP)})

    with pytest.raises(BadFrame, match=str(50 * CAP)):
        await snapshot(http).fetch()


async def test_body_over_the_cap_without_content_length_is_refused(http, upstream, jpeg):
    upstream.get(SECRET_URL, body=jpeg, content_type="image/jpeg")

    with pytest.raises(BadFrame, match=str(len(jpeg) - 1)) as caught:
        await snapshot(http, SECRET_URL, max_frame_bytes=len(jpeg) - 1).fetch()
    assert_no_secret(caught.value)


# --- fetch: network -----------------------------------------------------------------------


async def test_connection_error_is_unavailable(http, upstream):
    upstream.get(SECRET_URL, exception=aiohttp.ClientConnectionError())

    with pytest.raises(UpstreamUnavailable) as caught:
        await snapshot(http, SECRET_URL).fetch()
    assert "ClientConnectionError" in str(caught.value)
    assert_no_secret(caught.value)


async def test_server_disconnect_is_unavailable(http, upstream):
    upstream.get(URL_, exception=aiohttp.ServerDisconnectedError())

    with pytest.raises(UpstreamUnavailable, match="ServerDisconnectedError"):
        await snapshot(http).fetch()


@pytest.mark.parametrize(
    "timeout_error",
    [TimeoutError(), aiohttp.ServerTimeoutError(), aiohttp.ConnectionTimeoutError()],
    ids=lambda e: type(e).__name__,
)
async def test_timeout_is_unavailable(http, upstream, timeout_error):
    upstream.get(SECRET_URL, exception=timeout_error)

    with pytest.raises(UpstreamUnavailable, match="did not answer within 10 s") as caught:
        await snapshot(http, SECRET_URL).fetch()
    assert_no_secret(caught.value)


async def test_unmocked_url_is_unavailable_not_a_crash(http, upstream):
    # aioresponses answers a URL nobody mocked with a connection error, like a dead host.
    with pytest.raises(UpstreamUnavailable):
        await snapshot(http, "http://cam.test/other.jpg").fetch()


async def test_too_many_redirects_message_hides_the_query(http, upstream):
    # What aiohttp raises when a camera keeps redirecting to itself (seen on a real
    # 127.0.0.1 server: its str() ends with url='http://...?token=SECRETTOKEN').
    info = aiohttp.RequestInfo(URL(SECRET_URL), "GET", CIMultiDictProxy(CIMultiDict()), URL(SECRET_URL))
    upstream.get(SECRET_URL, exception=aiohttp.TooManyRedirects(info, ()))

    with pytest.raises(UpstreamUnavailable) as caught:
        await snapshot(http, SECRET_URL).fetch()
    assert_no_secret(caught.value)


# --- authentication ----------------------------------------------------------------------


async def test_basic_auth_sends_the_right_authorization_header(http, upstream, jpeg):
    upstream.get(URL_, body=jpeg, content_type="image/jpeg")

    await snapshot(http, username="admin", password=PASSWORD, auth="basic").fetch()

    (request,) = upstream.requests[("GET", URL(URL_))]
    expected = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    assert sent_authorization(request) == expected


async def test_username_without_auth_setting_means_basic(http, upstream, jpeg):
    upstream.get(URL_, body=jpeg, content_type="image/jpeg")

    await snapshot(http, username="admin", password=PASSWORD).fetch()

    (request,) = upstream.requests[("GET", URL(URL_))]
    assert sent_authorization(request) == "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()


async def test_digest_auth_never_sends_the_password_in_clear(http, upstream, jpeg):
    upstream.get(URL_, body=jpeg, content_type="image/jpeg")

    await snapshot(http, username="admin", password=PASSWORD, auth="digest").fetch()

    (request,) = upstream.requests[("GET", URL(URL_))]
    assert sent_authorization(request) is None
    assert [type(m) for m in request.kwargs["middlewares"]] == [aiohttp.DigestAuthMiddleware]


async def test_no_credentials_means_no_authorization(http, upstream, jpeg):
    upstream.get(URL_, body=jpeg, content_type="image/jpeg")

    await snapshot(http).fetch()

    (request,) = upstream.requests[("GET", URL(URL_))]
    assert sent_authorization(request) is None
    assert not request.kwargs["middlewares"]


async def test_auth_failure_message_holds_neither_password_nor_query(http, upstream):
    upstream.get(SECRET_URL, status=401)

    with pytest.raises(AuthError) as caught:
        await snapshot(http, SECRET_URL, username="admin", password=PASSWORD, auth="basic").fetch()
    assert_no_secret(caught.value)
    assert "admin" not in str(caught.value)


# --- Pacer and frames() on a fake clock ----------------------------------------------------


class FakeClock:
    """Stands in for time.monotonic and asyncio.sleep in the Pacers it makes (``pacer``)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def work(self, seconds: float) -> None:
        self.now += seconds

    def pacer(self, fps: float) -> Pacer:
        return Pacer(fps, Clock(monotonic=self.monotonic, sleep=self.sleep))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def ticks(pacer: Pacer, clock: FakeClock, work: list[float]) -> list[float]:
    """Tick once, then once after each work duration; return the clock at each tick's end."""
    times = []
    await pacer.tick()
    times.append(clock.now)
    for seconds in work:
        clock.work(seconds)
        await pacer.tick()
        times.append(clock.now)
    return times


async def test_first_tick_is_now(clock):
    clock.now = 1000.0

    await clock.pacer(4.0).tick()

    assert clock.sleeps == [0.0]
    assert clock.now == 1000.0


async def test_ticks_land_on_a_grid_of_one_over_fps(clock):
    assert await ticks(clock.pacer(4.0), clock, [0.0, 0.0, 0.0]) == [0.0, 0.25, 0.5, 0.75]
    assert clock.sleeps == [0.0, 0.25, 0.25, 0.25]


async def test_time_spent_working_is_taken_off_the_wait(clock):
    assert await ticks(clock.pacer(4.0), clock, [0.125, 0.0625, 0.25]) == [0.0, 0.25, 0.5, 0.75]
    assert clock.sleeps == [0.0, 0.125, 0.1875, 0.0]


async def test_missed_slot_is_skipped_not_made_up(clock):
    # Work took 0.625 s: slots 0.25 and 0.5 are gone; the next tick is 0.75, then 1.0.
    assert await ticks(clock.pacer(4.0), clock, [0.625, 0.0]) == [0.0, 0.75, 1.0]
    assert clock.sleeps == [0.0, 0.125, 0.25]


async def test_rate_never_rises_above_fps_whatever_the_work(clock):
    rng = random.Random(99)
    work = [rng.choice([0.0, 0.03125, 0.1875, 0.25, 0.40625, 1.0]) for _ in range(200)]

    times = await ticks(clock.pacer(4.0), clock, work)

    assert all(s >= 0 for s in clock.sleeps)
    assert all(later - earlier >= 0.25 for earlier, later in itertools.pairwise(times))
    assert all((t / 0.25).is_integer() for t in times)


async def test_after_a_pause_the_first_tick_is_at_once_not_on_the_old_grid(clock):
    pacer = clock.pacer(1.0)
    await ticks(pacer, clock, [0.0])  # ticks at 0 and 1
    clock.work(30.3)  # the camera was idle; the old grid's next slot would be 32.0

    pacer.restart()
    await pacer.tick()

    assert clock.now == 31.3
    await pacer.tick()
    assert clock.now == 32.3  # a new grid from there


async def test_restart_soon_after_a_tick_keeps_the_interval(clock):
    pacer = clock.pacer(4.0)
    await pacer.tick()  # at 0
    clock.work(0.05)  # a quick error and reconnect

    pacer.restart()
    await pacer.tick()

    assert clock.now == 0.25, "never two ticks within one interval"


async def test_frames_fetches_once_per_tick_and_stops_on_error(clock, http, upstream):
    pictures = [(FRAMES_DIR / f"frame_00{i}.jpg").read_bytes() for i in (1, 2, 3)]
    for picture in pictures:
        upstream.get(URL_, body=picture, content_type="image/jpeg")
    upstream.get(URL_, status=404)
    frames = snapshot(http, pacer=clock.pacer(4.0)).frames()

    got = [(await anext(frames)).jpeg for _ in pictures]
    with pytest.raises(NotFoundError):
        await anext(frames)

    assert got == pictures
    assert clock.sleeps == [0.0, 0.25, 0.25, 0.25]
    assert len(upstream.requests[("GET", URL(URL_))]) == 4
