"""The Eagle Eye Networks camera on API v3: its live preview, as a multipart stream or image by image.

Protocol facts: the project's EEN notes (EEN-API.md), sections 3.3 (``liveImage.jpeg``,
``X-Een-Timestamp``, the v3 error body) and 3.4 (``feeds`` and the ``multipartUrl``). The
account's login and its requests are ``een_v3_account``'s.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from datetime import datetime

import aiohttp
from yarl import URL

from mjpeg_proxy.camera.errors import (
    AuthError,
    BadFrame,
    ForbiddenError,
    LoginNeeded,
    NotFoundError,
    SourceError,
    UpstreamUnavailable,
)
from mjpeg_proxy.camera.frame import Frame
from mjpeg_proxy.camera.source import Source
from mjpeg_proxy.camera.timing import Clock
from mjpeg_proxy.sources.een_config import EenCameraConfig
from mjpeg_proxy.sources.een_token_store import FileTokenStore, SharedTokenStore, TokenStore
from mjpeg_proxy.sources.een_v3_account import EenV3Account
from mjpeg_proxy.sources.een_v3_config import EenV3Config
from mjpeg_proxy.sources.http_answers import read_capped, status_error
from mjpeg_proxy.sources.multipart_stream import stream_jpegs
from mjpeg_proxy.sources.pacer import RequestGap
from mjpeg_proxy.sources.upstreams import Upstreams
from mjpeg_proxy.wire.errors import BadJpeg
from mjpeg_proxy.wire.jpeg import cut_jpeg
from mjpeg_proxy.wire.reader import ReaderStats

LIVE_IMAGE_PATH = "/api/v3.0/media/liveImage.jpeg"
FEEDS_PATH = "/api/v3.0/feeds"
MEDIA_URL_MAX_AGE_S = 2 * 60 * 60.0
"""The longest, in seconds, a ``multipartUrl`` is used: media URLs "can only be cached for a
maximum of two hours" (EEN-API.md 3.2)."""
API_TIMEOUT = aiohttp.ClientTimeout(total=30)
"""For the ``feeds`` call: an answer at once is expected."""
LIVE_IMAGE_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=30)
"""``liveImage.jpeg`` "will wait until the image is available" (EEN-API.md 3.3): a read that
takes ``sock_read`` seconds means "no preview yet", not a failure."""
STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10)
"""The stream runs for as long as it gives frames; the camera's stall watchdog judges silence."""
MAX_FEEDS_BYTES = 256 * 1024
"""The most of a ``feeds`` answer read (one camera's feeds are a few hundred bytes)."""
MAX_ERROR_BODY_BYTES = 4096
"""The most of an error answer read for its message."""
ERROR_ADVICE: Mapping[int, tuple[type[SourceError], str]] = {
    403: (ForbiddenError, "the EEN user may not see this camera's preview; give it access in the EEN web app"),
    404: (NotFoundError, "EEN knows no camera with this ESN on the account; check the camera's esn"),
}
"""What a status means for a camera, and what the user can do (EEN-API.md 3.3)."""


def build_v3(section: EenCameraConfig, account: EenV3Config, upstreams: Upstreams) -> Source:
    """The source of an ``een`` camera on the v3 ``account``: its ``preview`` mode's, on the account's shared login."""
    login = upstreams.shared(
        section, EenV3Account, lambda: EenV3Account(account, upstreams.clock, token_store(account, upstreams))
    )
    source_class = EenV3StreamSource if section.preview == "multipart" else EenV3ImageSource
    return source_class(login, section.esn, section.max_frame_bytes, upstreams.clock)


def token_store(account: EenV3Config, upstreams: Upstreams) -> TokenStore:
    """Where ``account``'s tokens live: its token file, or (cluster mode) the replicas' record seeded from it."""
    file = FileTokenStore(account.token_file)
    if upstreams.records is None:
        return file
    # The same on every replica, whatever each calls its token file: one client, one login.
    key = f"een-v3-tokens:{account.auth_url}:{account.client_id}"
    return SharedTokenStore(upstreams.records, key, file)


def parse_v3_timestamp(header: str | None) -> float | None:
    """Seconds since the epoch from an ``X-Een-Timestamp`` header, or None.

    v3 timestamps are ISO 8601 with milliseconds and an offset, e.g.
    ``2022-08-08T07:57:37.000+00:00`` (EEN-API.md 3.3); a ``Z`` is read too. A time without
    an offset is not trusted (its zone is unknown).
    """
    if not header:
        return None
    try:
        stamp = datetime.fromisoformat(header.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp.timestamp() if stamp.tzinfo is not None else None


async def answer_error(response: aiohttp.ClientResponse, where: str) -> SourceError:
    """The camera's error for a non-2xx v3 answer, with EEN's own words (``status``, ``message``; EEN-API.md 3.3).

    403 is ForbiddenError, 404 NotFoundError; a 429 or 503 that says when to come back
    sets ``retry_after_s`` (``Retry-After``); anything else is UpstreamUnavailable.
    """
    try:
        body = await response.content.read(MAX_ERROR_BODY_BYTES)
    except (aiohttp.ClientError, TimeoutError):
        body = b""
    said = _error_words(body)
    message = f"{where} answered HTTP {response.status}{': ' + said if said else ''}"
    classes: dict[int, type[SourceError]] = {}
    if response.status in ERROR_ADVICE:
        error_class, advice = ERROR_ADVICE[response.status]
        classes[response.status] = error_class
        message = f"{message}; {advice}"
    return status_error(response.status, message, response.headers, classes)


def _error_words(body: bytes) -> str:
    """``status: message`` of a v3 error body, on one line, at most 200 characters; empty for anything else."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(data, dict):
        return ""
    words = [data.get(key) for key in ("status", "message")]
    return " ".join(": ".join(word for word in words if isinstance(word, str) and word).split())[:200]


class EenV3ImageSource(Source):
    """Yields the live preview of camera ``esn`` image by image (``preview = "image"``).

    ``GET /api/v3.0/media/liveImage.jpeg?deviceId=<esn>&type=preview`` with
    ``Accept: image/jpeg``, again and again; each waits for the next preview (EEN-API.md
    3.3). One request at a time, their starts at least ``account.timing.min_request_gap_s``
    apart on ``clock``; a preview whose ``X-Een-Timestamp`` equals the last one yielded is
    skipped. The timestamp becomes the frame's ``upstream_time``.

    Raises (from ``frames()``): the errors of ``EenV3Account.get``; the errors of
    ``answer_error`` for a non-2xx answer; BadFrame for a body that is not one complete
    JPEG within ``max_frame_bytes`` (bytes after its end marker are cut off).
    """

    def __init__(self, account: EenV3Account, esn: str, max_frame_bytes: int, clock: Clock | None = None) -> None:
        self.account = account
        self.esn = esn
        self._max_frame_bytes = max_frame_bytes
        self._last_stamp: str | None = None
        self._gap = RequestGap(account.timing.min_request_gap_s, clock)

    async def frames(self) -> AsyncIterator[Frame]:
        """Yield each new preview; raise as described on the class."""
        while True:
            frame = await self._fetch()
            if frame is not None:
                yield frame

    async def _fetch(self) -> Frame | None:
        await self._gap.start()
        self.upstream_requests += 1
        where = f"EEN liveImage of camera {self.esn}"
        params = {"deviceId": self.esn, "type": "preview"}
        try:
            async with self.account.get(LIVE_IMAGE_PATH, params, LIVE_IMAGE_TIMEOUT, accept="image/jpeg") as response:
                if not 200 <= response.status < 300:
                    raise await answer_error(response, where)
                body = await read_capped(response, self._max_frame_bytes, where)
                stamp = response.headers.get("X-Een-Timestamp")
        except TimeoutError:
            return None  # no preview within the read timeout: ask again
        try:
            cut = cut_jpeg(body)
        except BadJpeg as e:
            raise BadFrame(f"{where}: {e}") from None
        if stamp is not None and stamp == self._last_stamp:
            return None
        self._last_stamp = stamp
        return Frame(cut.jpeg, upstream_time=parse_v3_timestamp(stamp), trimmed=cut.trimmed)


class EenV3StreamSource(Source):
    """Relays the multipart preview stream of camera ``esn`` (``preview = "multipart"``, the default).

    ``GET /api/v3.0/feeds?deviceId=<esn>&type=preview&include=multipartUrl`` gives the
    stream's address (EEN-API.md 3.4), used for ``MEDIA_URL_MAX_AGE_S`` at most and asked
    again after a 403 or 404 from it; the stream is read with the Bearer token through
    the project's multipart reader, each JPEG yielded as its last byte arrives; an address
    that fails before its first frame is dropped too. Empty
    ``results`` mean the camera is offline. ``stats`` counts frames, dropped parts and
    resyncs over all connections. Times are on ``clock``'s monotonic seconds.

    Raises (from ``frames()``): the errors of ``EenV3Account.get``; the errors of
    ``answer_error`` for a non-2xx answer; UpstreamUnavailable when the camera is offline,
    the ``feeds`` answer is not what EEN-API.md 3.4 shows, or the stream ends.
    """

    def __init__(self, account: EenV3Account, esn: str, max_frame_bytes: int, clock: Clock | None = None) -> None:
        self.account = account
        self.esn = esn
        self.stats = ReaderStats()
        self._max_frame_bytes = max_frame_bytes
        self._clock = clock or Clock()
        self._url: URL | None = None
        self._url_since = 0.0

    async def frames(self) -> AsyncIterator[Frame]:
        """Yield each complete JPEG of the stream; raise as described on the class."""
        url = await self._stream_url()
        where = f"EEN preview stream of camera {self.esn}"
        self.upstream_requests += 1
        streamed = False
        try:
            async with self.account.get(url, None, STREAM_TIMEOUT) as response:
                if not 200 <= response.status < 300:
                    raise await answer_error(response, where)
                hint = 'for single pictures set preview = "image"'
                async for cut in stream_jpegs(response, where, self._max_frame_bytes, self.stats, hint):
                    streamed = True
                    yield Frame(cut.jpeg, trimmed=cut.trimmed)
        except LoginNeeded:
            raise  # the account's login, not this address
        except AuthError as e:
            # A fresh token refused at this address (one tied to the old token): the
            # next attempt asks feeds for a new one, after the short backoff, not the login's.
            self._url = None
            raise UpstreamUnavailable(f"{e}; asking EEN for a new stream address") from None
        except (SourceError, TimeoutError):
            if not streamed:
                self._url = None  # an address that gave nothing: ask feeds for a new one next time
            raise

    async def _stream_url(self) -> URL:
        """The ``multipartUrl`` to use: the last one while it is young enough, else a new one from ``feeds``."""
        if self._url is not None and self._clock.monotonic() - self._url_since < MEDIA_URL_MAX_AGE_S:
            return self._url
        where = f"EEN feeds of camera {self.esn}"
        params = {"deviceId": self.esn, "type": "preview", "include": "multipartUrl"}
        self.upstream_requests += 1
        try:
            async with self.account.get(FEEDS_PATH, params, API_TIMEOUT, accept="application/json") as response:
                if not 200 <= response.status < 300:
                    raise await answer_error(response, where)
                body = await read_capped(response, MAX_FEEDS_BYTES, where)
        except TimeoutError:
            raise UpstreamUnavailable(f"{where}: no answer in {API_TIMEOUT.total:g} s") from None
        self._url = _multipart_url(body, self.esn, where)
        self._url_since = self._clock.monotonic()
        return self._url


def _multipart_url(body: bytes, esn: str, where: str) -> URL:
    """The ``multipartUrl`` of camera ``esn``'s preview feed in a ``feeds`` answer (EEN-API.md 3.4).

    Raises:
        UpstreamUnavailable: no feed (the camera is offline), or an answer of another shape.
    """
    try:
        results = json.loads(body).get("results")
    except (ValueError, UnicodeDecodeError, AttributeError):
        raise UpstreamUnavailable(f"{where}: the answer is not the JSON object EEN documents") from None
    if not isinstance(results, list):
        raise UpstreamUnavailable(f"{where}: the answer has no results list")
    feeds = [feed for feed in results if isinstance(feed, dict) and feed.get("deviceId", esn) == esn]
    if not feeds:
        raise UpstreamUnavailable(f"EEN says camera {esn} is offline (it has no preview feed now)")
    address = feeds[0].get("multipartUrl")
    if not isinstance(address, str) or not address:
        raise UpstreamUnavailable(f"{where}: the preview feed has no multipartUrl")
    try:
        url = URL(address)
    except ValueError:
        url = URL()
    if not url.is_absolute():
        raise UpstreamUnavailable(f"{where}: the multipartUrl is not an absolute address")
    return url
