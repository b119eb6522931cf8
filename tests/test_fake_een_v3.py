"""The fake EEN API v3 (tests/fake_een_v3.py) against aiohttp's client on 127.0.0.1.

Protocol facts: the project's EEN notes (shared/EEN-API.md), sections 3.1-3.4. No sleeps:
the tests tick the cameras, and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from yarl import URL

from tests.fake_een_v3 import MULTIPART_PATH, FakeEenV3, FakeEenV3Camera
from tests.helpers import real_frames

REDIRECT = "http://127.0.0.1:3333/callback"
FRONT, GATE, HIDDEN, DARK = "1006073b", "100a5e1f", "1001dead", "10010ff1"
PETS = real_frames()[:4]
RUNWAY = real_frames("axis-runway-webcam-640x480")[:3]
WAIT_S = 5.0
ISO_MS_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")


@pytest.fixture
def fake() -> FakeEenV3:
    fake = FakeEenV3(redirect_uris=(REDIRECT,))
    fake.add_camera(FRONT, PETS)
    fake.add_camera(GATE, RUNWAY)
    fake.add_camera(HIDDEN, PETS, allowed=False)
    fake.add_camera(DARK, PETS).online = False
    return fake


@pytest.fixture
async def een(aiohttp_server, fake):
    """The served fake and a client session on it: ``(base URL, session)``."""
    server = await aiohttp_server(fake.app())
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT_S)) as session:
        yield server.make_url(""), session


def basic(fake: FakeEenV3) -> dict[str, str]:
    return {"Authorization": aiohttp.encode_basic_auth(fake.client_id, fake.client_secret)}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def authorize(base: URL, session: aiohttp.ClientSession, fake: FakeEenV3, redirect: str = REDIRECT):
    params = {"scope": "vms.all", "client_id": fake.client_id, "response_type": "code", "redirect_uri": redirect}
    return await session.get(base / "oauth2/authorize", params={**params, "state": "s-42"}, allow_redirects=False)


async def get_code(base: URL, session: aiohttp.ClientSession, fake: FakeEenV3) -> str:
    async with await authorize(base, session, fake) as response:
        assert response.status == 302
        return parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]


async def token(base: URL, session: aiohttp.ClientSession, fake: FakeEenV3, **form: str) -> aiohttp.ClientResponse:
    return await session.post(base / "oauth2/token", data={"scope": "vms.all", **form}, headers=basic(fake))


async def login(base: URL, session: aiohttp.ClientSession, fake: FakeEenV3) -> dict:
    code = await get_code(base, session, fake)
    async with await token(base, session, fake, grant_type="authorization_code", code=code, redirect_uri=REDIRECT) as r:
        assert r.status == 200
        return await r.json()


async def assert_v3_error(response: aiohttp.ClientResponse, status: int, name: str) -> None:
    assert response.status == status
    body = await response.json()
    assert body["code"] == status and body["status"] == name and body["message"]
    assert body["details"] == [
        {"type": "errorInfo", "reason": name, "domain": "apiv3", "metadata": {"path": response.url.path}}
    ]


async def wait_for(fake: FakeEenV3, predicate) -> None:
    async with asyncio.timeout(WAIT_S):
        await fake.until(predicate)


async def tick_when_waiting(fake: FakeEenV3, camera: FakeEenV3Camera, field: str) -> None:
    """Tick ``camera`` once a request has reached it (``field`` counts them), not before."""
    start = getattr(camera, field)
    await wait_for(fake, lambda: getattr(camera, field) > start)
    camera.tick()


async def test_authorize_code_token_settings_feeds_and_multipart_frames_byte_identical(een, fake):
    base, session = een
    async with await authorize(base, session, fake) as response:
        assert response.status == 302
        location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    assert query["state"] == ["s-42"]
    code = query["code"][0]

    async with await token(base, session, fake, grant_type="authorization_code", code=code, redirect_uri=REDIRECT) as r:
        assert r.status == 200
        tokens = await r.json()
    assert tokens["token_type"] == "Bearer" and tokens["scope"] == "vms.all"
    assert tokens["expires_in"] == 43198 and tokens["access_token"].count(".") == 2 and tokens["refresh_token"]
    assert tokens["httpsBaseUrl"] == {"hostname": base.host, "port": base.port}
    assert fake.token_requests == {"authorization_code": 1}

    api = URL.build(scheme="http", host=tokens["httpsBaseUrl"]["hostname"], port=tokens["httpsBaseUrl"]["port"])
    headers = bearer(tokens["access_token"])
    async with session.get(api / "api/v3.0/clientSettings", headers=headers) as r:
        assert await r.json() == {"httpsBaseUrl": tokens["httpsBaseUrl"]}

    params = {"deviceId": FRONT, "type": "preview", "include": "multipartUrl"}
    async with session.get(api / "api/v3.0/feeds", params=params, headers=headers) as r:
        feeds = await r.json()
    assert feeds["totalSize"] == 1 and feeds["nextPageToken"] == ""
    (feed,) = feeds["results"]
    assert {k: feed[k] for k in ("id", "type", "deviceId", "mediaType")} == {
        "id": f"{FRONT}-preview",
        "type": "preview",
        "deviceId": FRONT,
        "mediaType": "video",
    }
    multipart = URL(feed["multipartUrl"])
    assert (multipart.host, multipart.port, multipart.path) == (base.host, base.port, MULTIPART_PATH)
    assert multipart.query["esn"] == FRONT and multipart.query["stream_session"]

    camera = fake.cameras[FRONT]
    camera.tick()  # an image before the stream opens is not sent
    async with session.get(multipart, headers=headers) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == f"multipart/x-mixed-replace; boundary={fake.boundary}"
        await wait_for(fake, lambda: camera.open_streams == 1)
        assert fake.open_streams == 1
        received = []
        for _ in range(len(PETS) + 1):
            camera.tick()
            assert await r.content.readexactly(len(fake.boundary) + 4) == f"--{fake.boundary}\r\n".encode()
            head = (await r.content.readuntil(b"\r\n\r\n")).decode()
            length = int(re.search(r"Content-Length: (\d+)\r\n", head)[1])
            assert "Content-Type: image/jpeg\r\n" in head
            received.append(await r.content.readexactly(length))
            assert await r.content.readexactly(2) == b"\r\n"
    assert received == PETS[1:] + PETS[:2]
    assert camera.parts_sent == 5
    await wait_for(fake, lambda: fake.open_streams == 0)
    assert camera.open_streams == 0 and fake.max_open_streams == 1
    assert fake.requests[MULTIPART_PATH] == 1 and fake.camera_requests[FRONT] == 2  # feeds + stream


async def test_multipart_stream_ends_after_the_part_limit(een, fake):
    base, session = een
    fake.stream_part_limit = 2
    tokens = await login(base, session, fake)
    params = {"deviceId": GATE, "type": "preview", "include": "multipartUrl"}
    async with session.get(base / "api/v3.0/feeds", params=params, headers=bearer(tokens["access_token"])) as r:
        url = (await r.json())["results"][0]["multipartUrl"]
    async with session.get(url, headers=bearer(tokens["access_token"])) as r:
        reader = aiohttp.MultipartReader(r.headers, r.content)
        ticks = asyncio.create_task(tick_twice(fake, fake.cameras[GATE]))
        parts = []
        while (part := await reader.next()) is not None:
            parts.append(await part.read())
        await ticks
    assert parts == RUNWAY[:2]


async def tick_twice(fake: FakeEenV3, camera: FakeEenV3Camera) -> None:
    await wait_for(fake, lambda: camera.open_streams == 1)
    camera.tick()
    await wait_for(fake, lambda: camera.parts_sent == 1)
    camera.tick()


async def test_live_image_waits_for_the_next_tick_and_stamps_it(een, fake):
    base, session = een
    tokens = await login(base, session, fake)
    camera = fake.cameras[FRONT]
    camera.tick()  # an earlier image is not the answer
    headers = {**bearer(tokens["access_token"]), "Accept": "image/jpeg"}
    params = {"deviceId": FRONT, "type": "preview"}
    request = asyncio.create_task(session.get(base / "api/v3.0/media/liveImage.jpeg", params=params, headers=headers))
    await wait_for(fake, lambda: camera.live_image_requests == 1)
    assert not request.done()
    image = camera.tick()
    async with await request as r:
        assert r.status == 200 and r.content_type == "image/jpeg"
        assert await r.read() == PETS[1] == image.jpeg
        stamp = r.headers["X-Een-Timestamp"]
    assert ISO_MS_UTC.match(stamp) and stamp == image.timestamp
    assert datetime.fromisoformat(stamp) > datetime.fromisoformat(camera.images[0].timestamp)


async def test_a_camera_with_an_interval_ticks_by_timer(aiohttp_server):
    fake = FakeEenV3(redirect_uris=(REDIRECT,))
    camera = fake.add_camera(FRONT, PETS, interval_s=0.01)
    await aiohttp_server(fake.app())
    await wait_for(fake, lambda: len(camera.images) >= 3)
    assert [image.jpeg for image in camera.images[:3]] == PETS[:3]


async def test_refresh_rotates_and_kills_the_old_refresh_and_access_tokens_at_once(een, fake):
    base, session = een
    first = await login(base, session, fake)
    async with await token(base, session, fake, grant_type="refresh_token", refresh_token=first["refresh_token"]) as r:
        assert r.status == 200
        second = await r.json()
    assert second["refresh_token"] != first["refresh_token"] and second["access_token"] != first["access_token"]
    settings = base / "api/v3.0/clientSettings"
    async with session.get(settings, headers=bearer(first["access_token"])) as r:
        await assert_v3_error(r, 401, "unauthenticated")
    async with session.get(settings, headers=bearer(second["access_token"])) as r:
        assert r.status == 200
    async with await token(base, session, fake, grant_type="refresh_token", refresh_token=first["refresh_token"]) as r:
        await assert_v3_error(r, 401, "unauthenticated")
    assert fake.token_requests == {"authorization_code": 1, "refresh_token": 2}
    assert fake.tokens_issued == {"code": 1, "access": 2, "refresh": 2}
    assert fake.tokens_invalidated == {"access": 1, "refresh": 1}


async def test_refused_refresh_answers_401_and_the_user_must_authorize_again(een, fake):
    base, session = een
    tokens = await login(base, session, fake)
    fake.refuse_refreshes = 1
    async with await token(base, session, fake, grant_type="refresh_token", refresh_token=tokens["refresh_token"]) as r:
        await assert_v3_error(r, 401, "unauthenticated")
    async with await token(base, session, fake, grant_type="refresh_token", refresh_token=tokens["refresh_token"]) as r:
        assert r.status == 401
    async with session.get(base / "api/v3.0/clientSettings", headers=bearer(tokens["access_token"])) as r:
        assert r.status == 401
    assert (await login(base, session, fake))["access_token"]
    assert fake.refuse_refreshes == 0


async def test_expired_access_tokens_answer_401_and_a_refresh_mends_them(een, fake):
    base, session = een
    tokens = await login(base, session, fake)
    fake.expire_access_tokens()
    async with session.get(base / "api/v3.0/clientSettings", headers=bearer(tokens["access_token"])) as r:
        await assert_v3_error(r, 401, "unauthenticated")
    async with await token(base, session, fake, grant_type="refresh_token", refresh_token=tokens["refresh_token"]) as r:
        fresh = await r.json()
    async with session.get(base / "api/v3.0/clientSettings", headers=bearer(fresh["access_token"])) as r:
        assert r.status == 200
    fake.access_token_ttl_s = 60
    fresh = await login(base, session, fake)
    assert fresh["expires_in"] == 60
    fake.advance(61)
    async with session.get(base / "api/v3.0/clientSettings", headers=bearer(fresh["access_token"])) as r:
        assert r.status == 401


async def test_a_code_expires_after_five_minutes_and_is_single_use(een, fake):
    base, session = een
    form = {"grant_type": "authorization_code", "redirect_uri": REDIRECT}
    late = await get_code(base, session, fake)
    fake.advance(5 * 60)
    async with await token(base, session, fake, code=late, **form) as r:
        await assert_v3_error(r, 401, "unauthenticated")
    fake.code_ttl_s = 10
    code = await get_code(base, session, fake)
    fake.advance(9)
    async with await token(base, session, fake, code=code, **form) as r:
        assert r.status == 200
    async with await token(base, session, fake, code=code, **form) as r:
        await assert_v3_error(r, 401, "unauthenticated")


async def test_redirect_uris_must_match_exactly(een, fake):
    base, session = een
    for wrong in (
        "http://127.0.0.1:3333/callback/",
        "http://localhost:3333/callback",
        "https://127.0.0.1:3333/callback",
    ):
        async with await authorize(base, session, fake, redirect=wrong) as r:
            await assert_v3_error(r, 400, "invalidArgument")
    code = await get_code(base, session, fake)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT + "/"}
    async with await token(base, session, fake, **form) as r:
        await assert_v3_error(r, 400, "invalidArgument")
    assert fake.tokens_issued["access"] == 0


async def test_a_code_with_slash_plus_and_equals_round_trips_percent_encoded(een, fake):
    base, session = een
    async with await authorize(base, session, fake) as response:
        location = response.headers["Location"]
    raw = location.split("code=")[1].split("&")[0]
    assert {"%2F", "%2B", "%3D"} <= set(re.findall("%[0-9A-F]{2}", raw)) and not set("/+=") & set(raw)
    code = parse_qs(urlsplit(location).query)["code"][0]
    assert set("/+=") <= set(code)
    # Taken undecoded, '+' would read as a space and the code would not match.
    async with await token(base, session, fake, grant_type="authorization_code", code=raw, redirect_uri=REDIRECT) as r:
        assert r.status == 401
    # The same parameters in the query string of the POST (as V3-PY sends them) work too.
    code = await get_code(base, session, fake)
    params = {"grant_type": "authorization_code", "scope": "vms.all", "code": code, "redirect_uri": REDIRECT}
    async with session.post(base / "oauth2/token", params=params, headers=basic(fake)) as r:
        assert r.status == 200 and (await r.json())["access_token"]


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic !!!not-base64", "Bearer something", aiohttp.encode_basic_auth("een-client-0a1b2c3d", "wrong")],
)
async def test_bad_client_credentials_answer_401(een, fake, authorization):
    base, session = een
    code = await get_code(base, session, fake)
    headers = {"Authorization": authorization} if authorization else {}
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    async with session.post(base / "oauth2/token", data=form, headers=headers) as r:
        await assert_v3_error(r, 401, "unauthenticated")
    assert fake.tokens_issued["access"] == 0


async def test_bearer_is_required_everywhere(een, fake):
    base, session = een
    tokens = await login(base, session, fake)
    params = {"deviceId": FRONT, "type": "preview", "include": "multipartUrl"}
    async with session.get(base / "api/v3.0/feeds", params=params, headers=bearer(tokens["access_token"])) as r:
        multipart = (await r.json())["results"][0]["multipartUrl"]
    urls = [
        base / "api/v3.0/clientSettings",
        (base / "api/v3.0/feeds").with_query(params),
        (base / "api/v3.0/media/liveImage.jpeg").with_query(deviceId=FRONT, type="preview"),
        URL(multipart),
    ]
    for url in urls:
        for headers in ({}, bearer("not-a-token"), {"Authorization": f"Basic {tokens['access_token']}"}):
            async with session.get(url, headers=headers) as r:
                await assert_v3_error(r, 401, "unauthenticated")
    assert fake.cameras[FRONT].live_image_requests == 0 and fake.cameras[FRONT].stream_requests == 0


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("api/v3.0/feeds", {"type": "preview", "include": "multipartUrl"}),
        ("api/v3.0/media/liveImage.jpeg", {"type": "preview"}),
    ],
)
async def test_forbidden_and_unknown_cameras(een, fake, path, params):
    base, session = een
    headers = bearer((await login(base, session, fake))["access_token"])
    async with session.get(base / path, params={**params, "deviceId": HIDDEN}, headers=headers) as r:
        await assert_v3_error(r, 403, "permissionDenied")
    async with session.get(base / path, params={**params, "deviceId": "1000beef"}, headers=headers) as r:
        await assert_v3_error(r, 404, "notFound")
    assert fake.camera_requests[HIDDEN] == 1 and fake.camera_requests["1000beef"] == 1


async def test_an_offline_camera_has_no_feed_and_a_stale_stream_session_is_not_found(een, fake):
    base, session = een
    headers = bearer((await login(base, session, fake))["access_token"])
    params = {"deviceId": DARK, "type": "preview", "include": "multipartUrl"}
    async with session.get(base / "api/v3.0/feeds", params=params, headers=headers) as r:
        assert r.status == 200
        assert await r.json() == {"results": [], "nextPageToken": "", "prevPageToken": "", "totalSize": 0}
    url = (base / MULTIPART_PATH.lstrip("/")).with_query(esn=FRONT, stream_session="made-up")
    async with session.get(url, headers=headers) as r:
        await assert_v3_error(r, 404, "notFound")


@pytest.mark.parametrize(("status", "name"), [(429, "tooManyRequests"), (503, "unavailable"), (400, "invalidArgument")])
async def test_failure_knobs_answer_the_next_n_requests_of_a_path(een, fake, status, name):
    base, session = een
    headers = bearer((await login(base, session, fake))["access_token"])
    path = "/api/v3.0/media/liveImage.jpeg"
    fake.fail(path, status, count=2, retry_after="7" if status == 429 else None)
    url = (base / path.lstrip("/")).with_query(deviceId=FRONT, type="preview")
    for _ in range(2):
        async with session.get(url, headers=headers) as r:
            await assert_v3_error(r, status, name)
            assert r.headers.get("Retry-After") == ("7" if status == 429 else None)
    async with session.get(base / "api/v3.0/clientSettings", headers=headers) as r:
        assert r.status == 200  # other paths are untouched
    camera = fake.cameras[FRONT]
    waiter = asyncio.create_task(tick_when_waiting(fake, camera, "live_image_requests"))
    async with session.get(url, headers=headers) as r:
        assert r.status == 200
    await waiter
    assert fake.requests[path] == 3 and camera.live_image_requests == 1


async def test_token_endpoint_failure_knob_and_default_retry_after(een, fake):
    base, session = een
    fake.fail("/oauth2/token", 429)
    code = await get_code(base, session, fake)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    async with await token(base, session, fake, **form) as r:
        await assert_v3_error(r, 429, "tooManyRequests")
        assert r.headers["Retry-After"] == "1"
    async with await token(base, session, fake, **form) as r:
        assert r.status == 200  # the failure answered before the code was looked at


async def test_a_client_hanging_up_closes_its_stream_at_once(een, fake):
    base, session = een
    headers = bearer((await login(base, session, fake))["access_token"])
    params = {"deviceId": FRONT, "type": "preview", "include": "multipartUrl"}
    async with session.get(base / "api/v3.0/feeds", params=params, headers=headers) as r:
        url = (await r.json())["results"][0]["multipartUrl"]
    streams = [await session.get(url, headers=headers) for _ in range(2)]
    await wait_for(fake, lambda: fake.open_streams == 2)
    streams.pop().close()
    await wait_for(fake, lambda: fake.open_streams == 1)  # no tick needed
    assert fake.cameras[FRONT].max_open_streams == 2
    streams.pop().close()
    await wait_for(fake, lambda: fake.cameras[FRONT].open_streams == 0)
