"""EEN API v3 OAuth2, the wire side: the authorize URL, the browser's redirect, the code exchange.

Knows nothing of the command line or the proxy (``een_login`` drives it). Protocol: the
project's EEN notes (EEN-API.md), section 3.1.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

import aiohttp

from mjpeg_proxy.sources.een_tokens import TokenRecord

SCOPE = "vms.all"
"""The scope every call asks for (EEN-API.md 3.1)."""
DEFAULT_REDIRECT_URI = "http://127.0.0.1:3333/callback"
"""The redirect URI EEN's own command-line tool registers (EEN-API.md 3.1)."""
TOKEN_TIMEOUT_S = 30.0
"""The longest, in seconds, a token request may take."""
MAX_ANSWER_BYTES = 64 * 1024
"""The most of a token answer read: a token response is a few kilobytes."""


class LoginError(Exception):
    """The login cannot go on; the message is one line for the user, with no secret in it."""


class NotTheAnswer(Exception):
    """A redirect or pasted line that is not this login's answer (no code, a wrong state); keep waiting."""


@dataclass(frozen=True)
class Client:
    """An EEN OAuth2 confidential client: its id, its secret (kept out of ``repr``), and the auth host's URL."""

    client_id: str
    client_secret: str
    auth_url: str

    def __repr__(self) -> str:
        return f"Client(client_id={self.client_id!r}, auth_url={self.auth_url!r})"


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
        LoginError: the code or the client was refused, or the auth host could not be
            reached or gave no usable answer.
    """
    form = {"grant_type": "authorization_code", "scope": SCOPE, "code": code, "redirect_uri": redirect_uri}
    try:
        async with session.post(
            f"{client.auth_url}/oauth2/token",
            data=form,
            headers={"Authorization": aiohttp.encode_basic_auth(client.client_id, client.client_secret)},
            timeout=aiohttp.ClientTimeout(total=TOKEN_TIMEOUT_S),
            allow_redirects=False,
        ) as response:
            status = response.status
            body = await response.content.read(MAX_ANSWER_BYTES)
    except (aiohttp.ClientError, TimeoutError) as e:
        raise LoginError(f"cannot reach {client.auth_url}: {type(e).__name__}: {str(e)[:200]}") from None
    if status != 200:
        raise LoginError(_refusal(status, body))
    return token_record(body, wall_clock())


def _refusal(status: int, body: bytes) -> str:
    """Why the token endpoint refused, and what to do."""
    said = _error_text(body)
    what = f"EEN refused the code (HTTP {status}{': ' + said if said else ''})"
    if status in (400, 401):
        return (
            f"{what}: a code works once and for 5 minutes, so run een-login again; if it persists, "
            "check client_id, the client secret and that the redirect URI is the registered one"
        )
    if status == 403:
        return f"{what}: the client may not use this account; check the application in the EEN developer portal"
    return f"{what}; try again later"


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


def token_record(body: bytes, now: float) -> TokenRecord:
    """The record of a token response (EEN-API.md 3.1) received at ``now`` (seconds since the epoch).

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
    expires_in = data.get("expires_in")
    if not isinstance(expires_in, int | float) or isinstance(expires_in, bool) or expires_in <= 0:
        raise LoginError("EEN's token answer has no expires_in; try again later")
    try:
        return TokenRecord.from_json(
            {
                "access_token": data.get("access_token"),
                "refresh_token": data["refresh_token"],
                "expires_at": now + expires_in,
                "httpsBaseUrl": data.get("httpsBaseUrl"),
            }
        )
    except ValueError as e:
        raise LoginError(f"EEN's token answer is incomplete ({e}); try again later") from None
