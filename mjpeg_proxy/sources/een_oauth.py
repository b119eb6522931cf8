"""EEN API v3 OAuth2, the wire side: the authorize URL, the browser's redirect, the code exchange.

Knows nothing of the command line or the proxy (``een_login`` drives it). Protocol: the
project's EEN notes (EEN-API.md), section 3.1.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import aiohttp
from yarl import URL

from mjpeg_proxy.sources.een_tokens import TokenRecord
from mjpeg_proxy.sources.http_answers import describe
from mjpeg_proxy.sources.retry_after import retry_after_s

SCOPE = "vms.all"
"""The scope every call asks for (EEN-API.md 3.1)."""
DEFAULT_REDIRECT_URI = "http://127.0.0.1:3333/callback"
"""The redirect URI EEN's own command-line tool registers (EEN-API.md 3.1)."""
TOKEN_TIMEOUT_S = 30.0
"""The longest, in seconds, a token request may take."""
DISCOVERY_URL = "https://api.eagleeyenetworks.com"
"""The host that answers ``/api/v3.0/clientSettings`` for any token (EEN-API.md 3.2)."""
MAX_ANSWER_BYTES = 64 * 1024
"""The most of a token answer read: a token response is a few kilobytes."""


class LoginError(Exception):
    """The login cannot go on; the message is one line for the user, with no secret in it.

    ``retry_after_s``: the wait the auth host asked for (``Retry-After`` of a 429 or 503), if any.
    """

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class LoginRefused(LoginError):
    """The auth host refused the code or refresh token (HTTP 400, 401 or 403): only a new browser login helps."""


class NotTheAnswer(Exception):
    """A redirect or pasted line that is not this login's answer (no code, a wrong state); keep waiting."""


@dataclass(frozen=True)
class Client:
    """An EEN OAuth2 confidential client: its id, its secret (kept out of ``repr``), and the auth host's URL.

    With an ``auth_url`` of plain ``http://`` (only a loopback one passes the configuration:
    tests, development), the API hosts it discovers are reached over plain http too, and
    ``clientSettings`` is asked of the auth host itself.
    """

    client_id: str
    client_secret: str
    auth_url: str

    def __repr__(self) -> str:
        return f"Client(client_id={self.client_id!r}, auth_url={self.auth_url!r})"

    @property
    def plain_http(self) -> bool:
        """Whether API hosts are reached over plain http (a loopback ``auth_url``)."""
        return self.auth_url.startswith("http://")

    def api_url(self, host: str, port: int) -> URL:
        """The origin of an ``httpsBaseUrl`` (EEN-API.md 3.2): https, or http under ``plain_http``."""
        return URL.build(scheme="http" if self.plain_http else "https", host=host, port=port)

    @property
    def discovery_url(self) -> str:
        """Where ``clientSettings`` is asked when a token answer names no host (EEN-API.md 3.2)."""
        return self.auth_url if self.plain_http else DISCOVERY_URL


def new_state() -> str:
    """A random ``state`` for one login: 128 bits, URL-safe, so it needs no encoding."""
    return secrets.token_urlsafe(16)


def authorize_url(client: Client, redirect_uri: str, state: str) -> str:
    """The address the user opens to log in and consent (EEN-API.md 3.1).

    ``redirect_uri`` goes in as written, not percent-encoded: EEN compares it with the
    registered one as an exact string (3.1, "Do not percent-encode").
    """
    return (
        f"{client.auth_url}/oauth2/authorize?scope={SCOPE}&client_id={quote(client.client_id, safe='')}"
        f"&response_type=code&redirect_uri={redirect_uri}&state={state}"
    )


def query_values(raw_query: str) -> dict[str, str]:
    """A query string's values, percent-decoded, the first of each name kept.

    A ``+`` stays a ``+``: codes hold ``+``, ``/`` and ``=`` (EEN-API.md 3.1), and reading
    ``+`` as a space, as HTML forms do, would spoil a code pasted unencoded.
    """
    values: dict[str, str] = {}
    for pair in raw_query.split("&"):
        name, _, value = pair.partition("=")
        values.setdefault(unquote(name), unquote(value))
    return values


def code_from_redirect(query: Mapping[str, str], state: str) -> str:
    """The authorization code in the redirect's query ``query`` (``query_values``) for the login with ``state``.

    Raises:
        NotTheAnswer: no ``code`` and no ``error`` (a stray request), or another ``state``.
        LoginError: EEN answered this login with an error (the user declined, say).
    """
    if "code" not in query and "error" not in query:
        raise NotTheAnswer("no code in it")
    if query.get("state") != state:
        raise NotTheAnswer("its state is not this login's (an older browser tab or another login)")
    if "error" in query:
        said = " ".join(f"{query['error']} {query.get('error_description', '')}".split())[:200]
        raise LoginError(f"EEN did not authorize: {said}")
    if not query["code"]:
        raise NotTheAnswer("its code is empty")
    return query["code"]


def code_from_pasted(line: str, state: str) -> str:
    """The code in a line the user pasted: the browser's final address, or its query alone.

    Raises:
        NotTheAnswer: the line holds no code for this login.
        LoginError: the address is EEN's error answer to this login.
    """
    text = line.strip()
    raw_query = urlsplit(text).query if "://" in text else text.lstrip("?")
    return code_from_redirect(query_values(raw_query), state)


async def exchange_code(
    session: aiohttp.ClientSession, client: Client, code: str, redirect_uri: str, wall_clock: Callable[[], float]
) -> TokenRecord:
    """Trade ``code`` for tokens at ``/oauth2/token`` (HTTP Basic client credentials, form body; EEN-API.md 3.1).

    ``wall_clock`` gives seconds since the epoch, for the record's ``expires_at``.

    Raises:
        LoginRefused: the code or the client was refused.
        LoginError: the auth host could not be reached or gave no usable answer.
    """
    form = {"grant_type": "authorization_code", "scope": SCOPE, "code": code, "redirect_uri": redirect_uri}
    return await _token_request(session, client, form, wall_clock, _code_refusal)


async def refresh(
    session: aiohttp.ClientSession, client: Client, record: TokenRecord, wall_clock: Callable[[], float]
) -> TokenRecord:
    """Trade ``record``'s refresh token for new tokens at ``/oauth2/token`` (EEN-API.md 3.1, "Refresh").

    Refresh tokens rotate: once this is sent, ``record``'s tokens are dead, whatever the
    answer; store the new record before using it. An answer without ``httpsBaseUrl`` asks
    ``clientSettings``, and keeps ``record``'s host when that fails: the new tokens must
    not be lost for want of a host name.

    Raises:
        LoginRefused: the refresh token was refused (14 days unused, 90 days old, revoked):
            the user must log in in the browser again.
        LoginError: the auth host could not be reached or gave no usable answer.
    """
    form = {"grant_type": "refresh_token", "scope": SCOPE, "refresh_token": record.refresh_token}
    known = {"hostname": record.api_host, "port": record.api_port}
    return await _token_request(session, client, form, wall_clock, _refresh_refusal, known)


async def _token_request(
    session: aiohttp.ClientSession,
    client: Client,
    form: dict[str, str],
    wall_clock: Callable[[], float],
    refusal: Callable[[int, str], str],
    known_base: dict[str, Any] | None = None,
) -> TokenRecord:
    """POST ``form`` to ``/oauth2/token`` and read the answer into a record; ``refusal`` words a 400-403.

    ``known_base``: the ``httpsBaseUrl`` to keep when the answer names none and
    ``clientSettings`` cannot be asked.
    """
    status, body, headers = await _call(
        session.post(
            f"{client.auth_url}/oauth2/token",
            data=form,
            headers={"Authorization": aiohttp.encode_basic_auth(client.client_id, client.client_secret)},
            timeout=aiohttp.ClientTimeout(total=TOKEN_TIMEOUT_S),
            allow_redirects=False,
        ),
        client.auth_url,
    )
    if status in (400, 401, 403):
        raise LoginRefused(refusal(status, _error_text(body)))
    if status != 200:
        said = _error_text(body)
        raise LoginError(
            f"EEN's token endpoint answered HTTP {status}{': ' + said if said else ''}; try again later",
            retry_after_s(status, headers),
        )
    now = wall_clock()
    data = _token_answer(body)
    if not isinstance(data.get("httpsBaseUrl"), dict):
        try:
            data["httpsBaseUrl"] = await client_settings(session, client, data["access_token"])
        except LoginError:
            if known_base is None:
                raise
            data["httpsBaseUrl"] = known_base
    try:
        return TokenRecord.from_json(
            {
                "access_token": data["access_token"],
                "refresh_token": data["refresh_token"],
                "expires_at": now + data["expires_in"],
                "issued_at": now,
                "httpsBaseUrl": data["httpsBaseUrl"],
            }
        )
    except ValueError as e:
        raise LoginError(f"EEN's token answer is incomplete ({e}); try again later") from None


async def client_settings(session: aiohttp.ClientSession, client: Client, access_token: str) -> dict[str, Any]:
    """The account's ``httpsBaseUrl`` from ``/api/v3.0/clientSettings`` (EEN-API.md 3.2).

    Raises:
        LoginError: no usable answer.
    """
    status, body, headers = await _call(
        session.get(
            f"{client.discovery_url}/api/v3.0/clientSettings",
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=aiohttp.ClientTimeout(total=TOKEN_TIMEOUT_S),
            allow_redirects=False,
        ),
        client.discovery_url,
    )
    if status != 200:
        said = _error_text(body)
        raise LoginError(
            f"EEN's clientSettings answered HTTP {status}{': ' + said if said else ''}; try again later",
            retry_after_s(status, headers),
        )
    try:
        base = json.loads(body).get("httpsBaseUrl")
    except (ValueError, AttributeError):
        base = None
    if not isinstance(base, dict):
        raise LoginError("EEN's clientSettings named no httpsBaseUrl; try again later")
    return base


async def account_name(session: aiohttp.ClientSession, client: Client, record: TokenRecord) -> str | None:
    """Which account ``record`` logged in to: ``name (id)`` from ``/api/v3.0/accounts/self``, or None.

    ``getSelfAccount`` of EEN's v3 OpenAPI ("Account") returns the logged-in account object,
    with its ``id`` and ``name``. Only said to the user, so any failure is None.
    """
    url = client.api_url(record.api_host, record.api_port).with_path("/api/v3.0/accounts/self")
    try:
        status, body, _ = await _call(
            session.get(
                url,
                headers={"Authorization": f"Bearer {record.access_token}", "Accept": "application/json"},
                timeout=aiohttp.ClientTimeout(total=TOKEN_TIMEOUT_S),
                allow_redirects=False,
            ),
            str(url.origin()),
        )
        account = json.loads(body) if status == 200 else None
    except (LoginError, ValueError):
        return None
    if not isinstance(account, dict):
        return None
    words = [str(account[key]) for key in ("name", "id") if isinstance(account.get(key), str | int)]
    if not words:
        return None
    said = words[0] if len(words) == 1 else f"{words[0]} (id {words[1]})"
    return " ".join(said.split())[:120]


async def _call(request: Any, where: str) -> tuple[int, bytes, Mapping[str, str]]:
    """Send ``request`` (an aiohttp request not yet awaited); return (status, the body's first bytes, headers).

    Raises:
        LoginError: ``where`` could not be reached or did not answer in time.
    """
    try:
        async with request as response:
            return response.status, await response.content.read(MAX_ANSWER_BYTES), response.headers
    except (aiohttp.ClientError, TimeoutError) as e:
        what = describe(e) if isinstance(e, aiohttp.ClientError) else "no answer in time"
        raise LoginError(f"cannot reach {where}: {what}") from None


def _code_refusal(status: int, said: str) -> str:
    """Why the token endpoint refused a code, and what to do."""
    what = f"EEN refused the code (HTTP {status}{': ' + said if said else ''})"
    if status == 403:
        return f"{what}: the client may not use this account; check the application in the EEN developer portal"
    return (
        f"{what}: a code works once and for 5 minutes, so run een-login again; if it persists, "
        "check client_id, the client secret and that the redirect URI is the registered one"
    )


def _refresh_refusal(status: int, said: str) -> str:
    """Why the token endpoint refused a refresh token, and what to do."""
    return (
        f"EEN refused the refresh token (HTTP {status}{': ' + said if said else ''}): "
        "the login has expired or was revoked, or the client secret is wrong; "
        "run mjpeg-proxy een-login (it checks the client secret too)"
    )


def _error_text(body: bytes) -> str:
    """The reason in an error body: the v3 ``status`` and ``message`` (EEN-API.md 3.3) or OAuth2's ``error``."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    parts = [data.get(key) for key in ("status", "message", "error", "error_description")]
    text = ": ".join(dict.fromkeys(part for part in parts if isinstance(part, str) and part))
    return " ".join(text.split())[:200]


def _token_answer(body: bytes) -> dict[str, Any]:
    """The fields of a token response (EEN-API.md 3.1), checked.

    Raises:
        LoginError: the answer is no token response, or has no refresh token (a public client).
    """
    try:
        data = json.loads(body)
    except ValueError:
        raise LoginError("EEN's token answer is not JSON; try again later") from None
    if not isinstance(data, dict):
        raise LoginError("EEN's token answer is not a JSON object; try again later")
    if not isinstance(data.get("refresh_token"), str) or not data["refresh_token"]:
        raise LoginError(
            "EEN gave no refresh token: only confidential clients get one; "
            "use the credentials of a confidential client (EEN developer portal)"
        )
    if not isinstance(data.get("access_token"), str) or not data["access_token"]:
        raise LoginError("EEN's token answer has no access_token; try again later")
    expires_in = data.get("expires_in")
    if not isinstance(expires_in, int | float) or isinstance(expires_in, bool) or expires_in <= 0:
        raise LoginError("EEN's token answer has no expires_in; try again later")
    return data
