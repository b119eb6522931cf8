"""An upstream's ``Retry-After``: how long it asks us to wait before the next request."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import TypeVar

from mjpeg_proxy.camera.errors import SourceError

RETRY_AFTER_STATUSES = frozenset({429, 503})
"""The answers whose ``Retry-After`` we honour: 503 Service Unavailable (RFC 9110
section 15.6.4) and 429 Too Many Requests (RFC 6585 section 4)."""
MIN_RETRY_AFTER_S = 1.0
MAX_RETRY_AFTER_S = 3600.0
"""Waits outside ``MIN_RETRY_AFTER_S`` to ``MAX_RETRY_AFTER_S`` seconds are taken for
nonsense (0, a date already past, a date years away) and ignored: the normal backoff
applies, never a tight loop and never a camera parked for days."""

# RFC 9110's delay-seconds is 1*DIGIT; a decimal ("5.0", which some servers write) means
# what it says just as clearly, so it is read too.
_DELAY_SECONDS_RE = re.compile(r"[0-9]+(\.[0-9]+)?")

E = TypeVar("E", bound=SourceError)


def answer_error(error_class: type[E], message: str, status: int, headers: Mapping[str, str]) -> E:
    """``error_class(message)`` for an answer with ``status`` and ``headers``.

    When the answer says when to come back (``retry_after_s``), the error carries that wait
    and its message says so.
    """
    wait_s = retry_after_s(status, headers)
    if wait_s is None:
        return error_class(message)
    return error_class(f"{message}; it asks for no request for {wait_s:g} s", retry_after_s=wait_s)


def retry_after_s(status: int, headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The seconds an answer with ``status`` and ``headers`` asks us to wait, or None.

    ``Retry-After`` is delay-seconds (``1*DIGIT``, or a decimal) or an HTTP-date (RFC 9110 section
    10.2.3; the date read by ``email.utils.parsedate_to_datetime``). A date is measured
    from the answer's own ``Date`` header when it has a readable one, so a camera whose
    clock is wrong still means what it says; else from ``now`` (seconds since the epoch,
    default the current time).

    Returns None when ``status`` is not in ``RETRY_AFTER_STATUSES``, when there is no
    header, when it is neither form, or when the wait is outside ``MIN_RETRY_AFTER_S``
    to ``MAX_RETRY_AFTER_S``. Never raises.
    """
    value = headers.get("Retry-After")
    if status not in RETRY_AFTER_STATUSES or value is None:
        return None
    value = value.strip()
    if _DELAY_SECONDS_RE.fullmatch(value):
        seconds = float(value)  # digits and a point only: never raises (a 5000-digit value is inf)
    else:
        until = _http_date(value)
        if until is None:
            return None
        sent = _http_date(headers.get("Date", ""))
        seconds = until - (sent if sent is not None else time.time() if now is None else now)
    return seconds if MIN_RETRY_AFTER_S <= seconds <= MAX_RETRY_AFTER_S else None


def _http_date(value: str) -> float | None:
    """Seconds since the epoch of an HTTP-date, or None for anything else."""
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if moment.tzinfo is None:  # asctime form, or "-0000": HTTP-dates are in GMT
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
