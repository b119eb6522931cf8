"""EEN v3 OAuth2 on the wire (``sources.een_oauth``): reading redirects and pasted lines, token answers.

Protocol facts: the project's EEN notes (shared/EEN-API.md), section 3.1.
"""

from __future__ import annotations

import json

import pytest

from mjpeg_proxy.sources.een_oauth import (
    Client,
    LoginError,
    NotTheAnswer,
    authorize_url,
    code_from_pasted,
    query_values,
    token_record,
)

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


def test_a_token_answer_becomes_a_record():
    record = token_record(json.dumps(ANSWER).encode(), 1000.0)
    assert (record.access_token, record.refresh_token, record.expires_at) == ("a.b.c", "r-1", 44198.0)
    assert (record.api_host, record.api_port) == ("api.c001.eagleeyenetworks.com", 443)


@pytest.mark.parametrize(
    "answer, expected",
    [
        ({**ANSWER, "refresh_token": None}, "confidential"),
        ({**ANSWER, "expires_in": "soon"}, "expires_in"),
        ({**ANSWER, "httpsBaseUrl": None}, "httpsBaseUrl"),
        ({**ANSWER, "access_token": ""}, "access_token"),
        ([], "not a JSON object"),
    ],
)
def test_a_token_answer_without_what_is_needed_is_refused_without_its_tokens(answer, expected):
    with pytest.raises(LoginError, match=expected) as info:
        token_record(json.dumps(answer).encode(), 0.0)
    assert "a.b.c" not in str(info.value) and "r-1" not in str(info.value)
