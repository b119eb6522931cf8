"""Reading an upstream's HTTP answer safely: bounded bodies, errors without URLs."""

from __future__ import annotations

import aiohttp

from mjpeg_proxy.errors import BadFrame


async def read_capped(response: aiohttp.ClientResponse, max_bytes: int, what: str) -> bytes:
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
