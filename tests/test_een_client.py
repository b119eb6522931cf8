"""EenSession (EEN v1 login, authenticated GETs) and EenPreviewSource against mocked EEN hosts.

Every HTTP call goes to the ``upstream`` fixture (aioresponses); nothing reaches the network.
Protocol facts: the project's EEN notes (shared/EEN-API.md), sections 1 and 2.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from mjpeg_proxy.camera.errors import (
    AuthError,
    BadFrame,
    ForbiddenError,
    NotFoundError,
    SourceError,
    UpstreamUnavailable,
)
from mjpeg_proxy.camera.timing import Clock
from mjpeg_proxy.sources import een_session
from mjpeg_proxy.sources.een import EenPreviewSource, parse_een_timestamp
from mjpeg_proxy.sources.een_config import EenConfig
from mjpeg_proxy.sources.een_session import EenSession
from mjpeg_proxy.sources.een_timing import MIN_REQUEST_GAP_S, EenTiming

FRAMES_DIR = Path(__file__).parent / "data" / "frames" / "opencv-vtest-pets2009"
LOGIN = "https://login.eagleeyenetworks.com"
BRAND = "https://c001.eagleeyenetworks.com"
LOCAL = "http://127.0.0.1:9"
USERNAME = "preview-user-SECRETNAME@example.com"
PASSWORD = "pw-SECRETPASS-hunter2"
API_KEY = "apikey-SECRETKEY-9f8e7d6c"
TOKEN = "token-SECRETTOKEN-" + "x" * 40
AUTH_KEY = "c001~0123456789abcdef0123456789abcdef"
AUTH_KEY_2 = "c001~fedcba9876543210fedcba9876543210"
SECRETS = (USERNAME, PASSWORD, API_KEY, TOKEN, AUTH_KEY, AUTH_KEY_2, "0123456789abcdef", "fedcba9876543210")
ESN = "1006073b"
CAP = 4 * 1024 * 1024
TIMEOUT = aiohttp.ClientTimeout(total=5)
PARAMS = {"id": ESN, "timestamp": "now", "asset_class": "pre"}
STAMP_A = "preview-20180917213405.700"
STAMP_B = "preview-20180917213406.700"
EPOCH_A = 1537220045.7


@pytest.fixture
def jpegs() -> list[bytes]:
    return [(FRAMES_DIR / f"frame_{i:03d}.jpg").read_bytes() for i in (1, 2, 3)]


@pytest.fixture
async def make_session(upstream):
    """Build EenSessions; every one is closed at teardown (an unmocked logout fails, and is swallowed)."""
    sessions: list[EenSession] = []

    def make(**changes) -> EenSession:
        fields = {"username": USERNAME, "password": PASSWORD, "api_key": API_KEY, "base_url": LOGIN}
        fields.update(changes)
        session = EenSession(EenConfig(**fields))
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        await session.close()


NO_REPEAT_PAUSE = EenTiming(min_request_gap_s=0)
QUICK_LOGIN_RETRIES = EenTiming(refused_login_backoff_s=(0.001, 0.001), failed_login_backoff_s=(0.001, 0.001))


# --- helpers -----------------------------------------------------------------------------


def _key(method: str, url: str) -> tuple[str, URL]:
    u = URL(url)
    return method, u.with_query(sorted(u.query.items()))


def calls(upstream, method: str, url: str) -> list:
    """The recorded calls of ``method`` to ``url`` (query order does not matter)."""
    return upstream.requests.get(_key(method, url), [])


def sent_headers(call) -> dict[str, str]:
    return {k.lower(): v for k, v in (call.kwargs.get("headers") or {}).items()}


def image_url(which: str = "prev", host: str = BRAND) -> str:
    return f"{host}/asset/{which}/image.jpeg?id={ESN}&timestamp=now&asset_class=pre"


async def _yield_to_others(url, **kwargs):
    """aioresponses callback: let other tasks run while the "request" is in flight."""
    for _ in range(3):
        await asyncio.sleep(0)


def mock_login(
    upstream,
    *,
    base: str = LOGIN,
    auth_key: str = AUTH_KEY,
    subdomain: str | None = "c001",
    cookie: str = "auth_key",
    slow: bool = False,
) -> None:
    """One successful authenticate + authorize on ``base``."""
    callback = _yield_to_others if slow else None
    upstream.post(f"{base}/g/aaa/authenticate", payload={"token": TOKEN}, callback=callback)
    user = {"id": "ca0e1cf2", "user_id": "ca0e1cf2", "active_account_id": "00004206"}
    if subdomain is not None:
        user["active_brand_subdomain"] = subdomain
    upstream.post(
        f"{base}/g/aaa/authorize",
        payload=user,
        headers={"Set-Cookie": f"{cookie}={auth_key}; Path=/"},
        callback=callback,
    )


def mock_image(upstream, jpeg: bytes, which: str = "prev", host: str = BRAND, stamp: str | None = STAMP_A, **kw):
    headers = {"x-ee-timestamp": stamp} if stamp is not None else {}
    upstream.get(image_url(which, host), body=jpeg, content_type="image/jpeg", headers=headers, **kw)


async def get_image(session: EenSession, which: str = "prev"):
    return await session.get(f"/asset/{which}/image.jpeg", dict(PARAMS), TIMEOUT, CAP)


def assert_no_secret(error: BaseException) -> None:
    text = f"{error} {error!r}"
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked into {text!r}"


def count_authenticate(upstream, base: str = LOGIN) -> int:
    return len(calls(upstream, "POST", f"{base}/g/aaa/authenticate"))


# --- login request shapes ----------------------------------------------------------------


async def test_authenticate_posts_username_and_password_as_json(upstream, make_session, jpegs):
    mock_login(upstream)
    mock_image(upstream, jpegs[0])

    await get_image(make_session())

    [call] = calls(upstream, "POST", f"{LOGIN}/g/aaa/authenticate")
    assert call.kwargs["json"] == {"username": USERNAME, "password": PASSWORD}


async def test_authorize_posts_the_token_from_authenticate(upstream, make_session, jpegs):
    mock_login(upstream)
    mock_image(upstream, jpegs[0])

    await get_image(make_session())

    [call] = calls(upstream, "POST", f"{LOGIN}/g/aaa/authorize")
    assert call.kwargs["json"] == {"token": TOKEN}


@pytest.mark.parametrize("api_key", [API_KEY, None], ids=["with-key", "without-key"])
async def test_api_key_goes_raw_in_authorization_header_of_every_call(upstream, make_session, jpegs, api_key):
    mock_login(upstream)
    mock_image(upstream, jpegs[0])

    await get_image(make_session(api_key=api_key))

    sent = [
        *calls(upstream, "POST", f"{LOGIN}/g/aaa/authenticate"),
        *calls(upstream, "POST", f"{LOGIN}/g/aaa/authorize"),
        *calls(upstream, "GET", image_url("prev")),
    ]
    assert len(sent) == 3
    for call in sent:
        # No scheme, no colon: EEN's own clients send the key as it is; none when there is no key.
        assert sent_headers(call).get("authorization") == api_key
        assert "authentication" not in sent_headers(call)


async def test_preview_source_sends_auth_key_cookie_and_preview_query(upstream, make_session, jpegs):
    mock_login(upstream)
    mock_image(upstream, jpegs[0], "prev", stamp=STAMP_A)
    mock_image(upstream, jpegs[1], "next", stamp=STAMP_B)
    frames = EenPreviewSource(make_session(), ESN, CAP).frames()

    try:
        await anext(frames)
        await anext(frames)
    finally:
        await frames.aclose()

    for which in ("prev", "next"):
        [call] = calls(upstream, "GET", image_url(which))
        assert sent_headers(call)["cookie"] == f"auth_key={AUTH_KEY}"
    urls = [url for (method, url) in upstream.requests if method == "GET"]
    assert [url.path for url in urls] == ["/asset/prev/image.jpeg", "/asset/next/image.jpeg"]
    for url in urls:
        assert dict(url.query) == {"id": ESN, "timestamp": "now", "asset_class": "pre"}


async def test_image_calls_go_to_the_brand_subdomain_after_login(upstream, make_session, jpegs):
    mock_login(upstream, subdomain="c001")
    mock_image(upstream, jpegs[0], host=BRAND)

    status, body, _ = await get_image(make_session(base_url=LOGIN, use_brand_subdomain=True))

    assert (status, body) == (200, jpegs[0])
    assert len(calls(upstream, "GET", image_url("prev", BRAND))) == 1
    assert calls(upstream, "GET", image_url("prev", LOGIN)) == []


async def test_brand_subdomain_is_not_used_when_turned_off(upstream, make_session, jpegs):
    mock_login(upstream, subdomain="c001")
    mock_image(upstream, jpegs[0], host=LOGIN)

    status, _, _ = await get_image(make_session(use_brand_subdomain=False))

    assert status == 200
    assert len(calls(upstream, "GET", image_url("prev", LOGIN))) == 1


async def test_brand_subdomain_is_not_applied_to_a_host_outside_een(upstream, make_session, jpegs):
    mock_login(upstream, base=LOCAL, subdomain="c001")
    mock_image(upstream, jpegs[0], host=LOCAL)

    status, body, _ = await get_image(make_session(base_url=LOCAL, use_brand_subdomain=True))

    assert (status, body) == (200, jpegs[0])
    assert len(calls(upstream, "GET", image_url("prev", LOCAL))) == 1


async def test_a_malformed_brand_subdomain_is_ignored(upstream, make_session, jpegs):
    mock_login(upstream, subdomain="evil.example.com/x")
    mock_image(upstream, jpegs[0], host=LOGIN)

    status, _, _ = await get_image(make_session())

    assert status == 200
    assert len(calls(upstream, "GET", image_url("prev", LOGIN))) == 1


async def test_legacy_videobank_sessionid_cookie_is_accepted(upstream, make_session, jpegs):
    mock_login(upstream, cookie="videobank_sessionid", auth_key=AUTH_KEY)
    mock_image(upstream, jpegs[0])

    status, body, _ = await get_image(make_session())

    assert (status, body) == (200, jpegs[0])
    [call] = calls(upstream, "GET", image_url("prev"))
    assert sent_headers(call)["cookie"] == f"auth_key={AUTH_KEY}"


# --- login failures ----------------------------------------------------------------------


async def test_authorize_without_cookie_is_upstream_unavailable(upstream, make_session):
    upstream.post(f"{LOGIN}/g/aaa/authenticate", payload={"token": TOKEN})
    upstream.post(f"{LOGIN}/g/aaa/authorize", payload={"active_brand_subdomain": "c001"})

    with pytest.raises(UpstreamUnavailable, match="auth_key cookie") as caught:
        await get_image(make_session())

    assert_no_secret(caught.value)
    assert calls(upstream, "GET", image_url("prev")) == []


@pytest.mark.parametrize("answer", [{}, {"token": ""}, {"token": 12345}], ids=["missing", "empty", "not-a-string"])
async def test_authenticate_without_token_is_upstream_unavailable(upstream, make_session, answer):
    upstream.post(f"{LOGIN}/g/aaa/authenticate", payload=answer)

    with pytest.raises(UpstreamUnavailable, match="without a token") as caught:
        await get_image(make_session())

    assert_no_secret(caught.value)
    assert calls(upstream, "POST", f"{LOGIN}/g/aaa/authorize") == []


async def test_authenticate_answering_non_json_is_upstream_unavailable(upstream, make_session):
    upstream.post(f"{LOGIN}/g/aaa/authenticate", body="<html>maintenance</html>", content_type="text/html")

    with pytest.raises(UpstreamUnavailable, match="other than JSON") as caught:
        await get_image(make_session())

    assert_no_secret(caught.value)


async def test_two_factor_answer_is_an_auth_error(upstream, make_session):
    upstream.post(
        f"{LOGIN}/g/aaa/authenticate",
        payload={"token": TOKEN, "two_factor_authentication_code": {"sms": "*** *** 779", "email": "***@gmail.com"}},
    )

    with pytest.raises(AuthError, match="two-factor") as caught:
        await get_image(make_session())

    assert_no_secret(caught.value)
    assert calls(upstream, "POST", f"{LOGIN}/g/aaa/authorize") == []


@pytest.mark.parametrize("status", [401, 402, 412, 429, 460, 461, 462])
async def test_login_refusal_is_an_auth_error_with_its_reason(upstream, make_session, status):
    upstream.post(f"{LOGIN}/g/aaa/authenticate", status=status, payload={"status_code": status})

    with pytest.raises(AuthError) as caught:
        await get_image(make_session())

    message = str(caught.value)
    assert een_session._LOGIN_REFUSALS[status] in message
    assert f"HTTP {status}" in message
    assert_no_secret(caught.value)


async def test_refused_token_at_authorize_is_not_called_a_wrong_password(upstream, make_session):
    # The password was accepted a moment ago; a refused token is EEN's trouble, retried soon.
    upstream.post(f"{LOGIN}/g/aaa/authenticate", payload={"token": TOKEN})
    upstream.post(f"{LOGIN}/g/aaa/authorize", status=401)

    with pytest.raises(UpstreamUnavailable, match="authorize") as caught:
        await get_image(make_session())

    assert_no_secret(caught.value)


@pytest.mark.parametrize("status", [500, 503])
async def test_login_server_error_is_upstream_unavailable(upstream, make_session, status):
    upstream.post(f"{LOGIN}/g/aaa/authenticate", status=status)

    with pytest.raises(UpstreamUnavailable, match=f"HTTP {status}") as caught:
        await get_image(make_session())

    assert_no_secret(caught.value)


@pytest.mark.parametrize(
    "exception",
    [
        aiohttp.ClientConnectionError(f"Connection refused: POST {LOGIN}/g/aaa/authenticate?A={AUTH_KEY}"),
        aiohttp.ServerDisconnectedError(),
        TimeoutError(),
    ],
    ids=["connection-error", "disconnected", "timeout"],
)
async def test_login_network_error_is_upstream_unavailable(upstream, make_session, exception):
    upstream.post(f"{LOGIN}/g/aaa/authenticate", exception=exception)

    with pytest.raises(UpstreamUnavailable) as caught:
        await get_image(make_session())

    assert_no_secret(caught.value)
    assert "eagleeyenetworks.com" not in str(caught.value)


# --- login backoff -----------------------------------------------------------------------


async def test_refused_login_is_not_retried_at_once(upstream, make_session):
    upstream.post(f"{LOGIN}/g/aaa/authenticate", status=401, repeat=True)
    session = make_session()

    with pytest.raises(AuthError) as first:
        await get_image(session)
    with pytest.raises(AuthError) as second:
        await get_image(session)

    assert str(second.value) == str(first.value)
    assert count_authenticate(upstream) == 1
    assert_no_secret(second.value)


async def test_failed_login_is_not_retried_at_once(upstream, make_session):
    upstream.post(f"{LOGIN}/g/aaa/authenticate", status=503, repeat=True)
    session = make_session()

    with pytest.raises(UpstreamUnavailable):
        await get_image(session)
    with pytest.raises(UpstreamUnavailable):
        await get_image(session)

    assert count_authenticate(upstream) == 1


async def test_concurrent_requests_after_a_failed_login_share_the_failure(upstream, make_session):
    upstream.post(f"{LOGIN}/g/aaa/authenticate", status=503, repeat=True, callback=_yield_to_others)
    session = make_session()

    results = await asyncio.gather(get_image(session), get_image(session), return_exceptions=True)

    assert all(isinstance(result, UpstreamUnavailable) for result in results)
    assert count_authenticate(upstream) == 1


async def test_refused_login_is_retried_after_its_backoff(upstream, make_session, jpegs):
    upstream.post(f"{LOGIN}/g/aaa/authenticate", status=401)
    session = make_session(timing=EenTiming(refused_login_backoff_s=(0.001, 0.001)))
    with pytest.raises(AuthError):
        await get_image(session)

    await asyncio.sleep(0.01)  # the (tiny) backoff under test
    mock_login(upstream)
    mock_image(upstream, jpegs[0])
    status, body, _ = await get_image(session)

    assert (status, body) == (200, jpegs[0])
    assert count_authenticate(upstream) == 2
    assert len(calls(upstream, "POST", f"{LOGIN}/g/aaa/authorize")) == 1, "one login went through"


async def test_failed_login_is_retried_after_its_backoff(upstream, make_session, jpegs):
    upstream.post(f"{LOGIN}/g/aaa/authenticate", status=503)
    session = make_session(timing=EenTiming(failed_login_backoff_s=(0.001, 0.001)))
    with pytest.raises(UpstreamUnavailable):
        await get_image(session)

    await asyncio.sleep(0.01)  # the (tiny) backoff under test
    mock_login(upstream)
    mock_image(upstream, jpegs[0])
    status, _, _ = await get_image(session)

    assert status == 200
    assert count_authenticate(upstream) == 2


# --- authenticated GETs ------------------------------------------------------------------


async def test_401_logs_in_again_and_retries_with_the_new_auth_key(upstream, make_session, jpegs):
    mock_login(upstream, auth_key=AUTH_KEY)
    mock_login(upstream, auth_key=AUTH_KEY_2)
    upstream.get(image_url("prev"), status=401)
    mock_image(upstream, jpegs[0])
    session = make_session()

    status, body, _ = await get_image(session)

    assert (status, body) == (200, jpegs[0])
    assert count_authenticate(upstream) == 2
    assert len(calls(upstream, "POST", f"{LOGIN}/g/aaa/authorize")) == 2
    first, retried = calls(upstream, "GET", image_url("prev"))
    assert sent_headers(first)["cookie"] == f"auth_key={AUTH_KEY}"
    assert sent_headers(retried)["cookie"] == f"auth_key={AUTH_KEY_2}"


async def test_401_after_a_fresh_login_is_an_auth_error(upstream, make_session):
    mock_login(upstream, auth_key=AUTH_KEY)
    mock_login(upstream, auth_key=AUTH_KEY_2)
    upstream.get(image_url("prev"), status=401, repeat=True)

    with pytest.raises(AuthError) as caught:
        await get_image(make_session())

    assert count_authenticate(upstream) == 2
    assert len(calls(upstream, "GET", image_url("prev"))) == 2
    assert_no_secret(caught.value)


async def test_concurrent_401s_share_one_new_login(upstream, make_session, jpegs):
    mock_login(upstream, auth_key=AUTH_KEY)
    mock_login(upstream, auth_key=AUTH_KEY_2, slow=True)
    mock_image(upstream, jpegs[0])  # the first request logs in
    upstream.get(image_url("prev"), status=401, repeat=2, callback=_yield_to_others)
    mock_image(upstream, jpegs[0], repeat=2)
    session = make_session()
    await get_image(session)

    results = await asyncio.gather(get_image(session), get_image(session))

    assert [status for status, _, _ in results] == [200, 200]
    assert count_authenticate(upstream) == 2
    cookies = [sent_headers(call)["cookie"] for call in calls(upstream, "GET", image_url("prev"))]
    assert cookies == [f"auth_key={AUTH_KEY}"] * 3 + [f"auth_key={AUTH_KEY_2}"] * 2


@pytest.mark.parametrize("status, error", [(403, ForbiddenError), (404, NotFoundError)])
async def test_403_and_404_raise_their_errors(upstream, make_session, status, error):
    mock_login(upstream)
    upstream.get(image_url("prev"), status=status)

    with pytest.raises(error) as caught:
        await get_image(make_session())

    assert str(status) in str(caught.value)
    assert_no_secret(caught.value)
    assert count_authenticate(upstream) == 1


async def test_other_status_is_returned_to_the_caller(upstream, make_session):
    mock_login(upstream)
    upstream.get(image_url("prev"), status=500, body="oops")

    status, body, _ = await get_image(make_session())

    assert (status, body) == (500, b"")


async def test_network_error_of_the_get_is_upstream_unavailable(upstream, make_session):
    mock_login(upstream)
    upstream.get(image_url("prev"), exception=aiohttp.ClientConnectionError(f"failed {image_url('prev')}"))

    with pytest.raises(UpstreamUnavailable) as caught:
        await get_image(make_session())

    assert_no_secret(caught.value)
    assert "eagleeyenetworks.com" not in str(caught.value)
    assert "id=" not in str(caught.value)


async def test_timeout_of_the_get_is_reraised(upstream, make_session):
    mock_login(upstream)
    upstream.get(image_url("prev"), exception=TimeoutError())

    with pytest.raises(TimeoutError):
        await get_image(make_session())


async def test_body_over_the_cap_is_a_bad_frame(upstream, make_session, jpegs):
    mock_login(upstream)
    mock_image(upstream, jpegs[0])

    with pytest.raises(BadFrame, match="cap"):
        await make_session().get("/asset/prev/image.jpeg", dict(PARAMS), TIMEOUT, 1000)


async def test_concurrent_first_requests_share_one_login(upstream, make_session, jpegs):
    mock_login(upstream, slow=True)
    mock_image(upstream, jpegs[0], repeat=True)
    session = make_session()

    results = await asyncio.gather(get_image(session), get_image(session))

    assert [status for status, _, _ in results] == [200, 200]
    assert count_authenticate(upstream) == 1
    assert len(calls(upstream, "POST", f"{LOGIN}/g/aaa/authorize")) == 1


# --- EenPreviewSource --------------------------------------------------------------------


async def test_preview_frames_carry_the_body_and_the_een_timestamp(upstream, make_session, jpegs):
    mock_login(upstream)
    mock_image(upstream, jpegs[0], "prev", stamp=STAMP_A)
    mock_image(upstream, jpegs[1], "next", stamp=STAMP_B)
    frames = EenPreviewSource(make_session(), ESN, CAP).frames()

    try:
        first = await anext(frames)
        second = await anext(frames)
    finally:
        await frames.aclose()

    assert first.jpeg == jpegs[0]
    assert first.upstream_time == pytest.approx(EPOCH_A)
    assert second.jpeg == jpegs[1]
    assert second.upstream_time == pytest.approx(EPOCH_A + 1)


async def test_preview_without_timestamp_header_has_no_upstream_time(upstream, make_session, jpegs):
    mock_login(upstream)
    mock_image(upstream, jpegs[0], "prev", stamp=None)
    frames = EenPreviewSource(make_session(), ESN, CAP).frames()

    try:
        frame = await anext(frames)
    finally:
        await frames.aclose()

    assert frame.jpeg == jpegs[0]
    assert frame.upstream_time is None


async def test_preview_that_is_not_a_jpeg_is_a_bad_frame(upstream, make_session):
    mock_login(upstream)
    upstream.get(image_url("prev"), body=b"<html>not an image</html>", content_type="text/html")
    frames = EenPreviewSource(make_session(), ESN, CAP).frames()

    try:
        with pytest.raises(BadFrame, match=ESN) as caught:
            await anext(frames)
    finally:
        await frames.aclose()

    assert_no_secret(caught.value)


async def test_preview_with_the_last_timestamp_is_skipped(upstream, make_session, jpegs):
    mock_login(upstream)
    mock_image(upstream, jpegs[0], "prev", stamp=STAMP_A)
    mock_image(upstream, jpegs[1], "next", stamp=STAMP_A)
    mock_image(upstream, jpegs[2], "next", stamp=STAMP_B)
    frames = EenPreviewSource(make_session(timing=NO_REPEAT_PAUSE), ESN, CAP).frames()

    try:
        first = await anext(frames)
        second = await anext(frames)
    finally:
        await frames.aclose()

    assert (first.jpeg, second.jpeg) == (jpegs[0], jpegs[2])
    assert len(calls(upstream, "GET", image_url("next"))) == 2


async def test_preview_requests_start_the_least_gap_apart_on_the_given_clock(upstream, make_session, jpegs):
    mock_login(upstream)
    mock_image(upstream, jpegs[0], "prev", stamp=STAMP_A)
    mock_image(upstream, jpegs[1], "next", stamp=STAMP_A)
    mock_image(upstream, jpegs[2], "next", stamp=STAMP_B)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    clock = Clock(monotonic=lambda: 100.0, sleep=sleep)
    frames = EenPreviewSource(make_session(), ESN, CAP, clock).frames()

    try:
        await anext(frames)
        await anext(frames)
    finally:
        await frames.aclose()

    assert sleeps[0] <= 0, "the first request starts at once"
    assert sleeps[1:] == [MIN_REQUEST_GAP_S, MIN_REQUEST_GAP_S]


async def test_preview_timeout_means_no_frame_yet(upstream, make_session, jpegs):
    mock_login(upstream)
    upstream.get(image_url("prev"), exception=TimeoutError())
    mock_image(upstream, jpegs[0], "next")
    frames = EenPreviewSource(make_session(), ESN, CAP).frames()

    try:
        frame = await anext(frames)
    finally:
        await frames.aclose()

    assert frame.jpeg == jpegs[0]
    assert len(calls(upstream, "GET", image_url("prev"))) == 1
    assert len(calls(upstream, "GET", image_url("next"))) == 1


async def test_preview_socket_read_timeout_means_no_frame_yet(upstream, make_session, jpegs):
    mock_login(upstream)
    upstream.get(image_url("prev"), exception=aiohttp.SocketTimeoutError("Timeout on reading data from socket"))
    mock_image(upstream, jpegs[0], "next")
    frames = EenPreviewSource(make_session(), ESN, CAP).frames()

    try:
        frame = await anext(frames)
    finally:
        await frames.aclose()

    assert frame.jpeg == jpegs[0]


async def test_preview_408_means_no_frame_yet(upstream, make_session, jpegs):
    mock_login(upstream)
    upstream.get(image_url("prev"), status=408)
    mock_image(upstream, jpegs[0], "next")
    frames = EenPreviewSource(make_session(), ESN, CAP).frames()

    try:
        frame = await anext(frames)
    finally:
        await frames.aclose()

    assert frame.jpeg == jpegs[0]


async def test_preview_server_error_is_upstream_unavailable(upstream, make_session):
    mock_login(upstream)
    upstream.get(image_url("prev"), status=500)
    frames = EenPreviewSource(make_session(), ESN, CAP).frames()

    try:
        with pytest.raises(UpstreamUnavailable, match="HTTP 500") as caught:
            await anext(frames)
    finally:
        await frames.aclose()

    assert_no_secret(caught.value)


# --- parse_een_timestamp -----------------------------------------------------------------


@pytest.mark.parametrize(
    "header, expected",
    [
        ("preview-20180917213405.700", 1537220045.7),
        ("thumb-20180917213405.700", 1537220045.7),
        ("preview-20180102083020.000", 1514881820.0),
    ],
)
def test_parse_een_timestamp_reads_utc_een_timestamps(header, expected):
    assert parse_een_timestamp(header) == pytest.approx(expected)


@pytest.mark.parametrize(
    "header",
    [None, "", "garbage", "preview-", "preview-yesterday", "20180917213405.700", "preview-20181317213405.700"],
)
def test_parse_een_timestamp_returns_none_for_missing_or_garbage(header):
    assert parse_een_timestamp(header) is None


# --- secrets -----------------------------------------------------------------------------


async def test_no_secret_reaches_errors_or_logs(upstream, make_session, jpegs, caplog):
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []

    async def expect(error_type, call):
        with pytest.raises(error_type) as caught:
            await call
        errors.append(caught.value)

    # Refused, failed and two-factor logins; each followed by the fast-failing repeat.
    session = make_session(timing=QUICK_LOGIN_RETRIES)
    for answer in ({"status": 401}, {"status": 503}, {"exception": aiohttp.ClientConnectionError(TOKEN)}):
        upstream.post(f"{LOGIN}/g/aaa/authenticate", **answer)
        await expect(SourceError, get_image(session))
        await expect(SourceError, get_image(session))
        await asyncio.sleep(0.01)
    upstream.post(f"{LOGIN}/g/aaa/authenticate", payload={"token": TOKEN, "two_factor_authentication_code": {}})
    await expect(AuthError, get_image(session))
    await asyncio.sleep(0.01)
    upstream.post(f"{LOGIN}/g/aaa/authenticate", payload={"token": TOKEN})
    upstream.post(f"{LOGIN}/g/aaa/authorize", payload={})
    await expect(UpstreamUnavailable, get_image(session))
    await asyncio.sleep(0.01)

    # A login, an expiry with a new login, 401 twice, 403, 404, network errors, 500, a bad body.
    mock_login(upstream, auth_key=AUTH_KEY)
    mock_login(upstream, auth_key=AUTH_KEY_2)
    mock_login(upstream, auth_key=AUTH_KEY)
    upstream.get(image_url("prev"), status=401)
    mock_image(upstream, jpegs[0])
    assert (await get_image(session))[0] == 200
    upstream.get(image_url("prev"), status=401, repeat=2)
    await expect(AuthError, get_image(session))
    upstream.get(image_url("prev"), status=403)
    await expect(ForbiddenError, get_image(session))
    upstream.get(image_url("prev"), status=404)
    await expect(NotFoundError, get_image(session))
    upstream.get(image_url("prev"), exception=aiohttp.ClientConnectionError(image_url("prev") + AUTH_KEY))
    await expect(UpstreamUnavailable, get_image(session))
    upstream.get(image_url("prev"), status=500)
    frames = EenPreviewSource(session, ESN, CAP).frames()
    await expect(UpstreamUnavailable, anext(frames))
    await frames.aclose()
    frames = EenPreviewSource(session, ESN, CAP).frames()
    upstream.get(image_url("prev"), body=b"not a jpeg")
    await expect(BadFrame, anext(frames))
    await frames.aclose()
    upstream.post(f"{BRAND}/g/aaa/logout", exception=aiohttp.ClientConnectionError(AUTH_KEY))
    await session.close()

    assert len(errors) == 14
    for error in errors:
        assert_no_secret(error)
    assert "EEN" in caplog.text  # the session did log
    for secret in SECRETS:
        assert secret not in caplog.text


# --- close() -----------------------------------------------------------------------------


async def test_close_logs_out_with_the_auth_key(upstream, make_session, jpegs):
    mock_login(upstream)
    mock_image(upstream, jpegs[0])
    upstream.post(f"{BRAND}/g/aaa/logout", status=204)
    session = make_session()
    await get_image(session)

    await session.close()

    [call] = calls(upstream, "POST", f"{BRAND}/g/aaa/logout")
    assert sent_headers(call)["cookie"] == f"auth_key={AUTH_KEY}"
    assert sent_headers(call)["authorization"] == API_KEY


async def test_close_without_login_does_not_log_out(upstream, make_session):
    await make_session().close()

    assert upstream.requests == {}


@pytest.mark.parametrize(
    "exception", [aiohttp.ClientConnectionError("refused"), TimeoutError()], ids=["network", "timeout"]
)
async def test_close_swallows_a_failing_logout(upstream, make_session, jpegs, exception):
    mock_login(upstream)
    mock_image(upstream, jpegs[0])
    upstream.post(f"{BRAND}/g/aaa/logout", exception=exception)
    session = make_session()
    await get_image(session)

    await session.close()

    assert len(calls(upstream, "POST", f"{BRAND}/g/aaa/logout")) == 1
