"""What the sources that GET from a camera share.

Authentication, the host's cap of short requests, and status checks (``http_answers``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator

import aiohttp

from mjpeg_proxy.camera.errors import UpstreamUnavailable
from mjpeg_proxy.camera.source import Source
from mjpeg_proxy.sources.http_answers import client_errors, raise_for_status
from mjpeg_proxy.sources.http_config import HttpCameraConfig
from mjpeg_proxy.sources.lenient_http import LenientFallback, LenientResponse
from mjpeg_proxy.sources.redact import safe_url
from mjpeg_proxy.sources.upstream_hosts import START_HOLD_S, RequestPlace, UpstreamHosts

ANSWERING_CHECK_S = 1.0
"""While a request waits for a place at its host, how often it looks again whether the host
answers (``UpstreamHost.answering``), in seconds."""


class CameraAuth:
    """HTTP authentication for one camera.

    Basic (RFC 7617) as a header, or Digest (RFC 7616) through aiohttp's
    ``DigestAuthMiddleware``; nothing without a username.

    Pass ``headers`` and ``middlewares`` to every request of the camera. One object per
    camera: the Digest middleware keeps the server's nonce between requests.
    """

    def __init__(self, username: str | None, password: str | None, scheme: str | None) -> None:
        self.headers: dict[str, str] = {}
        self.middlewares: tuple[aiohttp.DigestAuthMiddleware, ...] = ()
        if username is None:
            return
        if scheme == "digest":
            self.middlewares = (aiohttp.DigestAuthMiddleware(username, password or ""),)
        else:
            self.headers = {"Authorization": aiohttp.encode_basic_auth(username, password or "")}


class HttpCameraSource(Source):
    """Base of the sources that GET from a camera's URL (``config``).

    Requests go through the shared ``http`` session, with the camera's authentication and
    ``max_frame_bytes`` cap.

    ``hosts`` is the application's registry of upstream hosts, shared with the other
    cameras on the same host. ``where`` is the URL as logs and errors may show it.
    """

    def __init__(self, config: HttpCameraConfig, http: aiohttp.ClientSession, hosts: UpstreamHosts) -> None:
        self.url = config.url
        self.where = safe_url(config.url)
        self._http = http
        self._host = hosts.host(config.url)
        self._credentials = self._host.credentials(config.username, config.password)
        self._auth = CameraAuth(config.username, config.password, config.auth)
        self._max_frame_bytes = config.max_frame_bytes
        headers = {**http.headers, **self._auth.headers}
        self._fallback = LenientFallback(config.url, self.where, headers, self._auth.middlewares)
        self._place: RequestPlace | None = None

    async def turn(self) -> None:
        """Wait for this camera's turn to start on its host (see ``UpstreamHost.turn``).

        ``frames()`` calls it first, so the cameras of one device start spread out. The wait
        is the proxy's own, not the camera's (``Source.held_back``).
        """
        with self.held_back():
            await self._host.turn()

    def started(self) -> None:
        """Free the place of the request in progress among the host's short requests.

        Called once it is past its start-up (an MJPEG stream's first part is in).
        """
        if self._place is not None:
            self._place.release()

    @contextlib.asynccontextmanager
    async def get(
        self, timeout: aiohttp.ClientTimeout, limit_s: float
    ) -> AsyncIterator[aiohttp.ClientResponse | LenientResponse]:
        """GET the camera's URL; yield the 2xx response.

        The request first waits for a place among the short requests to the camera's host
        (``max_upstream_requests_per_host``; a wait that is not the camera's, see
        ``Source.held_back``), and holds it, HTTP Digest handshake included, until the block
        ends, ``started()`` frees it, or ``START_HOLD_S`` after the answer's head; ``timeout``
        starts once the place is had. It goes through aiohttp, or through the lenient
        reader once aiohttp's parser has refused this camera's answer (``LenientFallback``).

        Errors while opening it or while the caller reads it become SourceErrors: the
        status as ``raise_for_status`` says, UpstreamUnavailable for a network error or for
        ``timeout`` running out (``limit_s`` is the seconds to name in the message), and
        UpstreamUnavailable for a 401 while the same credentials work for another camera
        on the host (then the device's connection limit is full).
        """
        self.upstream_requests += 1
        strict = functools.partial(
            self._http.get, self.url, headers=self._auth.headers, middlewares=self._auth.middlewares, timeout=timeout
        )
        place = self._place = self._host.place()
        await self._take(place)
        try:
            with (
                client_errors(self.where, f"{self.where} did not answer within {limit_s:g} s"),
                self._credentials.asking(self) as answered,
            ):
                async with self._fallback.open(strict, timeout) as response:
                    answered()
                    self._host.answered()
                    if response.status == 401:
                        await self._judge_401(place)
                    raise_for_status(response.status, self.where, response.headers)
                    place.succeeded()
                    give_back = asyncio.get_running_loop().call_later(START_HOLD_S, place.release)
                    try:
                        with self._credentials.accepted(self):
                            yield response
                    finally:
                        give_back.cancel()
        finally:
            place.release()

    async def _take(self, place: RequestPlace) -> None:
        """Take ``place`` at the camera's host.

        While the host answers requests, the wait is the proxy's own and not the camera's
        (``Source.held_back``): its stall watchdog does not count it; a host that answers
        nothing is left to the watchdog.
        """
        taking = asyncio.ensure_future(place.acquire())
        try:
            while not taking.done():
                # Looked at again each ANSWERING_CHECK_S: a device may start or stop answering.
                with self.held_back() if self._host.answering() else contextlib.nullcontext():
                    await asyncio.wait({taking}, timeout=ANSWERING_CHECK_S)
            taking.result()
        except BaseException:
            if taking.done() and not taking.cancelled() and taking.exception() is None:
                place.release()  # taken just as the wait ended
            else:
                taking.cancel()
            raise

    async def _judge_401(self, place: RequestPlace) -> None:
        """Tell a refusal of the credentials from a busy device; a refusal falls through.

        A 401 while the same credentials work for another camera on the host is the
        device's connection limit, and one that cannot be told yet is not a refusal
        either (``Credentials.working_for_another``).

        Raises:
            UpstreamUnavailable: not a refusal: retry soon, with the normal backoff.
        """
        working = await self._credentials.working_for_another(self)
        if working:
            place.refused_busy()
            raise UpstreamUnavailable(
                f"{self.where} answered HTTP 401, but the same username and password work for "
                "another camera on this host: its connection limit is probably full; retrying soon"
            )
        if working is None:
            raise UpstreamUnavailable(
                f"{self.where} answered HTTP 401 while other logins with the same username and password "
                "there were cut short; retrying soon to tell a refusal from a busy device"
            )
