"""HTTP answers and client errors turned into the camera's errors, for every HTTP source.

A status outside 200-299 becomes the ``SourceError`` of its class (``ERROR_BY_STATUS``),
carrying the wait a ``Retry-After`` asks for; aiohttp's exceptions become
``UpstreamUnavailable`` with a text that holds no URL; a body is read up to a cap.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import aiohttp

from mjpeg_proxy.camera.errors import (
    AuthError,
    BadFrame,
    ForbiddenError,
    NotFoundError,
    SourceError,
    UpstreamUnavailable,
)
from mjpeg_proxy.sources.lenient_http import LenientResponse
from mjpeg_proxy.sources.retry_after import answer_error

ERROR_BY_STATUS: Mapping[int, type[SourceError]] = {401: AuthError, 403: ForbiddenError, 404: NotFoundError}
"""The error of an answer by its status; any other status outside 200-299 is UpstreamUnavailable."""


def status_error(
    status: int, message: str, headers: Mapping[str, str], classes: Mapping[int, type[SourceError]] = ERROR_BY_STATUS
) -> SourceError:
    """The SourceError for a non-2xx answer with ``status`` and ``headers``.

    Its class is ``classes[status]``, else UpstreamUnavailable; a 429 or 503 whose
    ``headers`` say when to come back (``retry_after.retry_after_s``) sets the error's
    ``retry_after_s`` and adds the wait to ``message``.
    """
    return answer_error(classes.get(status, UpstreamUnavailable), message, status, headers)


def raise_for_status(status: int, where: str, headers: Mapping[str, str]) -> None:
    """Raise the SourceError for a non-2xx ``status`` from the camera at ``where``.

    Raises:
        AuthError: 401. ForbiddenError: 403. NotFoundError: 404.
        UpstreamUnavailable: any other status outside 200-299 (see ``status_error``).
    """
    if 200 <= status < 300:
        return
    message = f"{where} answered HTTP {status}"
    if status == 401:
        message += ": wrong username or password?"
    raise status_error(status, message, headers)


@contextlib.contextmanager
def client_errors(where: str, timeout_message: str | None) -> Iterator[None]:
    """Turn aiohttp's exceptions in the block into UpstreamUnavailable.

    The message is ``where`` and the kind of error (``describe``); a timeout's is
    ``timeout_message``, or, when that is None, the ``TimeoutError`` goes through for the
    caller to judge (a long poll that got no answer yet).

    Raises:
        UpstreamUnavailable: an ``aiohttp.ClientError``, or a timeout with a message.
        TimeoutError: a timeout without ``timeout_message``.
    """
    try:
        yield
    except TimeoutError:  # before ClientError: aiohttp's timeouts are both
        if timeout_message is None:
            raise
        raise UpstreamUnavailable(timeout_message) from None
    except aiohttp.ClientError as e:
        raise UpstreamUnavailable(f"{where}: {describe(e)}") from None


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


async def read_capped(response: aiohttp.ClientResponse | LenientResponse, max_bytes: int, what: str) -> bytes:
    """Return the body of ``response``, refusing to hold more than ``max_bytes`` bytes.

    ``what`` names the upstream in the error message (no credentials, no query). A body
    that ends, with the connection, before its ``Content-Length`` is returned as it came:
    some cameras count a byte they never send; the JPEG check decides whether it is whole.

    Raises:
        BadFrame: the body announces or delivers more than ``max_bytes`` bytes.
    """
    if response.content_length is not None and response.content_length > max_bytes:
        raise BadFrame(f"{what} announced {response.content_length} bytes, over the cap of {max_bytes}")
    body = bytearray()
    try:
        async for chunk in response.content.iter_any():
            body += chunk
            if len(body) > max_bytes:
                raise BadFrame(f"{what} sent over {max_bytes} bytes, the cap for one frame")
    except aiohttp.ClientPayloadError:
        if not body:
            raise
    return bytes(body)
