"""One login at a time for all the cameras of an account, and a wait after a failed one.

An account's cameras ask for its login together (at start, after a 401); the first ask
starts the attempt and the others join it, so the upstream sees one login, not one per
camera. After a failure, asks fail fast with the same error until the next attempt is
due, so no camera multiplies login requests. Used by the EEN v1 session (a login) and the
v3 account (a token refresh).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from mjpeg_proxy.camera.backoff import Backoff
from mjpeg_proxy.camera.errors import AuthError, SourceError, UpstreamUnavailable
from mjpeg_proxy.camera.timing import Clock

log = logging.getLogger(__name__)


def again(error: SourceError, retry_after_s: float) -> SourceError:
    """A fresh copy of a failure for another caller, saying when to try again."""
    return type(error)(str(error), retry_after_s=retry_after_s)


class LoginGate:
    """Runs an account's login attempts one at a time, with backoff between failed ones.

    ``what`` names the attempt in the log ("EEN login"). After an ``AuthError`` (a
    refusal) the next attempt waits the steps of ``refused_backoff_s``; after any other
    failure, those of ``failed_backoff_s`` ((first, longest) seconds, doubling); a failure
    that names its wait (``retry_after_s``, the upstream's ``Retry-After``) waits that
    long. Waits are timed on ``clock``'s monotonic seconds.
    """

    def __init__(
        self,
        what: str,
        refused_backoff_s: tuple[float, float],
        failed_backoff_s: tuple[float, float],
        clock: Clock,
    ) -> None:
        self._what = what
        self._clock = clock
        self._refused = Backoff(*refused_backoff_s)
        self._failed = Backoff(*failed_backoff_s)
        self._next_at = 0.0
        self._last_error: SourceError | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether an attempt is under way."""
        return self._task is not None

    async def run(self, attempt: Callable[[], Awaitable[None]]) -> None:
        """Run ``attempt()``, or join the one under way; return when it succeeded.

        The attempt runs as a task of its own, shielded from the callers: a camera that
        gives up waiting (its stall watchdog) does not cancel it for the others.

        Raises:
            SourceError: the attempt failed (each caller gets its own copy, with the wait
                before the next attempt as ``retry_after_s``), or the last one failed and
                the next is not due yet.
        """
        if self._task is None:
            wait_s = self._next_at - self._clock.monotonic()
            if self._last_error is not None and wait_s > 0:
                raise again(self._last_error, wait_s)
            self._task = asyncio.create_task(self._once(attempt), name=self._what)
        await asyncio.shield(self._task)

    async def settled(self) -> None:
        """Wait for the attempt under way, if any, to end (its outcome is the callers'): before closing its client."""
        if self._task is not None:
            await asyncio.gather(asyncio.shield(self._task), return_exceptions=True)

    def forget(self) -> None:
        """Forget the last failure: the next ``run`` attempts at once (a new login was written)."""
        self._last_error = None
        self._refused.reset()
        self._failed.reset()

    async def _once(self, attempt: Callable[[], Awaitable[None]]) -> None:
        try:
            await attempt()
        except BaseException as error:
            if isinstance(error, SourceError):
                failure: SourceError = error
            else:  # cancelled (shutdown) or a bug: still counts against the next attempt
                failure = UpstreamUnavailable(f"{self._what} did not finish ({type(error).__name__})")
            if failure.retry_after_s is not None:  # the upstream said when (Retry-After)
                delay = failure.retry_after_s
            else:
                delay = (self._refused if isinstance(failure, AuthError) else self._failed).next_delay()
            self._next_at = self._clock.monotonic() + delay
            self._last_error = failure
            log.error("%s failed: %s; next attempt in %.0f s", self._what, failure, delay)
            if failure is not error:
                raise
            raise again(failure, delay) from None
        else:
            self.forget()
        finally:
            self._task = None
