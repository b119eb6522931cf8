"""cut_jpeg: the JPEG an upstream sent, cut at its real end; anything else is BadJpeg.

Expected results never come from the code under test: a whole JPEG is the file Pillow or
a camera wrote, and the appended bytes are what the test put after it.
"""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image

from mjpeg_proxy.wire.errors import BadJpeg, WireError
from mjpeg_proxy.wire.jpeg import CutJpeg, cut_jpeg
from tests.helpers import real_frames
from tests.jpeg_samples import EOI, JUNK, SOI, variants, with_exif_thumbnail

VARIANTS = variants()
NAMES = list(VARIANTS)
PETS = real_frames()
# Pillow 13 cannot decode 12-bit samples (ffmpeg does: see tests/data/jpeg-variants/SOURCE.md).
DECODABLE = [name for name in NAMES if not name.startswith("12-bit")]


def decodes(jpeg: bytes) -> bool:
    with Image.open(io.BytesIO(jpeg)) as image:
        image.load()
    return True


def start_of_frame(jpeg: bytes) -> int:
    """The code of the first SOFn marker (FF C0-CF but DHT C4, JPG C8, DAC CC) in ``jpeg``."""
    return next(
        code
        for at in range(2, len(jpeg) - 1)
        if jpeg[at] == 0xFF and 0xC0 <= (code := jpeg[at + 1]) <= 0xCF and code not in (0xC4, 0xC8, 0xCC)
    )


def test_the_variants_are_what_their_names_say():
    """The samples themselves: the T.81 process each claims, each a whole JPEG."""
    sof = {name: start_of_frame(jpeg) for name, jpeg in VARIANTS.items()}
    assert sof["baseline"] == 0xC0
    assert sof["progressive"] == 0xC2
    assert sof["12-bit (file)"] == 0xC1
    assert sof["lossless (file)"] == 0xC3
    assert sof["arithmetic (file)"] == 0xC9
    assert sof["arithmetic-progressive (file)"] == 0xCA
    assert b"\xff\xdd" in VARIANTS["restart marker every block"]  # DRI
    assert b"Adobe" in VARIANTS["CMYK (Adobe APP14)"]
    for name, jpeg in VARIANTS.items():
        assert jpeg.startswith(SOI) and jpeg.endswith(EOI), name


@pytest.mark.parametrize("name", DECODABLE)
def test_the_variants_decode(name):
    assert decodes(VARIANTS[name])


@pytest.mark.parametrize("name", NAMES)
def test_every_kind_of_jpeg_passes_byte_for_byte(name):
    jpeg = VARIANTS[name]

    assert cut_jpeg(jpeg) == CutJpeg(jpeg, trimmed=False)


@pytest.mark.parametrize("folder", ["opencv-vtest-pets2009", "axis-runway-webcam-640x480"])
def test_real_camera_frames_pass_byte_for_byte(folder):
    for jpeg in real_frames(folder):
        assert cut_jpeg(jpeg) == CutJpeg(jpeg, trimmed=False)


@pytest.mark.parametrize("junk", list(JUNK), ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_bytes_appended_after_the_end_marker_are_cut_off(name, junk):
    jpeg = VARIANTS[name]

    assert cut_jpeg(jpeg + JUNK[junk]) == CutJpeg(jpeg, trimmed=True)


@pytest.mark.parametrize("padding", [b"\r\n", b"\n", b"\x00\x00\x00\x00", b"\r\n\x00\r\n", b" \t"], ids=repr)
def test_padding_after_end_of_image_is_cut_and_not_counted_as_trimming(padding):
    jpeg = PETS[0]

    assert cut_jpeg(jpeg + padding) == CutJpeg(jpeg, trimmed=False)


def test_the_first_end_marker_is_not_the_end_when_an_exif_thumbnail_carries_one():
    jpeg = with_exif_thumbnail()
    first_eoi = jpeg.find(EOI)
    assert 0 < first_eoi < len(jpeg) - 2  # the thumbnail's own end marker

    assert cut_jpeg(jpeg + JUNK["vendor block ending in FF D9"]) == CutJpeg(jpeg, trimmed=True)


def test_jpeg_cut_right_after_its_exif_thumbnail_is_incomplete():
    jpeg = with_exif_thumbnail()
    cut_after_thumbnail = jpeg[: jpeg.find(EOI) + 2]

    with pytest.raises(BadJpeg, match="incomplete JPEG"):
        cut_jpeg(cut_after_thumbnail)


@pytest.mark.parametrize("name", NAMES)
def test_truncated_jpeg_is_refused_wherever_it_is_cut(name):
    jpeg = VARIANTS[name]
    cuts = {*range(0, len(jpeg) - 2, max(1, len(jpeg) // 40)), len(jpeg) - 3, len(jpeg) - 2, len(jpeg) - 1}
    for size in sorted(cuts):
        with pytest.raises(BadJpeg, match="incomplete JPEG|not a JPEG"):
            cut_jpeg(jpeg[:size])


@pytest.mark.parametrize("name", NAMES)
def test_truncated_jpeg_followed_by_bytes_without_an_end_marker_is_refused(name):
    jpeg = VARIANTS[name]
    for fraction in (10, 50, 90):
        with pytest.raises(BadJpeg, match="incomplete JPEG"):
            cut_jpeg(jpeg[: len(jpeg) * fraction // 100] + b"\x00" * 32 + b"TRAILER\r\n")


@pytest.mark.parametrize("path", ["bytes", "bytearray"])
def test_only_the_first_size_bytes_are_read(path):
    """The MJPEG reader hands its buffer and the body's length: the next part is not read."""
    jpeg, junk, following = PETS[0], JUNK["random bytes"], b"\r\n--myboundary\r\n" + PETS[1]
    data = jpeg + junk + following
    buffer = data if path == "bytes" else bytearray(data)

    assert cut_jpeg(buffer, len(jpeg) + len(junk)) == CutJpeg(jpeg, trimmed=True)
    assert cut_jpeg(buffer, len(jpeg)) == CutJpeg(jpeg, trimmed=False)
    with pytest.raises(BadJpeg, match="incomplete JPEG"):
        cut_jpeg(buffer, len(jpeg) - 1)


def test_fill_bytes_before_markers_are_part_of_the_jpeg():
    """T.81 B.1.1.2: any marker may be preceded by FF fill bytes."""
    jpeg = PETS[0]
    filled = jpeg[:2] + b"\xff\xff\xff" + jpeg[2:-2] + b"\xff\xff" + EOI
    assert decodes(filled)

    assert cut_jpeg(filled + JUNK["stale buffer bytes"]) == CutJpeg(filled, trimmed=True)


def test_stray_bytes_between_segments_are_stepped_over_as_decoders_do():
    """libjpeg warns "extraneous bytes before marker" and decodes; so do we relay."""
    jpeg = PETS[0]
    second_segment = 2 + 2 + struct.unpack(">H", jpeg[4:6])[0]
    stray = jpeg[:second_segment] + b"\x00\x00junk" + jpeg[second_segment:]
    assert decodes(stray)

    assert cut_jpeg(stray + JUNK["a second whole JPEG"]) == CutJpeg(stray, trimmed=True)


def test_a_second_start_of_image_before_the_end_is_refused():
    jpeg = PETS[0]
    head = jpeg[: 2 + 2 + struct.unpack(">H", jpeg[4:6])[0]]  # SOI and the first segment

    with pytest.raises(BadJpeg, match="corrupt JPEG.*second start-of-image"):
        cut_jpeg(head + jpeg)


@pytest.mark.parametrize("length", [0, 1])
def test_a_segment_length_under_two_is_refused(length):
    with pytest.raises(BadJpeg, match="corrupt JPEG: marker FF FE at byte 2 has length"):
        cut_jpeg(SOI + b"\xff\xfe" + struct.pack(">H", length) + PETS[0][2:])


def test_html_body_is_never_a_frame():
    html = b"<!DOCTYPE html><html><body><h1>Login required</h1></body></html>\r\n"

    with pytest.raises(BadJpeg, match="not a JPEG"):
        cut_jpeg(html)


def test_empty_body_is_never_a_frame():
    with pytest.raises(BadJpeg, match="not a JPEG.*nothing"):
        cut_jpeg(b"")


def test_body_of_only_padding_is_never_a_frame():
    with pytest.raises(BadJpeg, match="not a JPEG"):
        cut_jpeg(b"\r\n\x00")


def test_jpeg_cut_at_60_percent_is_refused_as_incomplete_with_its_size():
    cut = PETS[0][: len(PETS[0]) * 60 // 100]

    with pytest.raises(BadJpeg, match="incomplete JPEG") as caught:
        cut_jpeg(cut)
    assert str(len(cut)) in str(caught.value)


def test_start_of_image_marker_alone_is_refused():
    with pytest.raises(BadJpeg, match="incomplete JPEG"):
        cut_jpeg(SOI)


def test_bad_jpeg_is_a_wire_error_and_a_value_error():
    # What a project that lifts wire/ catches, with nothing of mjpeg-proxy's error tree.
    with pytest.raises(WireError):
        cut_jpeg(b"GIF89a")
    assert issubclass(BadJpeg, ValueError)
