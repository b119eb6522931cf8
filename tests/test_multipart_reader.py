"""MultipartReader: upstream MJPEG (multipart/x-mixed-replace) bytes in, complete JPEGs out.

The expected frames never come from the reader itself: for the real Axis captures they are
cut out of the file by a strict Content-Length parser written here (the captures are
well-formed), and for the hand-built streams they are the very JPEG files the stream was
built from.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mjpeg_proxy.wire.reader import (
    DEFAULT_MAX_HEADER_BYTES,
    MultipartReader,
    boundary_from_content_type,
)
from tests.jpeg_samples import JUNK, variants

DATA = Path(__file__).parent / "data"
CAPTURES = DATA / "captures"
FRAMES_DIR = DATA / "frames" / "opencv-vtest-pets2009"
RUNWAY_FRAMES_DIR = DATA / "frames" / "axis-runway-webcam-640x480"

MAX_FRAME = 8 * 1024 * 1024
CHUNK = 64 * 1024
SOI = b"\xff\xd8"
EOI = b"\xff\xd9"
TOKEN = b"myboundary"
DELIM = b"--" + TOKEN

# name -> (complete parts, whether a cut-off part follows them), from SOURCE.md.
CAPTURE_FILES = {
    "axis-runway-640x480-myboundary.mjpg": (11, True),
    "axis-gallery-320x240-myboundary.mjpg": (3, True),
    "axis-overhead-160x120-myboundary.mjpg": (16, False),
}
MODES = ["whole", "1-byte", "random-1-7"]
PETS_FRAME = (FRAMES_DIR / "frame_003.jpg").read_bytes()


# --- helpers ------------------------------------------------------------------------------


def frame(n: int) -> bytes:
    """A real 768x576 camera frame (64-80 KB), ``tests/data/frames/opencv-vtest-pets2009``."""
    return (FRAMES_DIR / f"frame_{n:03d}.jpg").read_bytes()


def parse_capture(data: bytes) -> tuple[list[bytes], bool]:
    """Cut a well-formed capture into its bodies by Content-Length, strictly.

    Returns the complete bodies and whether the file ends inside one more (cut) part.
    """
    bodies: list[bytes] = []
    pos = 0
    while pos < len(data):
        assert data.startswith(DELIM + b"\r\n", pos), f"no delimiter line at {pos}"
        pos += len(DELIM) + 2
        length = None
        while True:
            end = data.index(b"\r\n", pos)
            line = data[pos:end]
            pos = end + 2
            if not line:
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        assert length is not None
        if pos + length > len(data):
            return bodies, True  # the recording stops inside this body
        body = data[pos : pos + length]
        assert body.startswith(SOI) and body.endswith(EOI)
        bodies.append(body)
        pos += length
        assert data[pos : pos + 2] == b"\r\n"
        pos += 2
    return bodies, False


def with_com(jpeg: bytes, payload: bytes) -> bytes:
    """``jpeg`` with a COM segment (FF FE, big-endian length, payload) right after SOI."""
    assert jpeg.startswith(SOI) and len(payload) <= 65533
    return SOI + b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


def grow(jpeg: bytes, size: int, seed: int) -> bytes:
    """A valid JPEG of at least ``size`` bytes: ``jpeg`` with COM segments of random bytes."""
    rng = random.Random(seed)
    segments = []
    total = len(jpeg)
    while total < size:
        payload = rng.randbytes(min(65533, size - total))
        segments.append(b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload)
        total += len(payload) + 4
    return SOI + b"".join(segments) + jpeg[2:]


def pieces(data: bytes, mode: str, seed: int = 0) -> Iterator[bytes]:
    """``data`` whole, byte by byte, or in seeded random pieces of 1-7 bytes."""
    if mode == "whole":
        yield data
    elif mode == "1-byte":
        for i in range(len(data)):
            yield data[i : i + 1]
    elif mode == "random-1-7":
        rng = random.Random(seed)
        i = 0
        while i < len(data):
            n = rng.randint(1, 7)
            yield data[i : i + n]
            i += n
    else:
        raise ValueError(mode)


def chunks(data: bytes, size: int = CHUNK) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


class JpegReader(MultipartReader):
    """The reader under test, giving the JPEGs' bytes; ``trimmed`` counts those that had
    bytes after their EOI cut off."""

    trimmed = 0

    def feed(self, data: bytes) -> list[bytes]:  # type: ignore[override]
        cuts = super().feed(data)
        self.trimmed += sum(cut.trimmed for cut in cuts)
        return [cut.jpeg for cut in cuts]


def reader(boundary: str | None = "myboundary", **kwargs) -> JpegReader:
    kwargs.setdefault("max_frame_bytes", MAX_FRAME)
    return JpegReader(boundary, **kwargs)


def feed_all(r: JpegReader, data_pieces) -> list[bytes]:
    out: list[bytes] = []
    for piece in data_pieces:
        out += r.feed(piece)
    return out


def part(
    jpeg: bytes,
    *,
    delim: bytes = DELIM,
    nl: bytes = b"\r\n",
    sep: bytes = b": ",
    length: int | None | bool = True,
    extra: tuple[bytes, ...] = (),
) -> bytes:
    """One part: delimiter line, headers, blank line, body, line end.

    ``length``: True for the right Content-Length, an int for that (lying) value, False or
    None for no Content-Length header at all.
    """
    headers = [b"Content-Type" + sep + b"image/jpeg", *extra]
    if length is True:
        headers.append(b"Content-Length" + sep + str(len(jpeg)).encode())
    elif isinstance(length, int) and not isinstance(length, bool):
        headers.append(b"Content-Length" + sep + str(length).encode())
    return delim + nl + b"".join(h + nl for h in headers) + nl + jpeg + nl


# --- boundary_from_content_type ----------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("multipart/x-mixed-replace; boundary=myboundary", "myboundary"),
        ("multipart/x-mixed-replace;boundary=--myboundary", "myboundary"),
        ("multipart/x-mixed-replace; boundary=--myboundary", "myboundary"),
        ('multipart/x-mixed-replace; boundary="myboundary"', "myboundary"),
        ('multipart/x-mixed-replace; boundary="--myboundary"', "myboundary"),
        ("multipart/x-mixed-replace; boundary = myboundary", "myboundary"),
        ("multipart/x-mixed-replace; boundary =myboundary", "myboundary"),
        ("Multipart/X-Mixed-Replace; BOUNDARY=myboundary", "myboundary"),
        ("multipart/x-mixed-replace; Boundary=myboundary", "myboundary"),
        ("multipart/x-mixed-replace; boundary=abc; charset=x", "abc"),
        ("multipart/x-mixed-replace; charset=x; boundary=abc", "abc"),
        ("multipart/x-mixed-replace", None),
        ("multipart/x-mixed-replace; charset=x", None),
        ("", None),
    ],
)
def test_boundary_from_content_type(content_type, expected):
    assert boundary_from_content_type(content_type) == expected


# --- the real Axis captures ----------------------------------------------------------------


def test_capture_copies_are_present_and_parse_as_documented():
    for name, (complete, cut) in CAPTURE_FILES.items():
        bodies, is_cut = parse_capture((CAPTURES / name).read_bytes())
        assert (len(bodies), is_cut) == (complete, cut), name


def test_runway_capture_bodies_match_the_loose_native_frames():
    """A second, independent source for the runway frames: the loose files beside them."""
    bodies, _ = parse_capture((CAPTURES / "axis-runway-640x480-myboundary.mjpg").read_bytes())
    loose = [p.read_bytes() for p in sorted(RUNWAY_FRAMES_DIR.glob("frame_*.jpg"))]
    assert bodies == loose


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(CAPTURE_FILES))
def test_real_capture_gives_every_complete_part_byte_exact(name, mode):
    data = (CAPTURES / name).read_bytes()
    expected, cut = parse_capture(data)
    r = reader()

    got = feed_all(r, pieces(data, mode, seed=len(data)))

    assert len(got) == len(expected) == CAPTURE_FILES[name][0]
    assert got == expected  # byte-exact, in order; the cut part is not among them
    assert r.stats.dropped == 0
    assert r.stats.resyncs == 0

    assert r.close() is None  # close gives nothing out, whatever it held
    assert r.stats.dropped == (1 if cut else 0)


@pytest.mark.parametrize("name", list(CAPTURE_FILES))
def test_real_capture_split_anywhere_gives_the_same_frames(name):
    data = (CAPTURES / name).read_bytes()
    expected, cut = parse_capture(data)

    @settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.integers(min_value=0, max_value=len(data)), max_size=60))
    def check(cuts):
        bounds = [0, *sorted(cuts), len(data)]
        r = reader()
        got = feed_all(r, (data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)))
        assert got == expected
        assert (r.stats.dropped, r.stats.resyncs) == (0, 0)
        r.close()
        assert r.stats.dropped == (1 if cut else 0)

    check()


# --- spellings of delimiter lines and headers ----------------------------------------------


def _spelling_stream(case: str, with_length: bool) -> tuple[bytes, list[bytes], str | None]:
    """(stream, the JPEGs it carries in order, boundary for the reader)."""
    jpegs = [frame(1), frame(2), frame(3)]
    j1, j2, j3 = jpegs
    length = with_length
    end = DELIM + b"\r\n"  # the next part's delimiter: ends the last body when there is no length
    if case == "plain":
        stream = b"".join(part(j, length=length) for j in jpegs) + end
    elif case == "lf-only":
        stream = b"".join(part(j, nl=b"\n", length=length) for j in jpegs) + DELIM + b"\n"
    elif case == "no-space-after-colon":
        stream = b"".join(part(j, sep=b":", length=length) for j in jpegs) + end
    elif case == "doubled-delimiters":
        stream = b"".join(DELIM + b"\r\n" + part(j, length=length) for j in jpegs) + end + end
    elif case == "vendor-headers":
        extra = (b"X-Timestamp: 1419979370.16", b"X-Foo: bar; baz=1")
        stream = b"".join(part(j, length=length, extra=extra) for j in jpegs) + end
    elif case == "preamble":
        preamble = b"This is the preamble of a multipart body.\r\nIt is ignored.\r\n\r\n"
        stream = preamble + b"".join(part(j, length=length) for j in jpegs) + end
    elif case == "first-part-without-delimiter":
        first = part(j1, length=length)[len(DELIM) + 2 :]  # headers, blank line, JPEG
        stream = first + part(j2, length=length) + part(j3, length=length) + end
    elif case == "extra-leading-dashes":
        stream = b"".join(part(j, delim=b"----" + TOKEN, length=length) for j in jpegs) + b"----" + TOKEN + b"\r\n"
    elif case == "trailing-spaces":
        stream = b"".join(part(j, delim=DELIM + b"   ", length=length) for j in jpegs) + DELIM + b" \t \r\n"
    elif case == "close-delimiter-between-parts":
        stream = part(j1, length=length) + DELIM + b"--\r\n" + part(j2, length=length)
        stream += part(j3, length=length) + DELIM + b"--\r\n"
    elif case == "boundary-from-first-line":
        stream = b"".join(part(j, delim=b"--xyz", length=length) for j in jpegs) + b"--xyz\r\n"
        return stream, jpegs, None
    else:
        raise ValueError(case)
    return stream, jpegs, "myboundary"


SPELLINGS = [
    "plain",
    "lf-only",
    "no-space-after-colon",
    "doubled-delimiters",
    "vendor-headers",
    "preamble",
    "first-part-without-delimiter",
    "extra-leading-dashes",
    "trailing-spaces",
    "close-delimiter-between-parts",
    "boundary-from-first-line",
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("with_length", [True, False], ids=["content-length", "no-content-length"])
@pytest.mark.parametrize("case", SPELLINGS)
def test_spellings_give_every_frame_byte_exact(case, with_length, mode):
    stream, expected, boundary = _spelling_stream(case, with_length)
    r = reader(boundary)

    got = feed_all(r, pieces(stream, mode, seed=len(stream)))
    r.close()

    assert got == expected
    assert (r.stats.dropped, r.stats.resyncs) == (0, 0)


@pytest.mark.parametrize("mode", MODES)
def test_headerless_parts_body_right_after_the_delimiter(mode):
    jpegs = [frame(4), frame(5), frame(6)]
    stream = b"".join(DELIM + b"\r\n" + j + b"\r\n" for j in jpegs) + DELIM + b"\r\n"
    r = reader()

    got = feed_all(r, pieces(stream, mode, seed=7))
    r.close()

    assert got == jpegs
    assert (r.stats.dropped, r.stats.resyncs) == (0, 0)


@pytest.mark.parametrize("mode", MODES)
def test_no_boundary_declared_headerless_lf_only(mode):
    """No boundary in the Content-Type, no headers, LF line ends: the first "--" line names it."""
    jpegs = [frame(7), frame(8)]
    stream = b"\n".join([b"--xyz", jpegs[0], b"--xyz", jpegs[1], b"--xyz--"]) + b"\n"
    r = reader(None)

    got = feed_all(r, pieces(stream, mode, seed=3))

    assert got == jpegs


# --- no Content-Length: bodies that contain delimiter-like bytes ---------------------------


@pytest.mark.parametrize("mode", MODES)
def test_no_length_body_containing_delimiter_prefixes(mode):
    tricky = with_com(frame(1), b"before\r\n--after")
    tricky = with_com(tricky, b"\r\n--myboundar")
    tricky = with_com(tricky, b"\r\n--myboundary-is-not-a-delimiter\r\nmore")
    tricky = with_com(tricky, b"x\r\n--myboundar")  # ends right before the next segment's FF
    plain = frame(2)
    assert b"\r\n--myboundar" in tricky and tricky.endswith(EOI)
    stream = part(tricky, length=False) + part(plain, length=False) + DELIM + b"--\r\n"
    r = reader()

    got = feed_all(r, pieces(stream, mode, seed=11))
    r.close()

    assert got == [tricky, plain]
    assert (r.stats.dropped, r.stats.resyncs) == (0, 0)


# --- Content-Length that lies --------------------------------------------------------------


@pytest.mark.parametrize("mode", [*MODES, "64KiB"])
def test_lying_content_lengths_in_one_stream(mode):
    j1, j2, j3, j4, j5 = (frame(n) for n in range(1, 6))
    stream = (
        part(j1, length=len(j1) - 1000)  # too small
        + part(j2, length=len(j2) + 300)  # too large: reaches into the next part's body
        + part(j3, length=False)  # absent
        + part(j4)  # right
        + part(j5, length=len(j5) - 2)  # too small by just the EOI marker
        + part(j1)  # right
    )
    data_pieces = chunks(stream) if mode == "64KiB" else pieces(stream, mode, seed=5)
    r = reader()

    got = feed_all(r, data_pieces)
    r.close()

    assert got == [j1, j2, j3, j4, j5, j1]
    assert r.stats.dropped == 0
    assert r.stats.resyncs <= 3


def test_content_length_that_counts_the_crlf_after_the_body():
    j1, j2 = frame(1), frame(2)
    stream = part(j1, length=len(j1) + 2) + part(j2, length=len(j2) + 2)
    r = reader()

    assert r.feed(stream) == [j1, j2]


# --- sizes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("with_length", [True, False], ids=["content-length", "no-content-length"])
@pytest.mark.parametrize("size", [300_000, 1_500_000, 6_000_000], ids=["300KB", "1.5MB", "6MB"])
def test_large_frames_pass_intact_in_64k_chunks(size, with_length):
    big = grow(frame(9), size, seed=size)
    small = frame(10)
    assert len(big) >= size and big.startswith(SOI) and big.endswith(EOI)
    stream = part(small, length=with_length) + part(big, length=with_length)
    stream += part(small, length=with_length) + DELIM + b"\r\n"
    r = reader()

    got = feed_all(r, chunks(stream))

    assert len(got) == 3
    assert got[1] == big
    assert got == [small, big, small]
    assert (r.stats.dropped, r.stats.resyncs) == (0, 0)


# --- caps -----------------------------------------------------------------------------------


# What a reader may hold, whatever the upstream sends: a frame, a header block, one feed.
BOUND = MAX_FRAME + DEFAULT_MAX_HEADER_BYTES + CHUNK


def test_huge_content_length_refused_with_bounded_memory():
    good = frame(11)
    r = reader()
    head = DELIM + b"\r\nContent-Type: image/jpeg\r\nContent-Length: 2147483648\r\n\r\n"
    got = r.feed(head)
    assert r.stats.dropped == 1  # refused as soon as the length is read

    junk = random.Random(20).randbytes(20 * 1024 * 1024)
    peak = 0
    for piece in chunks(SOI + junk):
        got += r.feed(piece)
        peak = max(peak, len(r._buf))
    assert peak <= BOUND
    assert got == []

    got += r.feed(b"\r\n" + part(good))
    r.close()

    assert got == [good]
    assert r.stats.dropped == 1
    assert r.stats.resyncs == 1


def test_body_without_length_or_delimiter_beyond_max_frame_is_dropped_with_bounded_memory():
    good = frame(12)
    r = reader()
    got = r.feed(DELIM + b"\r\nContent-Type: image/jpeg\r\n\r\n")

    endless = SOI + random.Random(21).randbytes(MAX_FRAME + 2 * 1024 * 1024)
    peak = 0
    for piece in chunks(endless):
        got += r.feed(piece)
        peak = max(peak, len(r._buf))
    assert peak <= BOUND
    assert got == []
    assert r.stats.dropped == 1

    got += r.feed(b"\r\n" + part(good))
    r.close()

    assert got == [good]
    assert r.stats.dropped == 1
    assert r.stats.resyncs >= 1


@pytest.mark.parametrize("with_length", [True, False], ids=["content-length", "no-content-length"])
def test_complete_jpeg_larger_than_max_frame_is_refused(with_length):
    max_frame = 1024 * 1024
    too_big = grow(frame(1), max_frame + 5000, seed=1)
    good = frame(2)
    stream = part(too_big, length=with_length) + part(good) + DELIM + b"\r\n"
    r = reader(max_frame_bytes=max_frame)

    got = feed_all(r, chunks(stream))
    r.close()

    assert got == [good]
    assert r.stats.dropped == 1


def test_oversized_header_line_resyncs_and_next_part_comes_out():
    """A 100 KB header line, fed in 64 KiB pieces: framing is given up and found again."""
    j1, j2 = frame(1), frame(2)
    stream = part(j1, extra=(b"X-Huge: " + b"a" * 100_000,)) + part(j2)
    r = reader()

    peak = 0
    got = []
    for piece in chunks(stream):
        got += r.feed(piece)
        peak = max(peak, len(r._buf))
    r.close()

    assert got == [j2]
    assert r.stats.resyncs == 1
    assert peak <= DEFAULT_MAX_HEADER_BYTES + CHUNK


@pytest.mark.parametrize("mode", ["whole", "100KiB"])
def test_oversized_header_line_is_refused_however_the_stream_is_split(mode):
    j1, j2 = frame(1), frame(2)
    stream = part(j1, extra=(b"X-Huge: " + b"a" * 100_000,)) + part(j2)
    r = reader()

    got = feed_all(r, [stream] if mode == "whole" else chunks(stream, 100 * 1024))

    assert got == [j2]
    assert r.stats.resyncs == 1


def test_oversized_header_block_of_short_lines_is_refused():
    j1, j2 = frame(1), frame(2)
    block = tuple(b"X-Foo-%d: %s" % (i, b"b" * 500) for i in range(200))
    stream = part(j1, extra=block) + part(j2)
    r = reader()

    got = feed_all(r, chunks(stream))

    assert got == [j2]
    assert r.stats.resyncs + r.stats.dropped >= 1


# --- nothing partial ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("announced", ["no-length", "full-length", "cut-length"])
def test_jpeg_cut_at_60_percent_then_good_frame(announced, mode):
    whole, good = frame(3), frame(4)
    cut = whole[: len(whole) * 6 // 10]
    assert not cut.rstrip(b"\r\n\x00 \t").endswith(EOI)
    length = {"no-length": False, "full-length": len(whole), "cut-length": len(cut)}[announced]
    stream = part(cut, length=length) + part(good) + DELIM + b"\r\n"
    r = reader()

    got = feed_all(r, pieces(stream, mode, seed=60))
    r.close()

    assert got == [good]
    assert r.stats.dropped == 1


@pytest.mark.parametrize("with_length", [True, False], ids=["content-length", "no-content-length"])
def test_html_body_gives_nothing_and_is_counted_dropped(with_length):
    html = b"<html><head><title>401 Unauthorized</title></head><body>Login</body></html>"
    stream = DELIM + b"\r\nContent-Type: text/html\r\n"
    if with_length:
        stream += b"Content-Length: %d\r\n" % len(html)
    stream += b"\r\n" + html + b"\r\n" + DELIM + b"\r\n"
    r = reader()

    got = r.feed(stream)
    r.close()

    assert got == []
    assert r.stats.dropped == 1


def test_html_body_then_good_frame():
    html = b"<html><body>camera busy</body></html>"
    good = frame(5)
    stream = part(html) + part(good)
    r = reader()

    assert r.feed(stream) == [good]
    assert r.stats.dropped == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("with_length", [True, False], ids=["content-length", "no-content-length"])
def test_stream_ending_mid_part_is_dropped_on_close(with_length, mode):
    good, last = frame(6), frame(7)
    stream = part(good, length=with_length) + part(last, length=with_length)[: -len(last) // 2]
    r = reader()

    got = feed_all(r, pieces(stream, mode, seed=9))
    assert got == [good]
    assert r.stats.dropped == 0

    r.close()

    assert r.stats.dropped == 1


def test_not_a_jpeg_when_eoi_is_missing_even_with_right_length():
    no_eoi = frame(8)[:-2]
    good = frame(9)
    stream = part(no_eoi) + part(good)
    r = reader()

    assert r.feed(stream) == [good]
    assert r.stats.dropped == 1


def test_stats_can_be_shared_across_readers():
    j1, j2 = frame(1), frame(2)
    first = reader()
    first.feed(part(j1) + part(j2)[:1000])
    first.close()
    second = reader(stats=first.stats)

    assert second.feed(part(j2)) == [j2]
    assert second.stats.dropped == 1
    assert second.stats is first.stats


def test_too_large_content_length_does_not_hold_a_complete_frame_back():
    # The length claims 500 kB more than the JPEG: the frame comes out when its delimiter
    # does, not when 500 kB more have arrived (a frame late, or never at the stream's end).
    j1, j2 = frame(1), frame(2)
    r = reader()
    assert r.feed(part(j1, length=len(j1) + 500_000)) == []
    assert r.feed(DELIM + b"\r\n") == [j1]
    assert r.feed(b"Content-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(j2) + j2 + b"\r\n") == [j2]
    assert r.stats.dropped == 0


# --- bytes a camera appends after each JPEG's end marker ---------------------------------

# Four codings, each followed by a different kind of appended bytes (tests/jpeg_samples.py).
APPENDED = [
    ("baseline", "vendor block ending in FF D9"),
    ("EXIF thumbnail", "random bytes"),
    ("progressive", "stale buffer bytes"),
    ("arithmetic-restart (file)", "FF fill bytes"),
]
LENGTHS = {
    "right": lambda jpeg, junk: len(jpeg) + len(junk),  # the whole body, appended bytes included
    "too short": lambda jpeg, junk: len(jpeg) // 2,
    "too long": lambda jpeg, junk: len(jpeg) + len(junk) + 3000,  # reaches into the next part
    "into the next delimiter": lambda jpeg, junk: len(jpeg) + len(junk) + 5,  # "\r\n--m"
    "none": lambda jpeg, junk: None,
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("length", list(LENGTHS))
def test_bytes_appended_after_each_jpeg_are_cut_off(length, mode):
    samples = variants()
    jpegs = [samples[name] for name, _ in APPENDED]
    stream = b"".join(
        part(samples[name] + JUNK[junk], length=LENGTHS[length](samples[name], JUNK[junk])) for name, junk in APPENDED
    )
    stream += part(PETS_FRAME) + DELIM + b"--\r\n"  # and one plain part to end with
    r = reader()

    got = feed_all(r, pieces(stream, mode, seed=14))
    r.close()

    assert got == [*jpegs, PETS_FRAME]
    assert r.trimmed == len(APPENDED)
    assert r.stats.dropped == 0


@pytest.mark.parametrize("mode", MODES)
def test_bytes_after_a_body_of_the_jpegs_length_are_skipped_not_relayed(mode):
    """Content-Length counts the JPEG alone; the appended bytes come between the parts."""
    samples = variants()
    stream = b"".join(_part_then(samples[name], JUNK[junk]) for name, junk in APPENDED)
    stream += part(PETS_FRAME) + DELIM + b"--\r\n"
    r = reader()

    got = feed_all(r, pieces(stream, mode, seed=19))
    r.close()

    assert got == [*(samples[name] for name, _ in APPENDED), PETS_FRAME]
    assert r.trimmed == 0  # the part's body was the JPEG: nothing of it was cut
    assert r.stats.dropped == 0


def _part_then(jpeg: bytes, junk: bytes) -> bytes:
    """A part whose Content-Length is the JPEG's, with ``junk`` after the body."""
    return DELIM + b"\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg) + jpeg + junk + b"\r\n"


def test_a_right_length_with_appended_bytes_gives_the_frame_before_its_delimiter():
    """Servers that send the delimiter only with the next frame: no frame of lag."""
    jpeg, junk = variants()["EXIF thumbnail"], JUNK["stale buffer bytes"]
    r = reader()

    assert r.feed(DELIM + b"\r\nContent-Length: %d\r\n\r\n" % len(jpeg + junk) + jpeg + junk) == [jpeg]
    assert r.trimmed == 1
