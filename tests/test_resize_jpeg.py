"""The resize function alone (``pictures.resize``) and the rung a ``?width=`` gets (``web.widths``)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from mjpeg_proxy.pictures.resize import (
    MAX_PIXELS_LIMIT,
    BrokenJpeg,
    NotAJpeg,
    TooManyPixels,
    announced_size,
    resize_jpeg,
    scaled_size,
)
from mjpeg_proxy.web.widths import rung_for
from tests.helpers import decoded, real_frames
from tests.jpeg_samples import announcing, exif_orientation, hiding_size, variants, with_segment

PETS = real_frames()[0]  # 768x576
AXIS = real_frames("axis-runway-webcam-640x480")[0]


def opened(jpeg: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(jpeg))
    image.load()
    return image


@pytest.mark.parametrize(
    "jpeg, width, size",
    [(PETS, 320, (320, 240)), (PETS, 640, (640, 480)), (PETS, 767, (767, 575)), (AXIS, 320, (320, 240))],
)
def test_a_real_frame_comes_out_at_the_width_with_the_height_of_its_aspect(jpeg, width, size):
    out = resize_jpeg(jpeg, width)
    image = opened(out)
    assert (image.format, image.size, image.mode) == ("JPEG", size, "RGB")
    assert "progressive" not in image.info and "exif" not in image.info and "comment" not in image.info


def test_the_picture_is_the_same_picture_smaller():
    out = decoded(resize_jpeg(PETS, 320))
    reference = decoded(PETS).resize((320, 240), Image.Resampling.LANCZOS)
    difference = [abs(a - b) for a, b in zip(out.tobytes(), reference.tobytes(), strict=True)]
    assert sum(difference) / len(difference) < 4  # of 255: the same picture, not a grey or shifted one


@pytest.mark.parametrize("width", [768, 1280, 7680])
def test_a_frame_no_wider_than_the_width_passes_as_it_is(width):
    assert resize_jpeg(PETS, width) is PETS


@pytest.mark.parametrize(
    "name, mode",
    [("progressive", "RGB"), ("progressive optimised", "RGB"), ("greyscale", "L"), ("CMYK (Adobe APP14)", "RGB")],
)
def test_progressive_greyscale_and_cmyk_frames_come_out_as_valid_baseline_jpegs(name, mode):
    image = opened(resize_jpeg(variants()[name], 160))
    assert (image.size, image.mode) == ((160, 120), mode)
    assert "progressive" not in image.info


def test_the_exif_orientation_is_kept_and_nothing_else_of_the_exif():
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the camera was turned; browsers turn the picture back
    exif[0x010F] = "Camera maker"
    source = io.BytesIO()
    decoded(PETS).save(source, "JPEG", exif=exif)
    out = opened(resize_jpeg(source.getvalue(), 320))
    assert dict(out.getexif()) == {0x0112: 6}
    assert opened(resize_jpeg(PETS, 320)).getexif() == {}


def test_a_header_announcing_more_pixels_than_the_cap_is_refused_without_decoding():
    bomb = announcing(PETS, 60000, 60000)
    with pytest.raises(TooManyPixels, match="60000x60000, 3,600,000,000 pixels, over max_resize_pixels"):
        resize_jpeg(bomb, 320)
    with pytest.raises(TooManyPixels, match="768x576, 442,368 pixels"):
        resize_jpeg(PETS, 320, max_pixels=442_367)
    assert len(resize_jpeg(PETS, 320, max_pixels=442_368)) > 0


def test_a_frame_header_behind_a_restart_marker_is_read_where_pillow_reads_it():
    # A marker that stands alone (T.81 B.1.1.3) has no length: read as one, it would skip the
    # real SOF and the cap would be checked on a decoy while Pillow decodes the real size.
    with pytest.raises(TooManyPixels, match="9000x9000"):
        resize_jpeg(hiding_size(PETS, 9000, 9000), 320)
    assert opened(resize_jpeg(hiding_size(PETS, 768, 576), 320)).size == (320, 240)


@pytest.mark.parametrize(
    "kind, value",
    [(2, b"abc\x00"), (4, b"\x00\x01\x11\x70"), (8, b"\xff\xff"), (5, b""), (3, b"\x00\x09")],
    ids=["ASCII", "LONG 70000", "SSHORT -1", "RATIONAL out of the file", "SHORT 9"],
)
def test_an_exif_orientation_that_is_no_orientation_is_left_out_not_an_error(kind, value):
    jpeg = with_segment(PETS, 0xE1, exif_orientation(kind, value))
    image = opened(resize_jpeg(jpeg, 320))
    assert image.size == (320, 240) and image.getexif() == {}


@pytest.mark.parametrize(
    "jpeg, error",
    [
        (PETS[: len(PETS) // 2], BrokenJpeg),  # truncated in its scan
        (PETS[:2] + b"\xff\xc0\x00\x11\x08\x02\x40\x03\x00\x03" + PETS[400:], BrokenJpeg),  # a corrupt header
        (b"GIF89a" + PETS, NotAJpeg),
        (b"\xff\xd8\xff\xda\x00\x08" + PETS[200:], NotAJpeg),  # a scan before any frame header
        (b"", NotAJpeg),
    ],
)
def test_what_cannot_be_decoded_raises_a_resize_error_naming_why(jpeg, error):
    with pytest.raises(error):
        resize_jpeg(jpeg, 320)


def test_the_announced_size_is_the_one_pillow_reads_in_every_coding_it_reads():
    for name, jpeg in variants().items():
        if name != "12-bit (file)":  # Pillow cannot read 12-bit JPEGs (jpeg-variants/SOURCE.md)
            with Image.open(io.BytesIO(jpeg)) as image:
                assert announced_size(jpeg) == image.size, name
    assert announced_size(variants()["12-bit (file)"]) == (160, 120)


def test_the_cap_cannot_be_set_past_pillows_own_limit():
    assert MAX_PIXELS_LIMIT == Image.MAX_IMAGE_PIXELS


@pytest.mark.parametrize(
    "size, width, expected", [((768, 576), 320, (320, 240)), ((1920, 1080), 640, (640, 360)), ((1000, 3), 16, (16, 1))]
)
def test_the_height_follows_the_aspect_rounded_and_at_least_one(size, width, expected):
    assert scaled_size(size, width) == expected


@pytest.mark.parametrize(
    "requested, rung",
    [(1, 320), (319, 320), (320, 320), (500, 320), (640, 640), (1279, 640), (1280, 1280), (100_000, 1280)],
)
def test_a_request_gets_the_largest_rung_not_above_it_or_the_smallest(requested, rung):
    assert rung_for((320, 640, 1280), requested) == rung
