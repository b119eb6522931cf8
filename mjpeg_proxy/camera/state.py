"""A camera's state, what each state means, and the error and backoff state behind it.

Each ``CameraState`` says whether it is an error, whether a retry is unlikely to clear it
soon (final), and why in plain words. ``ERROR_RULES`` says, by the error's class, which
state an error puts a camera in and how long it waits before the next attempt. A new
state is one member here; a new error class with its own state is one row.
"""

from __future__ import annotations

import enum
import logging
from typing import NamedTuple

from mjpeg_proxy.camera.backoff import Backoff
from mjpeg_proxy.camera.errors import (
    AuthError,
    ForbiddenError,
    LoginExpired,
    LoginNeeded,
    NotFoundError,
    SourceError,
    Stalled,
)
from mjpeg_proxy.camera.timing import CameraTiming

log = logging.getLogger(__name__)


class CameraState(enum.StrEnum):
    """What a status page says about a camera, with the facts of each state.

    ``reason`` is the error state in plain words, for the offline picture and for
    snapshots' 503; None for a state that is no error. In an error state viewers see the
    offline picture once the last frame is ``stall_timeout`` old (at once in a final
    state), and snapshots answer 503. ``is_final``: a retry is unlikely to clear it soon.
    """

    reason: str | None
    is_final: bool

    def __new__(cls, value: str, reason: str | None = None, final: bool = False) -> CameraState:
        """Make the member ``value`` with its facts."""
        member = str.__new__(cls, value)
        member._value_ = value
        member.reason = reason
        member.is_final = final
        return member

    IDLE = "idle"  # nobody watching: the upstream is closed (on-demand fetching)
    STARTING = "starting"  # no frame yet
    LIVE = "live"  # frames arriving
    STALLED = "stalled", "The camera sends no pictures"
    OFFLINE = "offline", "The camera cannot be reached"  # unreachable, erroring, or bad data
    AUTH_FAILED = "auth_failed", "The camera refused the proxy's login", True
    FORBIDDEN = "forbidden", "The proxy's account may not view this camera", True
    NOT_FOUND = "not_found", "The camera is unknown to its upstream", True
    LOGIN_NEEDED = "login_needed", "The proxy is not logged in to EEN yet; run mjpeg-proxy een-login", True
    LOGIN_EXPIRED = "login_expired", "The EEN login has expired; run mjpeg-proxy een-login", True

    @property
    def is_error(self) -> bool:
        """True in a state in which viewers get the offline picture."""
        return self.reason is not None


class Retry(enum.Enum):
    """How long a camera waits after an error before its next attempt."""

    AT_ONCE = "at once"  # a stall took the stall timeout already
    BACKOFF = "backoff"  # the steps of ``CameraTiming.backoff_s``
    AUTH_BACKOFF = "auth backoff"  # the steps of ``CameraTiming.auth_backoff_s``


class ErrorRule(NamedTuple):
    """What an error class does to a camera: the ``state`` it enters, its ``retry``."""

    state: CameraState
    retry: Retry


ERROR_RULES: dict[type[SourceError], ErrorRule] = {
    SourceError: ErrorRule(CameraState.OFFLINE, Retry.BACKOFF),
    AuthError: ErrorRule(CameraState.AUTH_FAILED, Retry.AUTH_BACKOFF),
    ForbiddenError: ErrorRule(CameraState.FORBIDDEN, Retry.BACKOFF),
    NotFoundError: ErrorRule(CameraState.NOT_FOUND, Retry.BACKOFF),
    # No request is made until a person logs in: the source names how often it looks.
    LoginNeeded: ErrorRule(CameraState.LOGIN_NEEDED, Retry.BACKOFF),
    LoginExpired: ErrorRule(CameraState.LOGIN_EXPIRED, Retry.BACKOFF),
    Stalled: ErrorRule(CameraState.STALLED, Retry.AT_ONCE),
}
"""Each error class's rule; a class without a row takes its nearest base class's."""


def error_for(state: CameraState) -> type[SourceError]:
    """The error class whose rule puts a camera in ``state`` (``SourceError`` for a state no rule names).

    For a camera that learns its state from elsewhere (a cluster follower, told the owner's).
    """
    return next((cls for cls, rule in ERROR_RULES.items() if rule.state is state), SourceError)


def rule_of(error: SourceError) -> ErrorRule:
    """The rule of ``error``'s class, or of the nearest base class in ``ERROR_RULES`` (its MRO)."""
    return next(ERROR_RULES[cls] for cls in type(error).__mro__ if cls in ERROR_RULES)


class StateTracker:
    """A camera's state, and its error and backoff state across idle periods.

    An error's state and wait follow its class (``ERROR_RULES``): errors back off
    exponentially with jitter (``Backoff``) in steps from ``CameraTiming.backoff_s``;
    refused logins in the longer steps of ``CameraTiming.auth_backoff_s``; a stall
    retries at once. An error that names its wait (``retry_after_s``,
    such as the upstream's ``Retry-After``) waits that long instead, plus up to
    ``backoff.NAMED_WAIT_SPREAD`` more. Each burst of errors is logged once when it
    starts and once when it ends. ``name`` is the camera's id, for the log.
    """

    def __init__(self, name: str, timing: CameraTiming) -> None:
        self.name = name
        self._clock = timing.clock
        self.state = CameraState.IDLE
        self.since = self._clock.wall()
        """When the state last changed, in seconds since the epoch."""
        # The current error and the next attempt outlive an idle period, so a viewer
        # arriving cannot cut short the wait after a refused login (account lockouts).
        self.error_state: CameraState | None = None
        """The latest error state, until a frame arrives; None after one."""
        self.error_since = 0.0
        """When the latest error state began, in seconds since the epoch."""
        self._retry_at = 0.0  # monotonic time of the next attempt after an error
        self._backoff = Backoff(*timing.backoff_s)
        self._auth_backoff = Backoff(*timing.auth_backoff_s)
        self._failures_in_burst = 0

    def set(self, state: CameraState) -> None:
        """Enter ``state`` (its ``since`` stays when it is the state already)."""
        if state is not self.state:
            self.state, self.since = state, self._clock.wall()

    def wake(self) -> float:
        """The camera is wanted again: enter its state, and return the seconds until its retry (0 if none).

        The state is the pending error state while its retry is still due later, else ``STARTING``.
        """
        wait = self.retry_wait_s()
        self.set(self.error_state if wait and self.error_state is not None else CameraState.STARTING)
        return wait

    def retry_wait_s(self) -> float:
        """Seconds until the attempt after the latest error is due; 0 when none is pending."""
        if self.error_state is None:
            return 0.0
        return max(0.0, self._retry_at - self._clock.monotonic())

    def failed(self, error: SourceError) -> float:
        """Enter ``error``'s state, and return the seconds to wait before the next attempt."""
        previous = self.state
        rule = rule_of(error)
        self.set(rule.state)
        if self.state is not self.error_state:
            self.error_state, self.error_since = self.state, self.since
        delay = self._delay(error, rule.retry)
        self._failures_in_burst += 1
        # One line when a burst starts or the state changes; the rest of a burst at debug level.
        level = logging.WARNING if self._failures_in_burst == 1 or self.state != previous else logging.DEBUG
        retry = f"retrying in {delay:.1f} s" if delay else "reconnecting"
        log.log(level, "camera %s: %s [%s]; %s", self.name, error, self.state, retry)
        self._retry_at = self._clock.monotonic() + delay
        return delay

    def _delay(self, error: SourceError, retry: Retry) -> float:
        if retry is Retry.AT_ONCE:
            # The stall itself took the stall timeout: reconnect at once, and keep the error
            # backoff as it was, so a camera that comes back is seen without delay.
            return 0.0
        if retry is Retry.AUTH_BACKOFF:
            backoff = self._auth_backoff
        else:
            backoff = self._backoff
            self._auth_backoff.reset()
        # A wait the upstream named (Retry-After, a throttled shared login) replaces the step.
        return backoff.next_delay() if error.retry_after_s is None else backoff.at_least(error.retry_after_s)

    def recovered(self) -> None:
        """A frame arrived: ``LIVE``, and the errors and their backoff are forgotten."""
        if self._failures_in_burst:
            log.info("camera %s: live again after %d failed attempts", self.name, self._failures_in_burst)
        else:
            log.info("camera %s: live", self.name)
        self.set(CameraState.LIVE)
        self.reset()

    def reset(self) -> None:
        """Forget the errors and their backoff (a new configuration may be the fix)."""
        self.error_state = None
        self._retry_at = 0.0
        self._failures_in_burst = 0
        self._backoff.reset()
        self._auth_backoff.reset()
