"""The head of an HTTP/1.1 answer read leniently.

Its status line and header fields as embedded camera servers write them, and how its body is
framed (see ``lenient_http``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from multidict import CIMultiDict, CIMultiDictProxy

from mjpeg_proxy.camera.errors import UpstreamUnavailable

MAX_HEAD_BYTES = 64 * 1024
"""Largest status line plus header block read, in bytes."""

_STATUS_LINE_RE = re.compile(rb"\s*HTTP/(\d{1,3})(?:\.(\d{1,3}))?\s+(\d{3})(?:\s+(.*?))?\s*", re.IGNORECASE)
_TOKEN_RE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 section 5.6.2
CONTROL_RE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # all but HTAB (RFC 9110 section 5.5)
_LENGTH_RE = re.compile(r"\+?(\d{1,18})")
_NO_BODY = frozenset({204, 304})


@dataclass
class HttpHead:
    """A parsed status line and header block.

    ``status`` (100-999), ``reason``, ``headers`` (names as sent, values as Latin-1 text),
    ``oddities`` (short texts, one per kind of deviation from RFC 9112 that was tolerated,
    without header values).
    """

    status: int
    reason: str
    headers: CIMultiDictProxy[str]
    oddities: list[str] = field(default_factory=list)


def parse_head(lines: list[bytes], where: str) -> HttpHead:
    """Parse the lines of an answer's head as described in ``lenient_http``'s docstring.

    ``lines`` are the status line first, line ends removed, the blank line that ends the
    block left out.

    Raises:
        UpstreamUnavailable: the first line is not an HTTP status line.
    """
    match = _STATUS_LINE_RE.fullmatch(lines[0]) if lines else None
    if match is None:
        raise not_http(lines[0] if lines else b"", where)
    oddities: list[str] = []

    def odd(text: str) -> None:
        if text not in oddities:
            oddities.append(text)

    if not match.group(0).lstrip().startswith(b"HTTP/"):
        odd("a lowercase HTTP version")
    headers = CIMultiDict(_fields(lines[1:], odd))
    if len(headers.getall("Content-Length", [])) > 1 or "," in headers.get("Content-Length", ""):
        odd("Content-Length given more than once")
    return HttpHead(int(match.group(3)), (match.group(4) or b"").decode("latin-1"), CIMultiDictProxy(headers), oddities)


def _fields(lines: list[bytes], odd: Callable[[str], None]) -> list[tuple[str, str]]:
    """The header fields of a head's ``lines`` after its status line.

    Each kind of line that is tolerated is told to ``odd``.
    """
    fields: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if fields:
                odd("a folded header line")
                folded_name, folded_value = fields[-1]
                fields[-1] = (folded_name, f"{folded_value} {_value(line)}".strip())
                continue
            odd("whitespace before the first header line")
        spaced_name, colon, value = line.strip(b" \t").partition(b":")
        name = spaced_name.rstrip(b" \t")
        if not colon or not _TOKEN_RE.fullmatch(name):
            odd("a header line without a name")
            continue
        if name != spaced_name:
            odd(f"whitespace before the colon of {name.decode()}")
        if CONTROL_RE.search(value.strip(b" \t\r")):
            odd(f"a control character in the value of {name.decode()}")
        fields.append((name.decode("ascii"), _value(value)))
    return fields


def not_http(first_line: bytes, where: str) -> UpstreamUnavailable:
    """The error for an answer from ``where`` whose ``first_line`` is no HTTP status line."""
    return UpstreamUnavailable(f"{where} did not answer HTTP (its first line is {first_line[:40].decode('latin-1')!r})")


def _value(raw: bytes) -> str:
    return raw.strip(b" \t\r").decode("latin-1")


@dataclass(frozen=True)
class Framing:
    """How a body ends.

    ``chunked``; else after ``length`` bytes (``exact``: one length the answer gives, which
    is its ``Content-Length``) or an earlier close; else (``length`` None) when the
    connection closes.
    """

    chunked: bool = False
    length: int | None = None
    exact: bool = False


def body_framing(head: HttpHead, oddities: list[str]) -> Framing:
    """How the body of the answer with ``head`` ends; what was tolerated goes to ``oddities``."""
    if head.status < 200 or head.status in _NO_BODY:
        return Framing(length=0, exact=True)
    codings = ",".join(head.headers.getall("Transfer-Encoding", [])).lower()
    if codings:
        if "Content-Length" in head.headers:
            oddities.append("both Transfer-Encoding and Content-Length")
        return Framing(chunked=codings.rsplit(",", 1)[-1].strip() == "chunked")
    values = [item.strip() for value in head.headers.getall("Content-Length", []) for item in value.split(",")]
    if not values:
        return Framing()
    matches = [_LENGTH_RE.fullmatch(value) for value in values]
    lengths = {int(match.group(1)) for match in matches if match is not None}
    if len(lengths) == 1 and all(matches):
        return Framing(length=lengths.pop(), exact=True)
    oddities.append("Content-Length values that differ or are not numbers")
    return Framing(length=max(lengths) if lengths else None)


async def read_head(reader: asyncio.StreamReader, where: str) -> list[bytes]:
    """The lines of one head, up to (not including) its blank line; blank lines before the status line are skipped."""
    lines: list[bytes] = []
    size = 0
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except (asyncio.LimitOverrunError, ValueError):
            raise UpstreamUnavailable(f"{where} sent a header line over {MAX_HEAD_BYTES} bytes") from None
        except asyncio.IncompleteReadError as e:
            if lines or not e.partial.strip():
                raise
            line = e.partial  # closed before the first line ended: still say what it was
        size += len(line)
        if size > MAX_HEAD_BYTES:
            raise UpstreamUnavailable(f"{where} sent a header block over {MAX_HEAD_BYTES} bytes")
        line = line.rstrip(b"\r\n")
        if not line.strip(b" \t\r"):
            if lines:
                return lines
            continue
        if not lines and not _STATUS_LINE_RE.fullmatch(line):
            raise not_http(line, where)  # at once: a server that is not HTTP may never send a blank line
        lines.append(line)
