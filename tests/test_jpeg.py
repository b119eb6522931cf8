"""complete_jpeg: one whole JPEG passes, anything else is a BadFrame."""

from __future__ import annotations

from pathlib import Path

import pytest

from mjpeg_proxy.errors import BadFrame
from mjpeg_proxy.jpeg import complete_jpeg

FRAMES = sorted((Path(__file__).parent / "data" / "frames" / "opencv-vtest-pets2009").glob("frame_*.jpg"))


@pytest.fixture
def real_jpeg() -> bytes:
    return FRAMES[0].read_bytes()


def test_the_test_frames_are_present():
    assert len(FRAMES) == 12


@pytest.mark.parametrize("path", FRAMES, ids=lambda p: p.name)
def test_real_camera_frame_is_returned_unchanged(path):
    jpeg = path.read_bytes()

    assert complete_jpeg(jpeg) == jpeg


@pytest.mark.parametrize("padding", [b"\r\n", b"\n", b"\x00\x00\x00\x00", b"\r\n\x00\r\n"], ids=repr)
def test_padding_after_end_of_image_is_trimmed(real_jpeg, padding):
    assert complete_jpeg(real_jpeg + padding) == real_jpeg


def test_html_body_is_never_a_frame():
    html = b"<!DOCTYPE html><html><body><h1>Login required</h1></body></html>\r\n"

    with pytest.raises(BadFrame, match="not a JPEG"):
        complete_jpeg(html)


def test_empty_body_is_never_a_frame():
    with pytest.raises(BadFrame, match="not a JPEG.*nothing"):
        complete_jpeg(b"")


def test_body_of_only_padding_is_never_a_frame():
    with pytest.raises(BadFrame, match="not a JPEG"):
        complete_jpeg(b"\r\n\x00")


@pytest.mark.parametrize("path", FRAMES, ids=lambda p: p.name)
def test_jpeg_cut_at_60_percent_is_rejected_as_incomplete(path):
    jpeg = path.read_bytes()
    cut = jpeg[: len(jpeg) * 60 // 100]

    with pytest.raises(BadFrame, match="incomplete JPEG") as caught:
        complete_jpeg(cut)
    assert str(len(cut)) in str(caught.value)


def test_jpeg_missing_only_its_last_byte_is_rejected(real_jpeg):
    with pytest.raises(BadFrame, match="incomplete JPEG"):
        complete_jpeg(real_jpeg[:-1])


def test_start_of_image_marker_alone_is_rejected():
    with pytest.raises(BadFrame, match="incomplete JPEG"):
        complete_jpeg(b"\xff\xd8")
