"""What the sources that GET from a camera share: authentication, status checks,
bounded bodies, and error texts without URLs."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator

import aiohttp

from mjpeg_proxy.errors import AuthError, BadFrame, ForbiddenError, NotFoundError, SourceError, UpstreamUnavailable
from mjpeg_proxy.redact import safe_url
from mjpeg_proxy.sources.base import Source
from mjpeg_proxy.sources.lenient_http import LenientFallback, LenientResponse


class CameraAuth:
    """HTTP authentication for one camera: Basic (RFC 7617) as a header, or Digest
    (RFC 7616) through aiohttp's ``DigestAuthMiddleware``; nothing without a username.

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
    """Base of the sources that GET from a camera's ``url`` through the shared ``http``
    session, with the camera's authentication and ``max_frame_bytes`` cap. ``where`` is
    the URL as logs and errors may show it."""

    def __init__(
        self,
        url: str,
        http: aiohttp.ClientSession,
        *,
        username: str | None = None,
        password: str | None = None,
        auth: str | None = None,
        max_frame_bytes: int,
    ) -> None:
        self.url = url
        self.where = safe_url(url)
        self._http = http
        self._auth = CameraAuth(username, password, auth)
        self._max_frame_bytes = max_frame_bytes
        headers = {**http.headers, **self._auth.headers}
        self._fallback = LenientFallback(url, self.where, headers, self._auth.middlewares)

    @contextlib.asynccontextmanager
    async def get(
        self, timeout: aiohttp.ClientTimeout, limit_s: float
    ) -> AsyncIterator[aiohttp.ClientResponse | LenientResponse]:
        """GET the camera's URL; yield the 2xx response.

        Through aiohttp, or through the lenient reader once aiohttp's parser has refused
        this camera's answer (``LenientFallback``). Errors while opening it or while the
        caller reads it become SourceErrors: the status as ``raise_for_status`` says,
        UpstreamUnavailable for a network error or for ``timeout`` running out
        (``limit_s`` is the seconds to name in the message).
        """
        self.upstream_requests += 1
        strict = functools.partial(
            self._http.get, self.url, headers=self._auth.headers, middlewares=self._auth.middlewares, timeout=timeout
        )
        try:
            async with self._fallback.open(strict, timeout) as response:
                raise_for_status(response.status, self.where)
                yield response
        except SourceError:
            raise
        except TimeoutError:
            raise UpstreamUnavailable(f"{self.where} did not answer within {limit_s:g} s") from None
        except aiohttp.ClientError as e:
            raise UpstreamUnavailable(f"{self.where}: {describe(e)}") from None


def raise_for_status(status: int, where: str) -> None:
    """Raise the SourceError for a non-2xx ``status`` from the camera at ``where``.

    Raises:
        AuthError: 401. ForbiddenError: 403. NotFoundError: 404.
        UpstreamUnavailable: any other status outside 200-299.
    """
    if 200 <= status < 300:
        return
    message = f"{where} answered HTTP {status}"
    if status == 401:
        raise AuthError(message + ": wrong username or password?")
    if status == 403:
        raise ForbiddenError(message)
    if status == 404:
        raise NotFoundError(message)
    raise UpstreamUnavailable(message)


async def read_capped(response: aiohttp.ClientResponse | LenientResponse, max_bytes: int, what: str) -> bytes:
    """Return the body of ``response``, refusing to hold more than ``max_bytes`` bytes.

    ``what`` names the upstream in the error message (no credentials, no query).

    Raises:
        BadFrame: the body announces or delivers more than ``max_bytes`` bytes.
    """
    if response.content_length is not None and response.content_length > max_bytes:
        raise BadFrame(f"{what} announced {response.content_length} bytes, over the cap of {max_bytes}")
    body = bytearray()
    async for chunk in response.content.iter_any():
        body += chunk
        if len(body) > max_bytes:
            raise BadFrame(f"{what} sent over {max_bytes} bytes, the cap for one frame")
    return bytes(body)


def describe(error: aiohttp.ClientError) -> str:
    """A short text for ``error`` without its URL.

    aiohttp's error texts repeat the full URL with its query, which may hold a token
    or session key, so only the kind of error and its cause are kept.
    """
    if isinstance(error, aiohttp.ClientConnectorError):
        return f"{type(error).__name__}: {error.os_error.strerror or type(error.os_error).__name__}"
    if isinstance(error, aiohttp.ClientResponseError):
        return f"{type(error).__name__} (HTTP {error.status})"
    return type(error).__name__
