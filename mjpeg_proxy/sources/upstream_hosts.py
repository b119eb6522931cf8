"""What the cameras on one upstream host share (the channels of an NVR).

A cap on short requests in progress, spaced start-ups, and which credentials work there.

Dahua and similar devices answer 401 when their connection limit is full, not only for
a wrong password, and their small web servers wedge under bursts of requests (for
example rroller/dahua issue 603 and pull request 606); a small Dahua camera allows 6
users at once (AlexxIT/WebRTC issue 959).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import random
from collections.abc import Callable, Iterator
from types import TracebackType

from yarl import URL

from mjpeg_proxy.camera.timing import Clock

START_GAP_S = 0.05
"""Largest gap, in seconds, between two cameras starting on one host; each gap is drawn
from the upper half of it, so a wall of cameras never starts in lockstep."""
VERDICT_WAIT_S = 10.0
"""How long, in seconds, a 401 waits at most for the answers of the other requests in
flight with the same credentials on the host, before it is judged a refusal."""
START_HOLD_S = 2.0
"""How long, in seconds, a stream that has answered keeps its place among its host's
short requests while its first part does not come: the device has done its handshake,
and a silent stream must not keep the other cameras of the device out (whether it is
stalled is the camera's watchdog's to say)."""
RAISE_AFTER_SUCCESSES = 8
"""After a device refused a request for being busy, its host's cap stays lowered (see
``Places``); each this many requests it accepts raise it by one again."""
HOST_SILENT_S = 10.0
"""A host that has answered no request for this many seconds is not answering: waiting
for a place there is then no longer the proxy's own doing (see ``UpstreamHost.answering``)."""
CREDENTIALS_TRUSTED_S = 60.0
"""Credentials count as working on a host for this many seconds after a camera last used
them successfully (the longest step of a camera's normal backoff), and all the while one
holds an accepted answer open (an MJPEG stream)."""


class UpstreamHosts:
    """The registry of upstream hosts, one per application, shared by every HTTP camera.

    A host is a URL's scheme, host name and port; ``host(url)`` gives its
    ``UpstreamHost``, which lets at most ``max_requests_per_host`` short requests be in
    progress at once. ``rand`` (values in [0, 1)) draws the gaps between start-ups;
    ``clock`` gives the time and the waits.
    """

    def __init__(
        self, max_requests_per_host: int, rand: Callable[[], float] = random.random, clock: Clock | None = None
    ) -> None:
        if max_requests_per_host < 1:
            raise ValueError("need max_requests_per_host >= 1")
        self.max_requests_per_host = max_requests_per_host
        self._rand = rand
        self._clock = clock or Clock()
        self._hosts: dict[tuple[str, str, int | None], UpstreamHost] = {}

    def host(self, url: str) -> UpstreamHost:
        """The shared ``UpstreamHost`` of ``url``."""
        parsed = URL(url)
        key = (parsed.scheme, parsed.host or "", parsed.port)  # yarl gives the scheme's default port
        if key not in self._hosts:
            self._hosts[key] = UpstreamHost(self.max_requests_per_host, self._rand, self._clock)
        return self._hosts[key]


class UpstreamHost:
    """One upstream host: its cap of short requests in progress, its start-up turns, and the credentials used on it.

    Made by ``UpstreamHosts.host``.
    """

    def __init__(self, max_requests: int, rand: Callable[[], float], clock: Clock) -> None:
        self._places = Places(max_requests)
        self._rand = rand
        self._clock = clock
        self._next_start = 0.0  # monotonic time before which no other camera starts here
        self._credentials: dict[str, Credentials] = {}
        self._answered_at = -HOST_SILENT_S  # monotonic time of the last answer's head

    def answered(self) -> None:
        """The host answered a request (any status: it is alive)."""
        self._answered_at = self._clock.monotonic()

    def answering(self) -> bool:
        """Whether the host has answered a request within ``HOST_SILENT_S``.

        Requests waiting for a place there wait on the proxy's cap, not on a dead device.
        """
        return self._clock.monotonic() - self._answered_at < HOST_SILENT_S

    async def turn(self) -> None:
        """Wait for this camera's turn to start (or restart after an error) on the host.

        Start-ups are ``START_GAP_S / 2`` to ``START_GAP_S`` seconds apart; a camera that
        starts alone does not wait.
        """
        now = self._clock.monotonic()
        start = max(now, self._next_start)
        self._next_start = start + START_GAP_S * (1 + self._rand()) / 2
        await self._clock.sleep(start - now)

    def place(self) -> RequestPlace:
        """A place for one short request; ``async with`` it around the request."""
        return RequestPlace(self._places)

    def credentials(self, username: str | None, password: str | None) -> Credentials:
        """The shared record of ``username`` and ``password`` (None for none) on this host."""
        # Keyed by a digest, so the registry holds no copy of a password.
        key = hashlib.sha256(f"{username}\0{password}".encode()).hexdigest()
        if key not in self._credentials:
            self._credentials[key] = Credentials(self._clock)
        return self._credentials[key]


class Places:
    """The places for short requests on one host: at most ``limit`` taken at once, handed out first come, first served.

    ``limit`` starts at ``ceiling`` (``max_upstream_requests_per_host``). A device that
    refuses a request for being busy while others were starting (``busy``) allows fewer
    than were in progress then, so the limit drops below that, and requests wait their
    turn here instead of being refused there in lockstep; each ``RAISE_AFTER_SUCCESSES``
    requests it accepts (``succeeded``) raise the limit by one again, up to the ceiling. A
    busy refusal of a request that was starting alone says nothing of start-ups (the
    device's streams are full) and changes nothing.
    """

    def __init__(self, ceiling: int) -> None:
        self.ceiling = self.limit = ceiling
        self.taken = 0
        self._successes = 0  # accepted requests since the limit last changed
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self) -> int:
        """Wait for a place and take it; return how many places are taken with it."""
        if self.taken < self.limit and not self._waiters:
            self.taken += 1
            return self.taken
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed over just as the wait was cancelled
            elif waiter in self._waiters:  # (a hand-over may have dropped it already)
                self._waiters.remove(waiter)
            raise
        return self.taken

    def release(self) -> None:
        """Give a place back; the longest waiter gets it if the limit allows."""
        self.taken -= 1
        self._hand_over()

    def busy(self, taken: int) -> None:
        """The device refused a request, for being busy, that was sent while ``taken`` places were taken (it included).

        Lower the limit below that, when others were.
        """
        if taken >= 2:
            self.limit = min(self.limit, taken - 1)
            self._successes = 0

    def succeeded(self) -> None:
        """The device accepted a request: after ``RAISE_AFTER_SUCCESSES`` of them a lowered limit rises by one."""
        self._successes += 1
        if self.limit < self.ceiling and self._successes >= RAISE_AFTER_SUCCESSES:
            self.limit += 1
            self._successes = 0
            self._hand_over()

    def _hand_over(self) -> None:
        while self._waiters and self.taken < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.taken += 1
                waiter.set_result(None)


class RequestPlace:
    """A short request's place among its host's ``Places``.

    ``async with`` (or ``acquire``) waits for a free place (first come, first served) and
    frees it at the end of the block, or earlier with ``release()``: an MJPEG stream keeps
    its place only until its first part is in, so established streams are never capped.
    """

    def __init__(self, places: Places) -> None:
        self._places = places
        self._held = False
        self._taken_with = 0  # places taken, this one included, when it was had

    async def acquire(self) -> None:
        """Wait for a free place and take it (first come, first served)."""
        self._taken_with = await self._places.acquire()
        self._held = True

    async def __aenter__(self) -> RequestPlace:
        await self.acquire()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()

    def release(self) -> None:
        """Free the place now (again later does nothing)."""
        if self._held:
            self._held = False
            self._places.release()

    def refused_busy(self) -> None:
        """The device refused this request for being busy.

        It may allow fewer requests in progress than were with this one (``Places.busy``).
        """
        self._places.busy(self._taken_with)

    def succeeded(self) -> None:
        """The device accepted this request (``Places.succeeded``)."""
        self._places.succeeded()


class Credentials:
    """One username and password on one host, and which cameras it worked for lately.

    A 401 while the same credentials work for another camera on the host is the device's
    connection limit, not a refusal: ``working_for_another`` tells them apart. When the
    device is asked by several cameras at once (a wall starting), the 401s may come before
    the first acceptance does, so the verdict waits for the answers of the requests still
    in flight with the same credentials (``asking``). ``clock`` gives the time.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._open: collections.Counter[object] = collections.Counter()
        self._last_accepted: dict[object, float] = {}
        self._asking: collections.Counter[object] = collections.Counter()
        self._unanswered = 0  # requests that ended before their answer (cancelled, failed)
        self._answered = asyncio.Event()

    @contextlib.contextmanager
    def asking(self, by: object) -> Iterator[Callable[[], None]]:
        """Record a request of camera ``by`` (its source) in flight with these credentials.

        The block gets the function to call when its answer's head is in (at the latest, the
        end of the block).
        """
        done = False

        def answered() -> None:
            nonlocal done
            if not done:
                done = True
                self._asking[by] -= 1
                if not self._asking[by]:
                    del self._asking[by]
                self._signal()

        self._asking[by] += 1
        try:
            yield answered
        finally:
            if not done:
                self._unanswered += 1
            answered()

    @contextlib.contextmanager
    def accepted(self, by: object) -> Iterator[None]:
        """Record that the host accepted these credentials for camera ``by`` (its source).

        The record holds for as long as the block runs (an MJPEG stream: its whole life)
        and ``CREDENTIALS_TRUSTED_S`` after.
        """
        self._open[by] += 1
        self._signal()
        try:
            yield
        finally:
            self._open[by] -= 1
            if not self._open[by]:
                del self._open[by]
            now = self._clock.monotonic()
            self._last_accepted[by] = now
            # Forget cameras whose success is too old to count, so a source that a reload
            # replaced is not held for ever.
            for camera in [camera for camera, at in self._last_accepted.items() if now - at >= CREDENTIALS_TRUSTED_S]:
                del self._last_accepted[camera]

    async def working_for_another(self, me: object) -> bool | None:
        """Whether the host accepts these credentials for a camera other than ``me``.

        An accepted answer held open now, one within ``CREDENTIALS_TRUSTED_S``, or one of
        the requests of other cameras in flight now, once answered (waiting
        ``VERDICT_WAIT_S`` at most). None when that cannot be told: such a request ended
        without an answer (cancelled: its viewer left, a reload) or was still unanswered at
        the end of the wait, so nothing says the credentials are refused either.
        """
        unanswered = self._unanswered
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(VERDICT_WAIT_S):
                while not self._accepted_for_another(me) and self._others_asking(me):
                    await self._answered.wait()
        if self._accepted_for_another(me):
            return True
        return None if self._unanswered > unanswered or self._others_asking(me) else False

    def _others_asking(self, me: object) -> bool:
        return any(camera is not me for camera in self._asking)

    def _accepted_for_another(self, me: object) -> bool:
        now = self._clock.monotonic()
        return any(camera is not me for camera in self._open) or any(
            now - at < CREDENTIALS_TRUSTED_S for camera, at in self._last_accepted.items() if camera is not me
        )

    def _signal(self) -> None:
        woken, self._answered = self._answered, asyncio.Event()
        woken.set()
