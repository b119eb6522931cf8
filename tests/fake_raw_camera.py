"""A camera web server on 127.0.0.1 that writes its answers byte for byte as the test gives
them: embedded servers (GoAhead and others) write heads that aiohttp can neither send nor
parse, so this fake is a raw asyncio server."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import ssl
from dataclasses import dataclass

from multidict import CIMultiDict

from tests.fake_camera import digest_authorised, digest_challenge
from tests.fake_mjpeg import part


@dataclass
class RawRequest:
    """One request as the fake received it (what ``digest_authorised`` reads of it, too)."""

    method: str
    path_qs: str
    headers: CIMultiDict[str]


def chunked(data: bytes, eol: bytes = b"\r\n") -> bytes:
    """``data`` as one chunk of chunked coding (RFC 9112 section 7.1), lines ending in ``eol``."""
    return b"%x" % len(data) + eol + data + eol


class RawCamera:
    """Serves a snapshot at any path but ``/video.mjpg``, and an MJPEG stream there.

    ``head`` is the answer's status line and header block with its blank line, sent as
    given after ``{length}`` is replaced by the JPEG's length, ``{short}`` by half of it and
    ``{over}`` by one more.
    ``body``: ``"plain"`` (the bytes as they are), ``"chunked"`` or ``"chunked-lf"``
    (chunked coding with CRLF, or LF alone). A snapshot answer carries ``frames`` in turn,
    then the connection closes (with ``keep_open``, the fake waits for the client to close
    it); the stream sends every frame as a part (boundary ``myboundary``), then stays open.
    A path in ``redirects`` answers ``302`` with a malformed head, to the path given.

    With ``username`` set, requests without its credentials (``auth`` ``"basic"`` or
    ``"digest"``) get a 401 whose head aiohttp refuses too (space before the colon).
    ``requests`` lists every request received; ``challenges`` counts the 401s.
    """

    def __init__(
        self,
        head: bytes,
        frames: list[bytes],
        *,
        body: str = "plain",
        keep_open: bool = False,
        redirects: dict[str, str] | None = None,
        username: str | None = None,
        password: str | None = None,
        auth: str = "basic",
    ) -> None:
        self.head = head
        self.frames = frames
        self.body = body
        self.keep_open = keep_open
        self.redirects = redirects or {}
        self.username = username
        self.password = password
        self.auth = auth
        self.nonce = secrets.token_hex(16)
        self.requests: list[RawRequest] = []
        self.challenges = 0
        self.snapshots = 0
        self._server: asyncio.Server | None = None

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> str:
        """Listen on 127.0.0.1 (with TLS given ``ssl_context``); return ``http://127.0.0.1:PORT``."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=ssl_context)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await self._read_request(reader)
            self.requests.append(request)
            if self.username is not None and not self._authorised(request):
                self.challenges += 1
                writer.write(self._unauthorised())
            elif request.path_qs in self.redirects:
                location = self.redirects[request.path_qs].encode()
                writer.write(b"HTTP/1.1 302 Found\r\nLocation : " + location + b"\r\nContent-Length: 0\r\n\r\n")
            elif request.path_qs.startswith("/video.mjpg"):
                await self._stream(reader, writer)
            else:
                jpeg = self.frames[self.snapshots % len(self.frames)]
                self.snapshots += 1
                writer.write(self._head(jpeg) + self._encode(jpeg, last=True))
                if self.keep_open:
                    await writer.drain()
                    await reader.read()  # until the client closes
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(self.head)
        for jpeg in self.frames:
            writer.write(self._encode(part(jpeg)))
            await writer.drain()
        await reader.read()  # the stream goes on until the client closes it

    def _head(self, jpeg: bytes) -> bytes:
        lengths = {b"{length}": len(jpeg), b"{short}": len(jpeg) // 2, b"{over}": len(jpeg) + 1}
        head = self.head
        for placeholder, value in lengths.items():
            head = head.replace(placeholder, b"%d" % value)
        return head

    def _encode(self, data: bytes, *, last: bool = False) -> bytes:
        if self.body == "plain":
            return data
        eol = b"\n" if self.body == "chunked-lf" else b"\r\n"
        return chunked(data, eol) + (b"0" + eol + eol if last else b"")

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader) -> RawRequest:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *lines = head.split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers: CIMultiDict[str] = CIMultiDict()
        for line in filter(None, lines):
            name, _, value = line.partition(":")
            headers.add(name.strip(), value.strip())
        return RawRequest(method, target, headers)

    def _authorised(self, request: RawRequest) -> bool:
        if self.auth == "digest":
            return digest_authorised(request, self.username, self.password, self.nonce)  # type: ignore[arg-type]
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return request.headers.get("Authorization") == f"Basic {expected}"

    def _unauthorised(self) -> bytes:
        if self.auth == "digest":
            challenge = digest_challenge(self.nonce)["WWW-Authenticate"]
        else:
            challenge = 'Basic realm="camera"'
        page = b"<html>401 Unauthorized</html>"
        return (
            b"HTTP/1.1 401 Unauthorized\r\nServer: GoAhead-Webs\r\nWWW-Authenticate : "
            + challenge.encode()
            + b"\r\nContent-Length: %d\r\n\r\n" % len(page)
            + page
        )
