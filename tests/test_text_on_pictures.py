"""Names in any language on the pictures the proxy draws itself (the offline picture and the
demo camera): every letter is drawn with a font that has it, not as a missing-glyph box;
Chinese, Japanese and Korean when a font with them is installed; the configured
``[server] font`` first; and a machine without fonts still draws.

A letter drawn as a box looks like the box drawn for ``MISSING``, a code point no font
has; letters drawn with their glyphs look unlike it and unlike each other."""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from fontTools.fontBuilder import FontBuilder
from fontTools.ttLib import TTFont
from PIL import Image, ImageChops, ImageDraw

from mjpeg_proxy.camera.state import CameraState
from mjpeg_proxy.config import CameraConfig, Config, ConfigError, ServerConfig
from mjpeg_proxy.config.loader import load_config
from mjpeg_proxy.pictures.drawing import render_placeholder
from mjpeg_proxy.pictures.fonts import FONT_DIRS, TextFonts
from mjpeg_proxy.sources.demo import DemoConfig, DemoSource
from mjpeg_proxy.sources.mjpeg import MjpegConfig
from mjpeg_proxy.web.app import create_app
from tests.fake_mjpeg import FakeMjpegCamera
from tests.helpers import MjpegViewer, decoded

MISSING = "\U0010fffd"
"""A private-use code point: no font has a glyph for it, so it is drawn as the missing-glyph box."""
SINCE = 1_764_420_691.0  # 2025-11-29 12:51:31 UTC
SIZE = (320, 180)
NAMES = ["Köln Hbf", "Αθήνα", "Москва", "Café Müller – Garage"]
CJK_NAMES = ["東京駅", "서울", "大阪"]

Render = Callable[[str], Image.Image]


def offline_picture(fonts: TextFonts | None = None, size: tuple[int, int] = SIZE) -> Render:
    """The offline picture of a camera called by the argument, drawn with ``fonts`` (default: the defaults)."""
    options = {} if fonts is None else {"fonts": fonts}
    return lambda name: decoded(
        render_placeholder(name, CameraState.OFFLINE.reason, SINCE, size, SINCE + 300, **options)
    )


def demo_frame(fonts: TextFonts | None = None, size: tuple[int, int] = SIZE) -> Render:
    """A demo camera's frame, the camera called by the argument, drawn with ``fonts`` (default: the defaults)."""
    options = {} if fonts is None else {"fonts": fonts}
    return lambda name: decoded(DemoSource(name, 5.0, *size, **options).render(1, SINCE))


RENDERS = [pytest.param(offline_picture, id="offline-picture"), pytest.param(demo_frame, id="demo-frame")]


def differ(first: Image.Image, second: Image.Image) -> bool:
    return ImageChops.difference(first, second).getbbox() is not None


def as_boxes(text: str) -> str:
    """``text`` with every letter beyond ASCII replaced by ``MISSING``."""
    return "".join(char if char.isascii() else MISSING for char in text)


def assert_each_letter_drawn(render: Render, text: str) -> None:
    """Each character of ``text`` but spaces, drawn alone, looks unlike the missing-glyph
    box and unlike every other character."""
    box = render(MISSING)
    pictures = {char: render(char) for char in sorted(set(text) - {" "})}
    boxes = [char for char, picture in pictures.items() if not differ(picture, box)]
    assert not boxes, f"drawn as the missing-glyph box: {''.join(boxes)}"
    alike = [a + b for a, b in itertools.combinations(pictures, 2) if not differ(pictures[a], pictures[b])]
    assert not alike, f"drawn alike: {alike}"


def installed_font(has: str = "", name: str | None = None) -> str:
    """An installed font file (named ``name``, if given) with glyphs for every character
    of ``has``, found without the proxy's code. In CI a missing font fails the test
    (``.ci/run`` installs them), elsewhere it skips."""
    for folder in FONT_DIRS:
        for path in sorted(Path(folder).expanduser().rglob("*")):
            if path.suffix.lower() not in (".ttf", ".otf", ".ttc") or name not in (None, path.name):
                continue
            try:
                with TTFont(path, fontNumber=0, lazy=True) as font:
                    code_points = font.getBestCmap()
            except Exception:
                continue
            if all(ord(char) in code_points for char in has):
                return str(path)
    wanted = name or f"a font with glyphs for {has}"
    if os.environ.get("CI"):
        pytest.fail(f"{wanted} is not installed; .ci/run installs it")
    pytest.skip(f"{wanted} is not installed (Debian: fonts-dejavu-core, fonts-wqy-microhei)")


@pytest.fixture
def cjk_font() -> str:
    return installed_font(has="".join(CJK_NAMES))


@pytest.fixture
def dejavu() -> str:
    return installed_font(name="DejaVuSans.ttf")


# --- every letter is drawn --------------------------------------------------------


@pytest.mark.parametrize("render", RENDERS)
@pytest.mark.parametrize("name", NAMES)
def test_latin_greek_and_cyrillic_letters_are_drawn_not_boxes(dejavu, render, name):
    assert_each_letter_drawn(render(), name)


@pytest.mark.parametrize("render", RENDERS)
def test_the_since_and_clock_lines_are_still_drawn(dejavu, render):
    assert_each_letter_drawn(render(), "since 2026-11-29 12:51:31.789 UTC (5 min ago) frame")


@pytest.mark.parametrize("render", RENDERS)
@pytest.mark.parametrize("name", CJK_NAMES)
def test_chinese_japanese_and_korean_are_drawn_when_a_font_has_them(cjk_font, render, name):
    assert_each_letter_drawn(render(), name)


@pytest.mark.parametrize("render", RENDERS)
def test_a_long_name_is_shrunk_to_fit_the_picture(dejavu, cjk_font, render):
    name = "Москва – Αθήνα – Café Müller – Garage – 東京駅 – Köln Hbf – 서울"
    drawn = render()
    ink = ImageChops.difference(drawn(name), drawn("")).getbbox()
    assert ink is not None
    assert 0 < ink[0] and ink[2] < SIZE[0], f"the name runs off the picture: {ink}"


def test_runs_in_other_fonts_follow_the_direction_of_the_line(dejavu, cjk_font):
    """In a right-to-left line (the first strong letter is Hebrew) the Chinese word comes
    left of the Hebrew one; in a left-to-right line, right of the Latin one."""
    fonts = TextFonts()

    middle = 200  # the line is centred here

    def where_chinese_is(line: str) -> float:
        """The middle of where ``line`` with 東京 and with 大阪 (as wide) differ, in pixels from the left."""
        pictures = []
        for word in ("東京", "大阪"):
            image = Image.new("RGB", (2 * middle, 60))
            fonts.draw(ImageDraw.Draw(image), (middle, 30), line.format(word), 30, fill=(255, 255, 255), anchor="mm")
            pictures.append(image)
        box = ImageChops.difference(*pictures).getbbox()
        assert box is not None, "the Chinese words are drawn alike"
        return (box[0] + box[2]) / 2

    assert where_chinese_is("שלום {}") < middle, "right to left: the Chinese word is on the left"
    assert where_chinese_is("Hello {}") > middle, "left to right: the Chinese word is on the right"


def write_font_without_outlines(path: Path, text: str) -> None:
    """A font whose character map has ``text`` but that has no outlines to draw it with,
    like a colour emoji font (bitmaps at one size)."""
    builder = FontBuilder(1000, isTTF=True)
    builder.setupGlyphOrder([".notdef", "glyph"])
    builder.setupCharacterMap(dict.fromkeys(map(ord, text), "glyph"))
    builder.setupHorizontalMetrics({".notdef": (500, 0), "glyph": (1000, 0)})
    builder.setupHorizontalHeader(ascent=800, descent=-200)
    builder.setupNameTable({"familyName": "No Outlines", "styleName": "Regular"})
    builder.setupOS2()
    builder.setupPost()
    builder.setupMaxp()
    builder.save(str(path))


def test_the_search_finds_a_font_for_what_the_default_lacks_past_files_it_cannot_use(tmp_path, dejavu, cjk_font):
    (tmp_path / "DejaVuSans.ttf").symlink_to(dejavu)
    # Searched first (by name): a file that is no font, and a font Pillow cannot draw with.
    (tmp_path / "a-broken.ttf").write_bytes(b"not a font")
    write_font_without_outlines(tmp_path / "a-no-outlines.ttf", "".join(CJK_NAMES))
    (tmp_path / "cjk").mkdir()
    (tmp_path / "cjk" / Path(cjk_font).name).symlink_to(cjk_font)
    fonts = TextFonts(font_dirs=[str(tmp_path)])
    assert_each_letter_drawn(offline_picture(fonts), "".join(CJK_NAMES) + "Москва")


# --- through the proxy --------------------------------------------------------------


@pytest.fixture
async def down_url(aiohttp_server) -> str:
    """A camera on 127.0.0.1 that answers every request with 503: it is offline."""
    server = await aiohttp_server(FakeMjpegCamera(lambda n: [], status=503).app())
    return str(server.make_url("/video.mjpg"))


async def first_picture(url: str) -> Image.Image:
    async with MjpegViewer(url) as viewer:
        return decoded((await viewer.next_new_part(timeout_s=10)).jpeg)


def name_band(render: Render, name: str, *, top_half: bool = False) -> tuple[int, int, int, int]:
    """Where ``render`` draws ``name``: where its picture differs from that of the name
    with boxes for its letters beyond ASCII. With ``top_half``, only the upper half of
    that band: the demo's clock line, which differs from frame to frame, is close below."""
    band = ImageChops.difference(render(name), render(as_boxes(name))).getbbox()
    assert band is not None, f"{name!r} is drawn as missing-glyph boxes"
    return (band[0], band[1], band[2], (band[1] + band[3]) // 2) if top_half else band


def same_in(band: tuple[int, int, int, int], first: Image.Image, second: Image.Image) -> bool:
    return not differ(first.crop(band), second.crop(band))


async def assert_down_camera_shows(start_proxy, url: str, name: str) -> None:
    proxy = await start_proxy(CameraConfig(id="cam", source=MjpegConfig(url=url), name=name))
    got = await first_picture(proxy.url("/cameras/cam/stream.mjpg"))
    assert proxy.camera("cam").state == "offline"
    render = offline_picture(size=got.size)
    assert same_in(name_band(render, name), got, render(name)), f"{name!r} is drawn as the offline picture draws it"


@pytest.mark.parametrize("name", NAMES)
async def test_viewers_of_a_down_camera_see_its_name_in_its_own_letters(start_proxy, down_url, dejavu, name):
    await assert_down_camera_shows(start_proxy, down_url, name)


@pytest.mark.parametrize("name", CJK_NAMES)
async def test_viewers_of_a_down_camera_see_a_cjk_name_when_a_font_has_it(start_proxy, down_url, cjk_font, name):
    await assert_down_camera_shows(start_proxy, down_url, name)


async def test_the_configured_font_draws_the_demo_camera_and_the_offline_picture(start_proxy, down_url, dejavu):
    bold = installed_font(name="DejaVuSans-Bold.ttf")
    name = "Αθήνα – Москва"
    proxy = await start_proxy(
        # 640x360 (the default): the name line is tall enough to compare above the clock line.
        CameraConfig(id="demo", source=DemoConfig(), name=name, fps=5.0),
        CameraConfig(id="down", source=MjpegConfig(url=down_url), name=name),
        font=bold,
    )
    demo = await first_picture(proxy.url("/cameras/demo/stream.mjpg"))
    offline = await first_picture(proxy.url("/cameras/down/stream.mjpg"))

    configured, default = TextFonts(bold), TextFonts()
    for got, render, top_half in ((demo, demo_frame, True), (offline, offline_picture, False)):
        expected, unlike = render(configured, got.size), render(default, got.size)
        band = name_band(expected, name, top_half=top_half)
        assert not same_in(band, expected(name), unlike(name)), "the fonts draw the name alike"
        assert same_in(band, got, expected(name)), "the name is drawn with the configured font"


async def test_without_any_font_the_proxy_still_draws_and_says_what_to_install(
    aiohttp_server, down_url, tmp_path, caplog
):
    caplog.set_level(logging.WARNING, logger="mjpeg_proxy.pictures.fonts")
    cameras = (
        CameraConfig(
            id="demo", source=DemoConfig(width=SIZE[0], height=SIZE[1]), name="Москва", fps=5.0, always_on=True
        ),
        CameraConfig(id="down", source=MjpegConfig(url=down_url), name="Café Müller", always_on=True),
    )
    no_fonts = TextFonts(font_dirs=[str(tmp_path)])  # an empty folder: no font at all
    server = await aiohttp_server(create_app(Config(server=ServerConfig(), cameras=cameras), fonts=no_fonts))

    for camera_id, render in (("demo", demo_frame), ("down", offline_picture)):
        got = await first_picture(str(server.make_url(f"/cameras/{camera_id}/stream.mjpg")))
        blank = render(no_fonts, got.size)("")
        assert got.size == blank.size
        assert differ(got, blank), "the name is drawn"
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any("fonts-dejavu-core" in message for message in warnings), warnings


# --- the [server] font setting ---------------------------------------------------------


def write_config(tmp_path: Path, font_line: str) -> str:
    path = tmp_path / "proxy.toml"
    path.write_text(f'[server]\n{font_line}\n[[cameras]]\nid = "demo"\nsource = "demo"\n', encoding="utf-8")
    return str(path)


def test_a_font_setting_is_checked_and_read_relative_to_the_configuration_file(tmp_path, dejavu):
    (tmp_path / "fonts").mkdir()
    (tmp_path / "fonts" / "names.ttf").symlink_to(dejavu)
    config = load_config(write_config(tmp_path, 'font = "fonts/names.ttf"'), environ={})
    assert config.server.font == str(tmp_path / "fonts" / "names.ttf")
    assert load_config(write_config(tmp_path, f'font = "{dejavu}"'), environ={}).server.font == dejavu
    assert load_config(write_config(tmp_path, ""), environ={}).server.font is None


@pytest.mark.parametrize(
    ("font_line", "expected"),
    [
        ('font = "missing.ttf"', "missing.ttf: cannot read it: No such file or directory"),
        ('font = "proxy.toml"', "proxy.toml: not a TrueType or OpenType font"),
        ('font = "."', "cannot read it"),
        ('font = "no-outlines.ttf"', "no-outlines.ttf: the font has no outlines"),
        ("font = 12", "must be the path of a font file"),
        ('font = ""', "must be the path of a font file"),
    ],
    ids=["missing", "not-a-font", "a-folder", "no-outlines", "a-number", "empty"],
)
def test_a_font_setting_that_cannot_be_used_stops_the_start_with_one_line(tmp_path, font_line, expected):
    write_font_without_outlines(tmp_path / "no-outlines.ttf", "A")
    path = write_config(tmp_path, font_line)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    message = str(info.value)
    assert message.startswith(f"{path}: [server]: field 'font': ")
    assert expected in message
    assert "\n" not in message


@pytest.mark.parametrize("render", RENDERS)
def test_a_name_too_long_for_any_readable_size_is_cut_short_with_an_ellipsis(dejavu, render):
    name = "Parkplatz Nord, Einfahrt Tor 3, Kamera 12 (Blick nach Osten) " * 5  # over 300 characters
    drawn = render()
    ink = ImageChops.difference(drawn(name), drawn("")).getbbox()
    assert ink is not None and 0 < ink[0] and ink[2] < SIZE[0], f"the name runs off the picture: {ink}"
    fonts = TextFonts()
    text, size = fonts.fit(name, 30, 590)
    assert size >= 15, "shrunk no further than half its size, so it stays readable"
    assert text.endswith("\u2026") and name.startswith(text[:-1].rstrip())
    assert fonts.length(text, size) <= 590
    assert fonts.fit("Garage", 30, 590) == ("Garage", 30)
