"""Signed links: a camera's stream, snapshot or page that works until a time, for whoever has the link.

A link carries ``expires`` (seconds since the epoch, an integer) and ``sig``, the HMAC-SHA256
(RFC 2104) of its canonical form with the server's signing key, in unpadded base64url
(RFC 4648 section 5). The canonical form is the path, then every query parameter but
``sig`` (``expires`` included), sorted by name, each name and value percent-encoded (RFC
3986, nothing left unencoded), joined as a query::

    /cameras/front/stream.mjpg?expires=1767225600&fps=2

so the signature covers the path, the expiry and every parameter that changes what is
served, and a parameter added after signing breaks it. A link is read one way only: a
repeated parameter is refused, never silently taken once. Signatures are compared in
constant time (``hmac.compare_digest``). Older keys can stay accepted while links signed
with them run out; only the first key signs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import quote, urlencode

SIGNATURE = "sig"
"""The query parameter holding the signature."""
EXPIRES = "expires"
"""The query parameter holding the link's expiry, in seconds since the epoch."""
MAX_EXPIRES_DIGITS = 12
"""The most digits an expiry may have (the year 33658): a longer one is refused as malformed."""


class LinkRefused(Exception):
    """A link that does not open its camera; the message is the short reason shown to the visitor."""


def canonical(path: str, params: Iterable[tuple[str, str]]) -> bytes:
    """The bytes a link's signature covers: ``path`` and ``params`` (without ``sig``), sorted by name."""
    query = "&".join(f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in sorted(params))
    return f"{path}?{query}".encode()


def signature(key: bytes, path: str, params: Iterable[tuple[str, str]]) -> str:
    """The signature of ``path`` with ``params`` under ``key``: HMAC-SHA256, unpadded base64url."""
    digest = hmac.new(key, canonical(path, params), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(key: bytes, path: str, expires: int, params: Mapping[str, str] | None = None) -> str:
    """``path`` with its query: ``params``, ``expires`` (seconds since the epoch) and ``sig``.

    Raises:
        ValueError: ``params`` names ``expires`` or ``sig``, or ``expires`` is not 0 to
            ``MAX_EXPIRES_DIGITS`` digits (``verify`` would refuse the link).
    """
    given = dict(params or {})
    if EXPIRES in given or SIGNATURE in given:
        raise ValueError(f"{EXPIRES!r} and {SIGNATURE!r} are the link's own parameters")
    if not 0 <= int(expires) < 10**MAX_EXPIRES_DIGITS:
        raise ValueError(f"the expiry {int(expires)} is not from 0 to {MAX_EXPIRES_DIGITS} digits of seconds")
    pairs = sorted({**given, EXPIRES: str(int(expires))}.items())
    return f"{path}?{urlencode([*pairs, (SIGNATURE, signature(key, path, pairs))])}"


def verify(keys: Sequence[bytes], path: str, query: Iterable[tuple[str, str]], now: float) -> None:
    """Check the link to ``path`` with ``query`` (its parameters, in order) at ``now`` (seconds since the epoch).

    Raises:
        LinkRefused: unsigned, a parameter repeated, a malformed expiry, expired, or a
            signature none of ``keys`` made.
    """
    pairs = list(query)
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise LinkRefused("a parameter is repeated in the link")
    values = dict(pairs)
    if SIGNATURE not in values or EXPIRES not in values:
        raise LinkRefused("this camera needs a signed link")
    expires = values[EXPIRES]
    if not expires.isascii() or not expires.isdigit() or len(expires) > MAX_EXPIRES_DIGITS:
        raise LinkRefused("the link's expiry is malformed")
    if int(expires) < now:
        raise LinkRefused("the link has expired")
    covered = [(name, value) for name, value in pairs if name != SIGNATURE]
    given = values[SIGNATURE].encode()
    if not any(hmac.compare_digest(signature(key, path, covered).encode(), given) for key in keys):
        raise LinkRefused("the link's signature is wrong")
