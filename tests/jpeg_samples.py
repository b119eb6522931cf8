"""JPEGs in the codings cameras write, and the bytes some firmwares append after them.

The pictures are real camera frames (tests/data/frames), re-encoded by Pillow in every
coding it writes; the codings it cannot write are files in tests/data/jpeg-variants (see
SOURCE.md there). Nothing here comes from the code under test.
"""

from __future__ import annotations

import functools
import io
import random
import struct

from PIL import Image

from tests.helpers import DATA, real_frames

SOI = b"\xff\xd8"
EOI = b"\xff\xd9"
VARIANT_FILES = DATA / "jpeg-variants"


def _picture(size: tuple[int, int] = (320, 240)) -> Image.Image:
    with Image.open(DATA / "frames" / "opencv-vtest-pets2009" / "frame_001.jpg") as image:
        return image.resize(size)


def pillow_jpeg(mode: str = "RGB", size: tuple[int, int] = (320, 240), **options: object) -> bytes:
    """The real frame at ``size`` in colour ``mode``, saved by Pillow with ``options``."""
    out = io.BytesIO()
    _picture(size).convert(mode).save(out, "JPEG", **options)
    return out.getvalue()


def exif_with_thumbnail(thumbnail: bytes) -> bytes:
    """An Exif APP1 payload (``Exif\\0\\0`` + TIFF, big-endian) whose IFD1 holds
    ``thumbnail`` as its JPEG thumbnail (Exif 2.3, 4.5.4: JPEGInterchangeFormat)."""

    def ifd(entries: list[tuple[int, int, int]], next_offset: int) -> bytes:
        out = struct.pack(">H", len(entries))
        for tag, kind, value in entries:  # kind 3 = SHORT (left-justified), 4 = LONG
            packed = struct.pack(">HH", value, 0) if kind == 3 else struct.pack(">I", value)
            out += struct.pack(">HHI", tag, kind, 1) + packed
        return out + struct.pack(">I", next_offset)

    ifd0_offset = 8
    ifd1_offset = ifd0_offset + len(ifd([(0x0112, 3, 1)], 0))
    thumbnail_offset = ifd1_offset + len(ifd([(0, 3, 0)] * 3, 0))
    ifd0 = ifd([(0x0112, 3, 1)], ifd1_offset)  # Orientation: normal
    ifd1 = ifd([(0x0103, 3, 6), (0x0201, 4, thumbnail_offset), (0x0202, 4, len(thumbnail))], 0)
    return b"Exif\x00\x00" + b"MM\x00\x2a" + struct.pack(">I", ifd0_offset) + ifd0 + ifd1 + thumbnail


def exif_orientation(kind: int, value: bytes) -> bytes:
    """An Exif APP1 payload whose one tag is Orientation (0x0112) of TIFF field type ``kind``
    (2 ASCII, 3 SHORT, 4 LONG, 8 SSHORT, ...) and count 1, ``value`` its 4 inline bytes
    (big-endian): what a firmware that writes the tag wrongly sends."""
    entry = struct.pack(">HHI", 0x0112, kind, 1) + value.ljust(4, b"\x00")
    return b"Exif\x00\x00" + b"MM\x00\x2a" + struct.pack(">IH", 8, 1) + entry + struct.pack(">I", 0)


def with_exif_thumbnail() -> bytes:
    """A JPEG whose APP1 carries a 160x120 thumbnail JPEG, with its own SOI and EOI."""
    return pillow_jpeg(exif=exif_with_thumbnail(pillow_jpeg(size=(160, 120), quality=70)))


def with_segment(jpeg: bytes, marker: int, payload: bytes) -> bytes:
    """``jpeg`` with a marker segment (FF ``marker``, length, ``payload``) right after SOI."""
    return SOI + bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def announcing(jpeg: bytes, width: int, height: int) -> bytes:
    """``jpeg`` (a baseline or progressive one) with its SOF segment saying ``width`` x ``height``,
    and nothing else changed: a decompression bomb's header on a small frame's data. The
    SOF (T.81, B.2.2) is the first FF C0 or FF C2 segment: length, precision, height, width."""
    at = 2
    while jpeg[at + 1] not in (0xC0, 0xC2):  # walk the marker segments by their lengths
        at += 2 + struct.unpack_from(">H", jpeg, at + 2)[0]
    return jpeg[: at + 5] + struct.pack(">HH", height, width) + jpeg[at + 9 :]


def hiding_size(jpeg: bytes, width: int, height: int) -> bytes:
    """``jpeg`` (a baseline one) whose frame header says ``width`` x ``height``, hidden from a
    reader that takes a restart marker for a segment with a length.

    RST0 (FF D0, T.81 B.1.1.3: a marker alone, no length) right after SOI, then the SOF,
    the other header segments and a comment: read as a length, the SOF's own marker bytes
    (FF C0) skip the reader into the comment, onto a decoy SOF of 1000x10 pixels. Pillow
    and libjpeg read the real SOF and decode at its size.
    """
    segments = []
    at = 2
    while jpeg[at + 1] != 0xDA:  # the header segments, up to the scan
        end = at + 2 + struct.unpack_from(">H", jpeg, at + 2)[0]
        segments.append(jpeg[at:end])
        at = end
    sof = next(segment for segment in segments if segment[1] == 0xC0)
    head = SOI + b"\xff\xd0" + sof[:5] + struct.pack(">HH", height, width) + sof[9:]
    head += b"".join(segment for segment in segments if segment is not sof)
    landing = 4 + struct.unpack_from(">H", head, 4)[0]  # where FF C0, taken for a length, leads
    decoy = b"\xff\xc0\x00\x0b\x08" + struct.pack(">HH", 10, 1000) + b"\x01\x01\x11\x00"
    comment = bytes(landing - len(head) - 4) + decoy + bytes(16)
    return head + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + jpeg[at:]


@functools.cache
def variants() -> dict[str, bytes]:
    """Whole JPEGs by name, each as a camera or encoder writes it."""
    made = {
        "baseline": pillow_jpeg(),
        "progressive": pillow_jpeg(progressive=True),
        "progressive optimised": pillow_jpeg(progressive=True, optimize=True, quality=95),
        "restart marker every block": pillow_jpeg(restart_marker_blocks=1),
        "restart marker every MCU row": pillow_jpeg(restart_marker_rows=1),
        "4:4:4 quality 100": pillow_jpeg(subsampling=0, quality=100),
        "greyscale": pillow_jpeg("L"),
        "CMYK (Adobe APP14)": pillow_jpeg("CMYK"),
        "ICC profile holding FF D9": pillow_jpeg(icc_profile=b"\xff\xd9" * 3000),
        "comment holding FF D9": pillow_jpeg(comment=b"end \xff\xd9 here"),
        "EXIF thumbnail": with_exif_thumbnail(),
        "vendor APP segment holding a whole JPEG": with_segment(pillow_jpeg(), 0xEB, pillow_jpeg(size=(64, 48))),
    }
    files = {f"{path.stem} (file)": path.read_bytes() for path in sorted(VARIANT_FILES.glob("*.jpg"))}
    cameras = {
        "Axis camera frame": real_frames("axis-runway-webcam-640x480")[0],
        "PETS camera frame": real_frames()[0],
    }
    return made | files | cameras


def stale_buffer(size: int = 3000) -> bytes:
    """The tail of another frame, as left in a camera's reused buffer: it ends in FF D9."""
    return real_frames()[5][-size:]


JUNK = {
    "vendor block ending in FF D9": b"VNDR\x00\x00\x00\x10" + bytes(range(16)) + b"\xff\xd9",
    "stale buffer bytes": stale_buffer(),
    "a second whole JPEG": real_frames()[1],
    "zero padding then a trailer": b"\x00" * 64 + b"TRAILER\r\n",
    "FF fill bytes": b"\xff" * 16,
    "random bytes": random.Random(14).randbytes(700) + EOI,
}
"""Bytes firmwares were seen to append after a JPEG's end marker, by what they are."""
