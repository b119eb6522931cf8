"""EEN v3 OAuth2 on the wire (``sources.een_oauth``): reading redirects and pasted lines, token answers.

Protocol facts: the project's EEN notes (shared/EEN-API.md), section 3.1.
"""

from __future__ import annotations

import json

import aiohttp
import pytest
from yarl import URL

from mjpeg_proxy.sources.een_oauth import (
    DISCOVERY_URL,
    Client,
    LoginError,
    LoginRefused,
    NotTheAnswer,
    authorize_url,
    code_from_pasted,
    query_values,
    refresh,
)
from mjpeg_proxy.sources.een_tokens import TokenRecord

STATE = "st4te"
ANSWER = {
    "access_token": "a.b.c",
    "expires_in": 43198,
    "refresh_token": "r-1",
    "httpsBaseUrl": {"hostname": "api.c001.eagleeyenetworks.com", "port": 443},
    "scope": "vms.all",
    "token_type": "Bearer",
}


def test_the_authorize_url_is_the_documented_one():
    client = Client("id 1", "secret-x", "https://auth.eagleeyenetworks.com")
    assert authorize_url(client, "http://127.0.0.1:3333", STATE) == (
        "https://auth.eagleeyenetworks.com/oauth2/authorize?scope=vms.all&client_id=id%201"
        "&response_type=code&redirect_uri=http://127.0.0.1:3333&state=st4te"
    )
    assert "secret-x" not in repr(client)


@pytest.mark.parametrize(
    "line, code",
    [
        ("http://127.0.0.1:3333/callback?code=ab%2Fc%2Bd%3D&state=st4te", "ab/c+d="),
        ("http://127.0.0.1:3333/callback?code=ab/c+d=&state=st4te\n", "ab/c+d="),
        ("?state=st4te&code=xyz", "xyz"),
        ("code=xyz&state=st4te", "xyz"),
        ("http://127.0.0.1:3333/?code=xyz&state=st4te#_", "xyz"),
    ],
)
def test_a_pasted_address_gives_its_code_percent_decoded(line, code):
    assert code_from_pasted(line, STATE) == code


@pytest.mark.parametrize(
    "line",
    ["", "hello", "http://127.0.0.1:3333/callback", "http://x/?code=1&state=other", "http://x/?code=&state=st4te"],
)
def test_a_line_without_this_logins_code_is_not_the_answer(line):
    with pytest.raises(NotTheAnswer):
        code_from_pasted(line, STATE)


def test_an_error_answer_with_our_state_ends_the_login_and_one_with_another_is_ignored():
    with pytest.raises(LoginError, match="access_denied"):
        code_from_pasted("http://x/?error=access_denied&error_description=no%0Away&state=st4te", STATE)
    with pytest.raises(NotTheAnswer):
        code_from_pasted("http://x/?error=access_denied&state=old", STATE)


def test_query_values_keep_the_first_of_a_name():
    assert query_values("a=1&a=2&b") == {"a": "1", "b": ""}


AUTH = "https://auth.eagleeyenetworks.com"
CLIENT = Client("client-1", "secret-1", AUTH)
OLD = TokenRecord("a-0", "r-0", 1.0, "api.c001.eagleeyenetworks.com", 443, issued_at=0.0)


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def test_a_refresh_answer_becomes_a_record_with_its_issue_time(http, upstream):
    upstream.post(f"{AUTH}/oauth2/token", payload=ANSWER)
    record = await refresh(http, CLIENT, OLD, lambda: 1000.0)
    (call,) = upstream.requests[("POST", URL(f"{AUTH}/oauth2/token"))]
    assert (record.access_token, record.refresh_token, record.expires_at) == ("a.b.c", "r-1", 44198.0)
    assert (record.issued_at, record.api_host, record.api_port) == (1000.0, "api.c001.eagleeyenetworks.com", 443)
    assert call.kwargs["data"] == {"grant_type": "refresh_token", "scope": "vms.all", "refresh_token": "r-0"}
    assert call.kwargs["headers"]["Authorization"] == aiohttp.encode_basic_auth("client-1", "secret-1")


async def test_a_token_answer_without_its_host_asks_client_settings_with_the_new_token(http, upstream):
    upstream.post(f"{AUTH}/oauth2/token", payload={**ANSWER, "httpsBaseUrl": None})
    upstream.get(
        f"{DISCOVERY_URL}/api/v3.0/clientSettings",
        payload={"httpsBaseUrl": {"hostname": "api.c009.x", "port": 8443}},
    )
    record = await refresh(http, CLIENT, OLD, lambda: 0.0)
    (call,) = upstream.requests[("GET", URL(f"{DISCOVERY_URL}/api/v3.0/clientSettings"))]
    assert (record.api_host, record.api_port) == ("api.c009.x", 8443)
    assert call.kwargs["headers"]["Authorization"] == "Bearer a.b.c"


async def test_a_refresh_keeps_the_known_host_when_neither_the_answer_nor_client_settings_names_one(http, upstream):
    upstream.post(f"{AUTH}/oauth2/token", payload={**ANSWER, "httpsBaseUrl": None})
    upstream.get(f"{DISCOVERY_URL}/api/v3.0/clientSettings", status=503)
    record = await refresh(http, CLIENT, OLD, lambda: 0.0)
    assert (record.access_token, record.api_host, record.api_port) == ("a.b.c", OLD.api_host, OLD.api_port)


@pytest.mark.parametrize("status", [400, 401, 403])
async def test_a_refused_refresh_says_to_log_in_again_and_names_no_token(http, upstream, status):
    upstream.post(f"{AUTH}/oauth2/token", status=status, payload={"code": status, "status": "unauthenticated"})
    with pytest.raises(LoginRefused, match="run mjpeg-proxy een-login") as info:
        await refresh(http, CLIENT, TokenRecord("a-0", "r-secret-0", 1.0, "api.c001.x"), lambda: 0.0)
    assert "r-secret-0" not in str(info.value) and "secret-1" not in str(info.value)


async def test_a_busy_token_endpoint_is_no_refusal_and_says_when_to_come_back(http, upstream):
    upstream.post(f"{AUTH}/oauth2/token", status=429, headers={"Retry-After": "7"})
    with pytest.raises(LoginError) as info:
        await refresh(http, CLIENT, OLD, lambda: 0.0)
    assert not isinstance(info.value, LoginRefused) and info.value.retry_after_s == 7


@pytest.mark.parametrize(
    "answer, expected",
    [
        ({**ANSWER, "refresh_token": None}, "confidential"),
        ({**ANSWER, "expires_in": "soon"}, "expires_in"),
        ({**ANSWER, "httpsBaseUrl": {"port": 443}}, "httpsBaseUrl"),
        ({**ANSWER, "access_token": ""}, "access_token"),
        ([], "not a JSON object"),
    ],
)
async def test_a_token_answer_without_what_is_needed_is_refused_without_its_tokens(http, upstream, answer, expected):
    upstream.post(f"{AUTH}/oauth2/token", body=json.dumps(answer))
    with pytest.raises(LoginError, match=expected) as info:
        await refresh(http, CLIENT, OLD, lambda: 0.0)
    assert "a.b.c" not in str(info.value) and "r-1" not in str(info.value)


def test_a_loopback_http_auth_host_keeps_api_hosts_on_plain_http():
    local = Client("c", "s", "http://127.0.0.1:8080")
    assert str(local.api_url("127.0.0.1", 8081)) == "http://127.0.0.1:8081"
    assert local.discovery_url == "http://127.0.0.1:8080"
    assert str(CLIENT.api_url("api.c001.eagleeyenetworks.com", 443)) == "https://api.c001.eagleeyenetworks.com"
    assert CLIENT.discovery_url == DISCOVERY_URL
