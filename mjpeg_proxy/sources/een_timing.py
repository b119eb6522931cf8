"""The waits of an Eagle Eye Networks account and its cameras, v1 and v3 alike."""

from __future__ import annotations

from dataclasses import dataclass

from mjpeg_proxy.camera.timing import AUTH_BACKOFF_S, BACKOFF_S

MIN_REQUEST_GAP_S = 0.25
"""Least time, in seconds, between the starts of two requests for one camera. EEN's fastest
preview rate is 4 a second, so this never delays a preview, but an answer that comes back at
once (a 408, a repeated or unstamped preview) can never turn into a request flood."""
REFRESH_MARGIN_S = 5 * 60.0
"""How long, in seconds, before its expiry a v3 access token is refreshed (half its lifetime
when that is shorter)."""
LOGIN_POLL_S = 5.0
"""How often, in seconds, the cameras of a v3 account without a usable login look whether
``een-login`` has written a new token file (a ``stat``, no request)."""


@dataclass(frozen=True)
class EenTiming:
    """The waits of an EEN account's session and cameras, in seconds (not read from the file; tests shorten them).

    ``refused_login_backoff_s`` and ``failed_login_backoff_s`` are (first, longest) waits
    before the next login (v1) or token refresh (v3) after a refused or a failed one, the
    camera's own steps by default (``camera.timing.AUTH_BACKOFF_S``, ``BACKOFF_S``);
    ``min_request_gap_s`` is the least time between the starts of two requests for one
    camera; ``refresh_margin_s`` and ``login_poll_s`` are v3's (``REFRESH_MARGIN_S``,
    ``LOGIN_POLL_S``).
    """

    refused_login_backoff_s: tuple[float, float] = AUTH_BACKOFF_S
    failed_login_backoff_s: tuple[float, float] = BACKOFF_S
    min_request_gap_s: float = MIN_REQUEST_GAP_S
    refresh_margin_s: float = REFRESH_MARGIN_S
    login_poll_s: float = LOGIN_POLL_S
