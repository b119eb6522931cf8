"""JPEG bytes as upstreams send them: where one picture starts and where it really ends.

Some camera firmwares append bytes after a JPEG's end marker (a vendor container block,
stale buffer bytes, padding). "The last FF D9" and "the first FF D9" both miss the real
end: an EXIF thumbnail in APP1 carries its own EOI, and appended bytes may hold one too.
``cut_jpeg`` finds the end by walking the marker segments as a decoder reads them
(ITU-T T.81 Annex B), with one regular-expression search (C speed, about 2 GB/s)
through each scan's entropy-coded data: well under a millisecond for a 1080p frame.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from mjpeg_proxy.wire.errors import BadJpeg

SOI = b"\xff\xd8"
"""Start Of Image marker (ITU-T T.81, Table B.1)."""
EOI = b"\xff\xd9"
"""End Of Image marker (ITU-T T.81, Table B.1)."""

_SOI_CODE, _EOI_CODE, _SOS_CODE = 0xD8, 0xD9, 0xDA
# Markers that stand alone, without a length field: TEM and RST0-RST7 (T.81 Table B.1).
_STANDALONE_CODES = frozenset({0x01, *range(0xD0, 0xD8)})
# Between marker segments, the next marker: FF and a code. Repeated FFs are fill bytes
# (T.81 B.1.1.2); like libjpeg, bytes that are not a marker are skipped over (some
# encoders leave a few there; decoders only warn).
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xff]")
# In entropy-coded data (T.81 B.1.1.5, F.1.2.3), FF 00 is a stuffed data byte and FF D0-D7
# a restart marker; an FF followed by any other code (after any fill FFs) is the marker
# that ends the scan: EOI, or the tables and SOS of a progressive JPEG's next scan.
_END_OF_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")

PADDING = b"\r\n\x00 \t"
"""Bytes after EOI that cameras send as line ends or padding; cutting them off is not
counted as trimming a frame."""
_NOT_PADDING = re.compile(b"[^" + re.escape(PADDING) + b"]")

Buffer = bytes | bytearray


class CutJpeg(NamedTuple):
    """One JPEG cut out of what an upstream sent.

    ``jpeg`` is the picture from SOI to its EOI, byte for byte as sent. ``trimmed`` is
    True when bytes other than ``PADDING`` followed the EOI and were cut off.
    """

    jpeg: bytes
    trimmed: bool


def jpeg_end(data: Buffer, size: int | None = None) -> int:
    """Where the JPEG at the start of ``data[:size]`` ends: the index just past its EOI.

    Walks the datastream of ITU-T T.81 Annex B: marker segments, each with a two-byte
    big-endian length that counts itself; after each SOS, entropy-coded data up to the
    next marker that is not RST0-RST7 and not a stuffed ``FF 00``. So an EOI inside a
    segment (an EXIF thumbnail in APP1, a comment) is skipped, as is anything after the
    real EOI. Baseline, extended (12-bit), progressive, lossless, hierarchical and
    arithmetic-coded JPEGs all have this structure. ``size`` defaults to ``len(data)``.

    Raises:
        BadJpeg: ``data`` does not start with SOI ("not a JPEG"), has a second SOI or a
            segment length under 2 ("corrupt JPEG"), or ends before its EOI
            ("incomplete JPEG").
    """
    end = len(data) if size is None else size
    if not data.startswith(SOI, 0, end):
        raise BadJpeg(f"not a JPEG: starts with {bytes(data[: min(4, end)]).hex(' ') or 'nothing'}")
    return _end_after_soi(data, end)


def _end_after_soi(data: Buffer, end: int) -> int:
    """``jpeg_end`` once the SOI is checked: the walk of the marker segments from byte 2.

    Apart from ``jpeg_end`` only to keep each function under the complexity limit: one
    call per JPEG costs nothing measurable (see ``bench/jpeg_end.py``).

    Raises:
        BadJpeg: as ``jpeg_end``, but for "not a JPEG".
    """
    pos = 2
    while pos + 1 < end:
        if data[pos] == 0xFF and data[pos + 1] not in (0x00, 0xFF):
            at = pos  # the usual case: the next marker right where the last segment ended
        else:
            found = _NEXT_MARKER.search(data, pos, end)
            if found is None:
                break
            at = found.start()
        code = data[at + 1]
        if code == _EOI_CODE:
            return at + 2
        if code == _SOI_CODE:
            raise BadJpeg(f"corrupt JPEG: a second start-of-image marker at byte {at}")
        if code in _STANDALONE_CODES:
            pos = at + 2
            continue
        if at + 4 > end:
            break
        length = data[at + 2] << 8 | data[at + 3]
        if length < 2:
            raise BadJpeg(f"corrupt JPEG: marker FF {code:02X} at byte {at} has length {length}")
        pos = at + 2 + length
        if code == _SOS_CODE:
            found = _END_OF_SCAN.search(data, pos, end)
            pos = found.start() if found else end  # no marker after the scan: incomplete
    raise BadJpeg(f"incomplete JPEG: {end} bytes with no end-of-image marker")


def cut_jpeg(data: Buffer, size: int | None = None) -> CutJpeg:
    """The JPEG at the start of ``data[:size]``, cut just after its EOI (see ``jpeg_end``).

    ``size`` defaults to ``len(data)``. Returns ``data`` itself when it is ``bytes`` and
    nothing follows the EOI; otherwise one copy of the JPEG's bytes.

    Raises:
        BadJpeg: as ``jpeg_end``.
    """
    end = len(data) if size is None else size
    cut = jpeg_end(data, end)
    trimmed = _NOT_PADDING.search(data, cut, end) is not None
    if cut == len(data) and isinstance(data, bytes):
        return CutJpeg(data, trimmed)
    with memoryview(data) as view:
        return CutJpeg(view[:cut].tobytes(), trimmed)
