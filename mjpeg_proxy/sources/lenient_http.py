"""A lenient HTTP/1.1 GET for cameras whose answers aiohttp's parser refuses.

Embedded camera web servers (GoAhead and others) write answers that RFC 9112 forbids and
that aiohttp's parsers (llhttp and the pure-Python one alike) refuse with "Invalid header
token", "Duplicate Content-Length" and the like, while curl and browsers show the
picture. This module reads such an answer on a plain asyncio stream (TLS through ``ssl``
for https), skipping or repairing what it cannot take as it is:

- a header line without a name (GoAhead writes its date alone: ``Tue, 12 Jun 2012
  01:56:34 GMT``), with an empty name, or without a colon is skipped;
- whitespace between a field name and its colon is removed (RFC 9112 section 5.1 has
  proxies remove it from responses);
- ``Content-Length`` repeated or given as a list (``12, 12``) with equal values is that
  length (RFC 9110 section 8.6); with differing or unreadable values the body runs
  until the connection closes, at most the largest value, and the JPEG check decides;
- obs-fold continuation lines (RFC 9112 section 5.2) are joined; LF-only line ends, a
  line that is only whitespace ending the header block, a status line without reason
  phrase or with a lowercase ``http/``, whitespace before the first header line, and
  any byte in a value (read as Latin-1) are accepted;
- the body is framed by chunked coding (chunk lines ending in LF alone, chunk
  extensions ignored; it wins over ``Content-Length``, RFC 9112 section 6.3), by
  ``Content-Length``, or by the connection closing.

It refuses an answer whose first line is not an HTTP status line, a header block over
``MAX_HEAD_BYTES``, and a chunk size that is not hexadecimal. ``LenientFallback`` uses it
for a camera only once aiohttp has refused the camera's answer. The head is read by
``lenient_head``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.http_exceptions import ContentLengthError, HttpProcessingError
from multidict import CIMultiDict
from yarl import URL

from mjpeg_proxy.camera.errors import UpstreamUnavailable
from mjpeg_proxy.sources.lenient_head import (
    CONTROL_RE,
    MAX_HEAD_BYTES,
    Framing,
    HttpHead,
    body_framing,
    parse_head,
    read_head,
)

log = logging.getLogger(__name__)

MAX_REDIRECTS = 10
"""Redirects followed for one request, as many as aiohttp follows."""
READ_BYTES = 64 * 1024
"""Most bytes handed on at once from a body."""

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_OWN_HEADERS = frozenset({"host", "connection", "accept"})


class LenientBody:
    """The body of a ``LenientResponse``, read once with ``iter_any()`` (as aiohttp's ``response.content``).

    Raises (from ``iter_any()``): UpstreamUnavailable when the connection fails, or the
    chunked coding is broken (a chunk cut short included).
    """

    def __init__(self, reader: asyncio.StreamReader, framing: Framing, where: str) -> None:
        self._reader = reader
        self._framing = framing
        self._where = where

    async def iter_any(self) -> AsyncIterator[bytes]:
        """Yield the body in pieces of at most ``READ_BYTES`` bytes as they arrive."""
        try:
            if self._framing.chunked:
                async for piece in self._chunks():
                    yield piece
            else:
                # A body the connection's close cuts short of its Content-Length ends there,
                # as through aiohttp (``http_client.read_capped``): some cameras count a byte
                # they never send, and the JPEG check decides whether what came is whole.
                async for piece in self._until(self._framing.length, exact=False):
                    yield piece
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
            # a chunk line over the reader's limit is a ValueError from readuntil
            raise UpstreamUnavailable(f"{self._where}: {_describe(e)}") from None

    async def _until(self, length: int | None, *, exact: bool) -> AsyncIterator[bytes]:
        received = 0
        while length is None or received < length:
            piece = await self._reader.read(READ_BYTES if length is None else min(READ_BYTES, length - received))
            if not piece:
                if exact and length is not None:
                    raise UpstreamUnavailable(f"{self._where} closed the connection after {received} of {length} bytes")
                return
            received += len(piece)
            yield piece

    async def _chunks(self) -> AsyncIterator[bytes]:
        while True:
            line = await self._reader.readuntil(b"\n")
            size_text = line.split(b";", 1)[0].strip()
            if not re.fullmatch(rb"[0-9A-Fa-f]{1,15}", size_text):
                raise UpstreamUnavailable(f"{self._where} sent a broken chunked body (a chunk size line {line[:20]!r})")
            size = int(size_text, 16)
            if size == 0:
                while (await self._reader.readline()).strip():  # trailer fields, ignored
                    pass
                return
            async for piece in self._until(size, exact=True):
                yield piece
            await self._reader.readuntil(b"\n")  # the line end after the chunk's data


class LenientResponse:
    """An answer read by the lenient reader, offering what the sources use of ``aiohttp.ClientResponse``.

    ``status``, ``reason``, ``headers``, ``url``, ``content_length`` (the body's length in
    bytes when ``Content-Length`` gives one agreed value and no chunked coding, else None),
    ``content`` (``iter_any()``), and ``oddities`` (see ``HttpHead``). ``close()`` drops the
    connection.
    """

    def __init__(
        self, url: URL, head: HttpHead, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, where: str
    ) -> None:
        framing = body_framing(head, head.oddities)
        self.url = url
        self.status = head.status
        self.reason = head.reason
        self.headers = head.headers
        self.oddities = head.oddities
        self.content_length = framing.length if framing.exact else None
        self.content = LenientBody(reader, framing, where)
        self._writer = writer

    def close(self) -> None:
        """Close the connection (the body cannot be read after)."""
        self._writer.close()


async def lenient_get(
    url: URL,
    headers: Mapping[str, str],
    where: str,
    *,
    connect_timeout_s: float | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> LenientResponse:
    """Send one ``GET url`` with ``headers`` on a new connection; read the head leniently.

    No redirect is followed. ``where`` names the camera in errors.

    ``connect_timeout_s`` bounds the TCP connection and TLS handshake, in seconds (None:
    no bound); ``ssl_context`` is for https (default: ``ssl.create_default_context()``,
    which verifies the certificate, as aiohttp does). The request asks the server to close
    the connection after its answer. The caller closes the response.

    Raises:
        UpstreamUnavailable: the connection fails, or the head is over ``MAX_HEAD_BYTES``
        bytes, cut short, or not HTTP.
        TimeoutError: the connection took over ``connect_timeout_s``.
    """
    secure = url.scheme == "https"
    try:
        async with asyncio.timeout(connect_timeout_s):
            reader, writer = await asyncio.open_connection(
                url.raw_host,
                url.port,
                ssl=(ssl_context or ssl.create_default_context()) if secure else None,
                server_hostname=url.raw_host if secure else None,
                limit=MAX_HEAD_BYTES,
            )
    except TimeoutError:
        raise
    except OSError as e:
        raise UpstreamUnavailable(f"{where}: {_describe(e)}") from None
    try:
        request = [f"GET {url.raw_path_qs or '/'} HTTP/1.1", f"Host: {url.host_port_subcomponent}", "Accept: */*"]
        request += [f"{name}: {value}" for name, value in headers.items() if name.lower() not in _OWN_HEADERS]
        if any(CONTROL_RE.search(line.encode()) for line in request):  # as aiohttp, never send a split header
            raise UpstreamUnavailable(f"{where}: a request header holds a control character; the request is not sent")
        writer.write("\r\n".join([*request, "Connection: close", "", ""]).encode())
        head = parse_head(await read_head(reader, where), where)
        while 100 <= head.status < 200:  # an interim answer (100 Continue): the real one follows
            head = parse_head(await read_head(reader, where), where)
        return LenientResponse(url, head, reader, writer, where)
    except BaseException as e:
        writer.close()
        if isinstance(e, OSError | asyncio.IncompleteReadError) and not isinstance(e, TimeoutError):
            raise UpstreamUnavailable(f"{where}: {_describe(e)}") from None
        raise


def _describe(error: BaseException) -> str:
    """A short text for a network error, without addresses."""
    if isinstance(error, asyncio.IncompleteReadError):
        return "the connection closed in the middle of the answer"
    if isinstance(error, ssl.SSLError):
        return f"{type(error).__name__}: {error.reason or error.strerror}"
    if isinstance(error, socket.gaierror):
        return f"{type(error).__name__}: {error.strerror}"
    if isinstance(error, OSError) and error.errno:
        return f"{type(error).__name__}: {os.strerror(error.errno)}"
    return type(error).__name__


def parser_refusal(error: BaseException) -> str | None:
    """What aiohttp's parser refused in ``error``, or None when it is no parser's refusal.

    The text is the message's first words, e.g. "Invalid header token", without the bytes
    it quotes. A body cut short is no refusal: the camera did not finish.
    """
    cause = error if isinstance(error, HttpProcessingError) else error.__cause__
    if not isinstance(cause, HttpProcessingError) or isinstance(cause, ContentLengthError):
        return None
    return re.split(r"[:'\"\n]|\bb'", cause.message or type(cause).__name__)[0].strip() or type(cause).__name__


@dataclass
class _Request:
    """What ``DigestAuthMiddleware`` reads of an ``aiohttp.ClientRequest``."""

    url: URL
    headers: CIMultiDict[str]
    method: str = "GET"
    body: bytes = b""


Middleware = Callable[[Any, Callable[[Any], Awaitable[Any]]], Awaitable[Any]]


class LenientFallback:
    """For one camera.

    GET its ``url`` through aiohttp until aiohttp's parser refuses an answer, then through
    the lenient reader for good, saying so once in the log.

    ``headers`` go with every lenient request (the session's User-Agent and a Basic
    ``Authorization``); ``middlewares`` are the camera's aiohttp client middlewares (the
    Digest one, ``aiohttp.DigestAuthMiddleware``, RFC 7616), called on the lenient
    requests as aiohttp calls them, so one object keeps the server's nonce for both paths.
    ``where`` names the camera in logs and errors.
    """

    def __init__(
        self, url: str, where: str, headers: Mapping[str, str], middlewares: tuple[Middleware, ...] = ()
    ) -> None:
        self.url = URL(url)
        self.where = where
        self.in_use = False
        """Whether this camera's answers are read by the lenient reader."""
        self._headers = dict(headers)
        self._middlewares = middlewares
        self._ssl_context: ssl.SSLContext | None = None

    @contextlib.asynccontextmanager
    async def open(
        self,
        strict: Callable[[], AbstractAsyncContextManager[aiohttp.ClientResponse]],
        timeout: aiohttp.ClientTimeout,
    ) -> AsyncIterator[aiohttp.ClientResponse | LenientResponse]:
        """Yield the camera's answer.

        From ``strict()`` (the aiohttp request) while aiohttp reads this camera, else from
        the lenient reader with ``timeout``'s ``total`` (over the whole exchange, reading
        included) and ``sock_connect`` or ``connect``.

        Raises:
            UpstreamUnavailable: the lenient reader failed (see ``lenient_get``), or
            aiohttp's parser refused the body after the answer was yielded (its
            pure-Python parser raises that outside ``aiohttp.ClientError``).
            TimeoutError: ``timeout`` ran out on the lenient path.
            Whatever ``strict()`` raises other than a refusal by aiohttp's parser.
        """
        refusal = None
        if not self.in_use:
            yielded = False
            try:
                async with strict() as response:
                    yielded = True
                    yield response
                return
            except (aiohttp.ClientResponseError, aiohttp.ClientPayloadError, HttpProcessingError) as error:
                refusal = parser_refusal(error)
                if refusal is None:
                    raise
                if yielded:  # the head was read, so the lenient reader would do no better
                    raise UpstreamUnavailable(f"{self.where}: aiohttp refused the body ({refusal})") from None
        async with asyncio.timeout(timeout.total):
            lenient = await self._get(timeout.sock_connect or timeout.connect)
            try:
                if refusal is not None:
                    self._switch(refusal, lenient.oddities)
                yield lenient
            finally:
                lenient.close()

    def _switch(self, refusal: str, oddities: list[str]) -> None:
        self.in_use = True
        log.info(
            "%s: aiohttp refuses the camera's malformed HTTP (%s); its answers are read with the lenient reader "
            "from now on%s",
            self.where,
            refusal,
            f" (it has {'; '.join(oddities)})" if oddities else "",
        )

    async def _get(self, connect_timeout_s: float | None) -> LenientResponse:
        """One GET through the middlewares, following redirects.

        Basic credentials go only to the camera's own origin, as aiohttp sends them.
        """
        if self.url.scheme == "https" and self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        url = self.url
        opened: list[LenientResponse] = []

        async def send(request: _Request) -> LenientResponse:
            for earlier in opened:  # a middleware that sends again is done with the earlier answer
                earlier.close()
            opened[:] = [
                await lenient_get(
                    request.url,
                    request.headers,
                    self.where,
                    connect_timeout_s=connect_timeout_s,
                    ssl_context=self._ssl_context,
                )
            ]
            return opened[0]

        handler: Callable[[Any], Awaitable[Any]] = send
        for middleware in reversed(self._middlewares):
            handler = _chained(middleware, handler)
        try:
            for _ in range(MAX_REDIRECTS + 1):
                headers = CIMultiDict(self._headers)
                if url.origin() != self.url.origin():
                    headers.pop("Authorization", None)
                response: LenientResponse = await handler(_Request(url, headers))
                location = response.headers.get("Location")
                if response.status not in _REDIRECTS or not location:
                    return response
                response.close()
                url = url.join(URL(location))
        except BaseException:
            for response in opened:
                response.close()
            raise
        raise UpstreamUnavailable(f"{self.where} redirected more than {MAX_REDIRECTS} times")


def _chained(middleware: Middleware, handler: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Awaitable[Any]]:
    async def call(request: Any) -> Any:
        return await middleware(request, handler)

    return call
