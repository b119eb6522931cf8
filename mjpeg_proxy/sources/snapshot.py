"""The snapshot camera: GET a JPEG URL at a steady rate."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp

from mjpeg_proxy.errors import AuthError, BadFrame, ForbiddenError, NotFoundError, SourceError, UpstreamUnavailable
from mjpeg_proxy.frame import Frame
from mjpeg_proxy.jpeg import complete_jpeg
from mjpeg_proxy.redact import safe_url
from mjpeg_proxy.sources.base import Pacer, Source
from mjpeg_proxy.sources.http_body import describe, read_capped

REQUEST_TIMEOUT_S = 10.0


class SnapshotSource(Source):
    """Fetches ``url`` ``fps`` times a second, each request starting on a steady grid.

    ``http`` is the application's shared client session. With ``username`` set,
    ``auth`` chooses HTTP Basic (RFC 7617) or Digest (RFC 7616, via aiohttp's
    ``DigestAuthMiddleware``). A body over ``max_frame_bytes`` bytes is refused
    without being read whole.

    Raises (from ``frames()``): AuthError on 401, ForbiddenError on 403, NotFoundError
    on 404, UpstreamUnavailable on any other non-2xx answer, network error or a
    request that takes over 10 s, BadFrame on a body that is not one complete JPEG
    or is too large.
    """

    def __init__(
        self,
        url: str,
        fps: float,
        http: aiohttp.ClientSession,
        *,
        username: str | None = None,
        password: str | None = None,
        auth: str | None = None,
        max_frame_bytes: int,
    ) -> None:
        self.url = url
        self.fps = fps
        self._http = http
        self._max_frame_bytes = max_frame_bytes
        self._headers: dict[str, str] = {}
        self._middlewares: tuple[aiohttp.DigestAuthMiddleware, ...] = ()
        if username is not None:
            if auth == "digest":
                # One middleware per camera: it keeps the server's nonce between requests.
                self._middlewares = (aiohttp.DigestAuthMiddleware(username, password or ""),)
            else:
                self._headers = {"Authorization": aiohttp.encode_basic_auth(username, password or "")}
        self._pacer = Pacer(fps)

    async def frames(self) -> AsyncIterator[Frame]:
        while True:
            await self._pacer.tick()
            yield Frame(await self.fetch())

    async def fetch(self) -> bytes:
        """GET the URL once and return the JPEG; raises as described on the class."""
        where = safe_url(self.url)
        try:
            async with self._http.get(
                self.url,
                headers=self._headers,
                middlewares=self._middlewares,
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            ) as response:
                _raise_for_status(response.status, where)
                body = await read_capped(response, self._max_frame_bytes, where)
        except SourceError:
            raise
        except TimeoutError:
            raise UpstreamUnavailable(f"{where} did not answer within {REQUEST_TIMEOUT_S:g} s") from None
        except aiohttp.ClientError as e:
            raise UpstreamUnavailable(f"{where}: {describe(e)}") from None
        try:
            return complete_jpeg(body)
        except BadFrame as e:
            raise BadFrame(f"{where}: {e}") from None


def _raise_for_status(status: int, where: str) -> None:
    if 200 <= status < 300:
        return
    message = f"{where} answered HTTP {status}"
    if status == 401:
        raise AuthError(message + " (wrong username or password?)")
    if status == 403:
        raise ForbiddenError(message)
    if status == 404:
        raise NotFoundError(message)
    raise UpstreamUnavailable(message)
