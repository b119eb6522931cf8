"""The TOML configuration: every mistake is one ConfigError naming file, camera and field."""

from __future__ import annotations

import pytest

from mjpeg_proxy.config import CameraConfig, ConfigError, ServerConfig
from mjpeg_proxy.config.loader import default_config, load_config
from mjpeg_proxy.config.server import DEFAULT_HOST, DEFAULT_PORT
from mjpeg_proxy.sources.demo import DemoConfig
from mjpeg_proxy.sources.een_config import with_een_cameras
from mjpeg_proxy.sources.snapshot import SnapshotConfig
from tests.helpers import DEMO, assert_names, load_error, write

SNAPSHOT = '[[cameras]]\nid = "garage"\nsource = "snapshot"\nurl = "http://cam.example/snapshot.jpg"\n'


# --- unknown keys and tables -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (DEMO + "colour = true\n", "colour"),
        (DEMO + 'url = "http://cam.example/x.jpg"\n', "url"),  # a snapshot key on a demo camera
        (SNAPSHOT + "width = 640\n", "width"),  # a demo key on a snapshot camera
    ],
    ids=["made-up", "snapshot-key-on-demo", "demo-key-on-snapshot"],
)
def test_unknown_camera_key_names_file_camera_and_field(tmp_path, text, key):
    message = load_error(tmp_path, text)
    camera = "camera 'garage'" if "garage" in text else "camera 'demo'"
    assert_names(message, camera, key)
    assert "unknown key" in message


def test_unknown_server_key_names_file_server_and_field(tmp_path):
    message = load_error(tmp_path, "[server]\nlisten = 80\n" + DEMO)
    assert_names(message, "[server]", "listen")
    assert "unknown key" in message


def test_unknown_top_level_table_names_file_and_table(tmp_path):
    message = load_error(tmp_path, DEMO + "[logging]\nlevel = 'debug'\n")
    assert "'logging'" in message
    assert "unknown table" in message


# --- missing fields ----------------------------------------------------------------


def test_missing_id_names_camera_by_position(tmp_path):
    message = load_error(tmp_path, DEMO + '[[cameras]]\nsource = "demo"\n')
    assert_names(message, "camera #2", "id")
    assert "missing" in message


def test_missing_source_names_file_camera_and_field(tmp_path):
    message = load_error(tmp_path, '[[cameras]]\nid = "porch"\n')
    assert_names(message, "camera 'porch'", "source")
    assert "missing" in message


def test_unknown_source_names_file_camera_and_field(tmp_path):
    message = load_error(tmp_path, '[[cameras]]\nid = "porch"\nsource = "rtsp"\n')
    assert_names(message, "camera 'porch'", "source")
    assert "'rtsp'" in message


def test_snapshot_camera_without_url_names_field_url(tmp_path):
    message = load_error(tmp_path, '[[cameras]]\nid = "garage"\nsource = "snapshot"\n')
    assert_names(message, "camera 'garage'", "url")
    assert "missing" in message


def test_no_cameras_names_file(tmp_path):
    message = load_error(tmp_path, "[server]\nport = 8080\n")
    assert "no cameras" in message


def test_empty_cameras_list_names_file(tmp_path):
    message = load_error(tmp_path, "cameras = []\n")
    assert "no cameras" in message


# --- ids -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("camera_id", "label"),
    [
        ("Garage", "camera 'Garage'"),
        ("front door", "camera 'front door'"),
        ("a" * 65, "camera '" + "a" * 65 + "'"),
        ("", "camera #1"),
    ],
    ids=["uppercase", "spaces", "65-chars", "empty"],
)
def test_bad_id_names_file_camera_and_field(tmp_path, camera_id, label):
    message = load_error(tmp_path, f'[[cameras]]\nid = "{camera_id}"\nsource = "demo"\n')
    assert_names(message, label, "id")


def test_id_of_64_characters_is_accepted(tmp_path):
    config = load_config(write(tmp_path, f'[[cameras]]\nid = "{"a" * 64}"\nsource = "demo"\n'), environ={})
    assert config.cameras[0].id == "a" * 64


def test_duplicate_id_names_file_camera_and_field(tmp_path):
    message = load_error(tmp_path, SNAPSHOT + '[[cameras]]\nid = "garage"\nsource = "demo"\n')
    assert_names(message, "camera 'garage'", "id")
    assert "duplicate" in message


# --- secrets ---------------------------------------------------------------------------


def test_unset_password_env_names_file_camera_field_and_variable(tmp_path):
    text = SNAPSHOT + 'username = "admin"\npassword_env = "GARAGE_PASSWORD"\n'
    message = load_error(tmp_path, text, environ={"OTHER": "x"})
    assert_names(message, "camera 'garage'", "password_env")
    assert "GARAGE_PASSWORD" in message


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "set but empty"),
        ("   ", "only blanks"),
        ("\u200b\u200b", "only blanks or invisible"),
        ("\ufeff", "only blanks or invisible"),
        ("pass\nword", "line break"),
        ("pass\x00", "control character"),
        ("pass\u2028word", "line break"),
        ("pass\x85word", "line break"),
        ("pass\u200bword", "invisible"),
        ("\u3164", "only blanks or invisible"),
        ("\ufe0f\uffa0", "only blanks or invisible"),
    ],
    ids=[
        "empty",
        "blanks",
        "zero-width-spaces",
        "byte-order-mark",
        "line-break",
        "nul",
        "line-separator",
        "nel",
        "zero-width-space-inside",
        "hangul-filler",
        "variation-selector-and-filler",
    ],
)
def test_a_password_variable_that_is_empty_or_holds_control_characters_is_refused(tmp_path, value, problem):
    text = SNAPSHOT + 'username = "admin"\npassword_env = "GARAGE_PASSWORD"\n'
    message = load_error(tmp_path, text, environ={"GARAGE_PASSWORD": value})
    assert_names(message, "camera 'garage'", "password_env")
    assert "GARAGE_PASSWORD" in message and problem in message


@pytest.mark.parametrize(
    "username", ['" admin"', '"admin "', '"   "', '"ad\\nmin"', '"admin\\u200b"', '"\\ufeffadmin"', '"ad\\u2028min"']
)
def test_a_username_with_blanks_at_an_end_or_a_line_break_is_refused(tmp_path, username):
    message = load_error(tmp_path, SNAPSHOT + f"username = {username}\n")
    assert_names(message, "camera 'garage'", "username")
    een = load_error(tmp_path, f'[een]\nusername = {username}\npassword_env = "P"\n' + EEN_CAMERA, {"P": "x"})
    assert_names(een, "[een]", "username")


def test_a_colon_in_a_basic_auth_username_is_refused(tmp_path):
    message = load_error(tmp_path, SNAPSHOT + 'username = "ad:min"\n')
    assert_names(message, "camera 'garage'", "username")
    digest = load_config(write(tmp_path, SNAPSHOT + 'username = "ad:min"\nauth = "digest"\n'), environ={})
    assert digest.cameras[0].source.username == "ad:min"


# --- URLs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url_toml",
    [
        '"ftp://cam.example/snapshot.jpg"',
        '"http://"',
        '"http:///snapshot.jpg"',
        '"cam.example/snapshot.jpg"',
        "42",
        '["http://cam.example/snapshot.jpg"]',
        '"http://exa mple.com/snap.jpg"',
        '"http://exa\u00a0mple.com/snap.jpg"',
        '"http://cam.example/snap shot.jpg"',
        '"http://cam.exa\tmple/snap.jpg"',
        '"http://cam.example/snap.jpg\\n"',
        '"http://exa%20mple.com/snap.jpg"',
        '"http://-cam-.example/snap.jpg"',
        '"http://cam..example/snap.jpg"',
        '"http://10.0.0.300/snap.jpg"',
        '"http://192.168.1/snap.jpg"',
        '"http://cam.example:0/snap.jpg"',
        '"http://cam.example:99999/snap.jpg"',
        '"http://[::1/snap.jpg"',
        '"http:/cam.example/snap.jpg"',
        '"http://cam.example/snap.jpg\u200b"',
        '"\ufeffhttp://cam.example/snap.jpg"',
        '"http://cam.example/snap\u3000shot.jpg"',
    ],
    ids=[
        "ftp",
        "no-host",
        "empty-host",
        "no-scheme",
        "integer",
        "list",
        "space-in-host",
        "no-break-space-in-host",
        "space-in-path",
        "tab",
        "line-break",
        "encoded-space-in-host",
        "hyphen-label",
        "empty-label",
        "ipv4-out-of-range",
        "ipv4-three-parts",
        "port-0",
        "port-too-large",
        "unclosed-ipv6",
        "one-slash",
        "zero-width-space",
        "byte-order-mark",
        "ideographic-space",
    ],
)
def test_bad_url_names_file_camera_and_field(tmp_path, url_toml):
    text = f'[[cameras]]\nid = "garage"\nsource = "snapshot"\nurl = {url_toml}\n'
    message = load_error(tmp_path, text)
    assert_names(message, "camera 'garage'", "url")


@pytest.mark.parametrize(
    "url",
    ["http://admin:hunter2secret@cam.example/snapshot.jpg", "ftp://admin:hunter2secret@cam.example/x.jpg"],
    ids=["http", "ftp"],
)
def test_url_with_credentials_is_refused_without_showing_the_password(tmp_path, url):
    text = f'[[cameras]]\nid = "garage"\nsource = "snapshot"\nurl = "{url}"\n'
    message = load_error(tmp_path, text)
    assert_names(message, "camera 'garage'", "url")
    assert "hunter2secret" not in message


@pytest.mark.parametrize(
    "url",
    [
        "http://cam.example/snapshot.jpg",
        "https://cam.example:8443/cgi-bin/snapshot.cgi?channel=1&subtype=0",
        "http://192.0.2.10/snapshot.jpg",
        "http://[2001:db8::10]:8080/video.mjpg",
        "http://kamera.müller.example/bild.jpg",
        "http://nvr_01.lan/snap%20shot.jpg",
        "http://localhost/snap.jpg",
        "http://cam.example./snap.jpg",
    ],
)
def test_good_urls_are_accepted(tmp_path, url):
    config = load_config(write(tmp_path, f'[[cameras]]\nid = "c"\nsource = "snapshot"\nurl = "{url}"\n'), environ={})
    assert config.cameras[0].source.url == url


# --- fps -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fps_toml",
    ["0.06", "31", "0", "-1", '"5"', "true", "nan", "inf"],
    ids=["too-low", "too-high", "zero", "negative", "string", "boolean", "nan", "inf"],
)
@pytest.mark.parametrize("base", [DEMO, SNAPSHOT], ids=["demo", "snapshot"])
def test_bad_fps_names_file_camera_and_field(tmp_path, base, fps_toml):
    message = load_error(tmp_path, base + f"fps = {fps_toml}\n")
    camera = "camera 'garage'" if "garage" in base else "camera 'demo'"
    assert_names(message, camera, "fps")


@pytest.mark.parametrize("fps", [0.0625, 0.1, 1, 30])  # 0.0625: an EEN preview every 16 s, as the README says
def test_fps_at_the_limits_is_accepted(tmp_path, fps):
    config = load_config(write(tmp_path, DEMO + f"fps = {fps}\n"), environ={})
    assert config.cameras[0].fps == fps
    assert isinstance(config.cameras[0].fps, float)


# --- auth ------------------------------------------------------------------------------


@pytest.mark.parametrize("auth_toml", ['"ntlm"', '"Basic"', '""', "true"], ids=["ntlm", "capitalised", "empty", "bool"])
def test_bad_auth_value_names_file_camera_and_field(tmp_path, auth_toml):
    message = load_error(tmp_path, SNAPSHOT + f'username = "admin"\nauth = {auth_toml}\n')
    assert_names(message, "camera 'garage'", "auth")


def test_auth_without_username_names_field_auth(tmp_path):
    message = load_error(tmp_path, SNAPSHOT + 'auth = "digest"\n')
    assert_names(message, "camera 'garage'", "auth")
    assert "username" in message


def test_password_env_without_username_names_field_password_env(tmp_path):
    message = load_error(tmp_path, SNAPSHOT + 'password_env = "GARAGE_PASSWORD"\n', environ={"GARAGE_PASSWORD": "pw"})
    assert_names(message, "camera 'garage'", "password_env")


# --- server ----------------------------------------------------------------------------


@pytest.mark.parametrize("port_toml", ["0", "65536", "-80", '"8080"', "80.5", "true"])
def test_port_out_of_range_names_file_server_and_field(tmp_path, port_toml):
    message = load_error(tmp_path, f"[server]\nport = {port_toml}\n" + DEMO)
    assert_names(message, "[server]", "port")


# --- unreadable files ------------------------------------------------------------------


def test_invalid_toml_names_file(tmp_path):
    message = load_error(tmp_path, '[[cameras]]\nid = "demo\nsource = "demo"\n')
    assert "invalid TOML" in message


def test_utf8_file_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "notepad.toml"
    path.write_bytes(b"\xef\xbb\xbf" + DEMO.encode())
    assert load_config(str(path), environ={}).cameras[0].id == "demo"


def test_url_with_a_bad_port_says_so(tmp_path):
    message = load_error(tmp_path, SNAPSHOT.replace("cam.example", "cam.example:99999"))
    assert_names(message, "camera 'garage'", "url")
    assert "Port out of range" in message


def test_file_that_is_not_utf8_is_a_config_error(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(DEMO.encode() + 'name = "Café"\n'.encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_config(str(path), environ={})
    assert str(path) in str(info.value) and "UTF-8" in str(info.value)


@pytest.mark.parametrize(
    "text",
    ['[[cameras]]\nid = "a\\nb"\nsource = "demo"\n', DEMO + '"bad\\nkey" = 1\n', '"bad\\ntable" = 1\n' + DEMO],
    ids=["id", "camera-key", "top-level-key"],
)
def test_line_breaks_in_the_file_do_not_break_the_one_line_message(tmp_path, text):
    load_error(tmp_path, text)  # asserts the message has no newline


def test_missing_file_names_file(tmp_path):
    path = str(tmp_path / "nowhere.toml")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    message = str(info.value)
    assert path in message
    assert "cannot read" in message
    assert "\n" not in message


# --- what parses -----------------------------------------------------------------------


def test_full_snapshot_camera_parses_into_camera_config(tmp_path):
    text = (
        "[[cameras]]\n"
        'id = "garage"\n'
        'name = "Garage door"\n'
        'source = "snapshot"\n'
        'url = "https://cam.example:8443/cgi-bin/snapshot.jpg?channel=1"\n'
        "fps = 2\n"
        'username = "viewer"\n'
        'password_env = "GARAGE_PASSWORD"\n'
        'auth = "digest"\n'
    )
    path = write(tmp_path, text)
    config = load_config(path, environ={"GARAGE_PASSWORD": "s3cret-pw"})
    assert config.path == path
    assert config.server == ServerConfig()
    assert config.cameras == (
        CameraConfig(
            id="garage",
            source=SnapshotConfig(
                url="https://cam.example:8443/cgi-bin/snapshot.jpg?channel=1",
                username="viewer",
                password="s3cret-pw",
                auth="digest",
            ),
            name="Garage door",
            fps=2.0,
        ),
    )
    assert config.cameras[0].display_name == "Garage door"


def test_password_is_not_shown_in_repr(tmp_path):
    text = SNAPSHOT + 'username = "viewer"\npassword_env = "GARAGE_PASSWORD"\n'
    config = load_config(write(tmp_path, text), environ={"GARAGE_PASSWORD": "s3cret-pw"})
    assert config.cameras[0].source.password == "s3cret-pw"
    assert "s3cret-pw" not in repr(config)
    assert "s3cret-pw" not in repr(config.cameras[0])
    assert "s3cret-pw" not in str(config.cameras[0])


def test_auth_defaults_to_basic_when_username_is_given(tmp_path):
    config = load_config(write(tmp_path, SNAPSHOT + 'username = "viewer"\n'), environ={})
    camera = config.cameras[0]
    assert camera.source.username == "viewer"
    assert camera.source.auth == "basic"
    assert camera.source.password is None


def test_snapshot_camera_without_username_has_no_auth(tmp_path):
    camera = load_config(write(tmp_path, SNAPSHOT), environ={}).cameras[0]
    assert camera.source.username is None
    assert camera.source.auth is None
    assert camera.fps == 1.0
    assert camera.display_name == "garage"


def test_demo_camera_takes_fps_width_and_height(tmp_path):
    config = load_config(write(tmp_path, DEMO + "fps = 12.5\nwidth = 320\nheight = 240\n"), environ={})
    camera = config.cameras[0]
    assert (camera.id, camera.kind, camera.fps, camera.picture_size) == ("demo", "demo", 12.5, (320, 240))
    assert camera.source == DemoConfig(width=320, height=240)


def test_default_config_has_one_demo_camera():
    config = default_config()
    assert len(config.cameras) == 1
    assert config.cameras[0].id == "demo"
    assert config.cameras[0].kind == "demo"
    assert config.server == ServerConfig(host=DEFAULT_HOST, port=DEFAULT_PORT)
    assert config.path is None


def test_server_table_parses_host_port_and_resend_seconds(tmp_path):
    text = '[server]\nhost = "0.0.0.0"\nport = 9090\nresend_seconds = 0.5\n' + DEMO
    config = load_config(write(tmp_path, text), environ={})
    assert config.server == ServerConfig(host="0.0.0.0", port=9090, resend_seconds=0.5)


def test_several_cameras_keep_their_order(tmp_path):
    text = SNAPSHOT + DEMO + '[[cameras]]\nid = "back_yard-2"\nsource = "demo"\n'
    config = load_config(write(tmp_path, text), environ={})
    assert [c.id for c in config.cameras] == ["garage", "demo", "back_yard-2"]


# --- Eagle Eye Networks ------------------------------------------------------------------

EEN = '[een]\nusername = "preview@example.com"\npassword_env = "EEN_PASSWORD"\n'
EEN_CAMERA = '[[cameras]]\nid = "front-door"\nsource = "een"\nesn = "1006073B"\n'
EEN_ENV = {"EEN_PASSWORD": "pw-een", "EEN_API_KEY": "key-een", "EMPTY": "", "BROKEN": "key\r\nX-Injected: 1"}


def test_een_account_and_camera_parse(tmp_path):
    text = EEN + 'api_key_env = "EEN_API_KEY"\nuse_brand_subdomain = false\n' + EEN_CAMERA
    config = load_config(write(tmp_path, text), environ=EEN_ENV)
    assert config.tables["een"].username == "preview@example.com"
    assert (config.tables["een"].password, config.tables["een"].api_key) == ("pw-een", "key-een")
    assert config.tables["een"].base_url == "https://login.eagleeyenetworks.com"
    assert config.tables["een"].use_brand_subdomain is False
    assert config.cameras[0].source.esn == "1006073b"
    assert config.cameras[0].source.account == config.tables["een"]
    assert "pw-een" not in repr(config) and "key-een" not in repr(config) and "preview@" not in repr(config)


@pytest.mark.parametrize(
    ("text", "where", "field"),
    [
        (EEN + '[[cameras]]\nid = "x"\nsource = "een"\n', "camera 'x'", "esn"),
        (EEN + '[[cameras]]\nid = "x"\nsource = "een"\nesn = "1006073"\n', "camera 'x'", "esn"),
        (EEN + '[[cameras]]\nid = "x"\nsource = "een"\nesn = "1006073g"\n', "camera 'x'", "esn"),
        (EEN + '[[cameras]]\nid = "x"\nsource = "een"\nesn = "1006073b"\nurl = "http://a/"\n', "camera 'x'", "url"),
        (EEN_CAMERA, "camera 'front-door'", "source"),
        ('[een]\npassword_env = "EEN_PASSWORD"\n' + EEN_CAMERA, "[een]", "username"),
        ('[een]\nusername = "u"\n' + EEN_CAMERA, "[een]", "password_env"),
        ('[een]\nusername = "u"\npassword_env = "UNSET_VAR"\n' + EEN_CAMERA, "[een]", "password_env"),
        (EEN + 'api_key_env = "UNSET_VAR"\n' + EEN_CAMERA, "[een]", "api_key_env"),
        ('[een]\nusername = "u"\npassword_env = "EMPTY"\n' + EEN_CAMERA, "[een]", "password_env"),
        (EEN + 'api_key_env = "EMPTY"\n' + EEN_CAMERA, "[een]", "api_key_env"),
        (EEN + 'api_key_env = "BROKEN"\n' + EEN_CAMERA, "[een]", "api_key_env"),
        (EEN + 'base_url = "https://log in.eagleeyenetworks.com"\n' + EEN_CAMERA, "[een]", "base_url"),
        (EEN + 'base_url = "ftp://x"\n' + EEN_CAMERA, "[een]", "base_url"),
        (EEN + "use_brand_subdomain = 1\n" + EEN_CAMERA, "[een]", "use_brand_subdomain"),
        (EEN + "colour = 1\n" + EEN_CAMERA, "[een]", "colour"),
    ],
    ids=[
        "no-esn",
        "short-esn",
        "non-hex-esn",
        "snapshot-key",
        "no-een-table",
        "no-username",
        "no-password-env",
        "unset-password",
        "unset-api-key",
        "empty-password",
        "empty-api-key",
        "api-key-with-line-break",
        "base-url-with-space",
        "bad-base-url",
        "brand-not-bool",
        "unknown-key",
    ],
)
def test_een_mistakes_name_file_place_and_field(tmp_path, text, where, field):
    message = load_error(tmp_path, text, EEN_ENV)
    assert_names(message, where, field)


def test_een_esn_shortcut_takes_the_account_from_the_environment():
    config = with_een_cameras(None, ["1006073B", "100d4c41"], {"EEN_USERNAME": "u@example.com", "EEN_PASSWORD": "pw"})
    assert [(c.id, c.kind, c.source.esn) for c in config.cameras] == [
        ("1006073b", "een", "1006073b"),
        ("100d4c41", "een", "100d4c41"),
    ]
    assert (config.tables["een"].username, config.tables["een"].password, config.tables["een"].api_key) == (
        "u@example.com",
        "pw",
        None,
    )


def test_een_esn_shortcut_adds_to_a_config_file_and_uses_its_account(tmp_path):
    base = load_config(write(tmp_path, EEN + DEMO), environ=EEN_ENV)
    config = with_een_cameras(base, ["100d4c41"], {})
    assert [c.id for c in config.cameras] == ["demo", "100d4c41"]
    assert config.tables["een"].password == "pw-een"
    assert config.cameras[1].source.account == base.tables["een"]


@pytest.mark.parametrize(
    ("esns", "environ", "expected"),
    [
        (["1006073b"], {}, "set EEN_USERNAME and EEN_PASSWORD"),
        (["1006073b"], {"EEN_USERNAME": "u"}, "set EEN_PASSWORD"),
        (["1006073b"], {"EEN_USERNAME": "u", "EEN_PASSWORD": ""}, "EEN_PASSWORD is set but empty"),
        (["1006073b"], {"EEN_USERNAME": "u", "EEN_PASSWORD": "   "}, "EEN_PASSWORD holds only blanks"),
        (["1006073b"], {"EEN_USERNAME": "u@example.com\n", "EEN_PASSWORD": "p"}, "EEN_USERNAME holds a line break"),
        (["1006073b"], {"EEN_USERNAME": " u@example.com", "EEN_PASSWORD": "p"}, "EEN_USERNAME starts or ends"),
        (["nothex!!"], {"EEN_USERNAME": "u", "EEN_PASSWORD": "p"}, "is not an ESN"),
        (["1006073b", "1006073B"], {"EEN_USERNAME": "u", "EEN_PASSWORD": "p"}, "already configured"),
    ],
)
def test_een_esn_shortcut_mistakes(esns, environ, expected):
    with pytest.raises(ConfigError) as info:
        with_een_cameras(None, esns, environ)
    assert expected in str(info.value) and "\n" not in str(info.value)


# --- limits and on-demand keys -----------------------------------------------------------


def test_limits_and_on_demand_keys_parse(tmp_path):
    text = (
        "[server]\nmax_viewers_per_camera = 10\nmax_viewers = 20\nmax_connections_per_client = 3\n"
        'trusted_proxies = ["127.0.0.1", "10.0.0.0/8", "::1"]\nmax_header_bytes = 4096\nrequest_timeout = 5\n'
        + DEMO
        + "linger_seconds = 0\nalways_on = true\n"
    )
    config = load_config(write(tmp_path, text), environ={})
    server, camera = config.server, config.cameras[0]
    assert (server.max_viewers_per_camera, server.max_viewers, server.max_connections_per_client) == (10, 20, 3)
    assert [str(n) for n in server.trusted_proxies] == ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]
    assert (server.max_header_bytes, server.request_timeout) == (4096, 5.0)
    assert (camera.linger_seconds, camera.always_on) == (0.0, True)


@pytest.mark.parametrize(
    ("text", "where", "field", "hint"),
    [
        ("[server]\nmax_viewers = 0\n" + DEMO, "[server]", "max_viewers", "from 1"),
        ("[server]\nmax_viewers_per_camera = 1.5\n" + DEMO, "[server]", "max_viewers_per_camera", "integer"),
        ('[server]\nmax_connections_per_client = "9"\n' + DEMO, "[server]", "max_connections_per_client", "integer"),
        ("[server]\nmax_header_bytes = 100\n" + DEMO, "[server]", "max_header_bytes", "1024"),
        ("[server]\nrequest_timeout = 0\n" + DEMO, "[server]", "request_timeout", "seconds"),
        ('[server]\ntrusted_proxies = "10.0.0.0/8"\n' + DEMO, "[server]", "trusted_proxies", "list"),
        ("[server]\ntrusted_proxies = [1]\n" + DEMO, "[server]", "trusted_proxies", "not a string"),
        ('[server]\ntrusted_proxies = ["10.0.0.1/8"]\n' + DEMO, "[server]", "trusted_proxies", "host bits"),
        ('[server]\ntrusted_proxies = ["proxy.lan"]\n' + DEMO, "[server]", "trusted_proxies", "proxy.lan"),
        (DEMO + "linger_seconds = -1\n", "camera 'demo'", "linger_seconds", "from 0"),
        (DEMO + 'always_on = "yes"\n', "camera 'demo'", "always_on", "true or false"),
    ],
    ids=[
        "max-viewers-0",
        "per-camera-float",
        "per-client-string",
        "header-too-small",
        "timeout-0",
        "proxies-not-list",
        "proxy-not-string",
        "proxy-host-bits",
        "proxy-hostname",
        "negative-linger",
        "always-on-string",
    ],
)
def test_limit_and_on_demand_mistakes_name_file_place_and_field(tmp_path, text, where, field, hint):
    message = load_error(tmp_path, text)
    assert_names(message, where, field)
    assert hint in message


@pytest.mark.parametrize("password", ["correct horse battery staple", "пароль-Ünïcödé", " leading and trailing "])
def test_passwords_with_spaces_inside_or_any_script_are_accepted(tmp_path, password):
    text = SNAPSHOT + 'username = "admin"\npassword_env = "GARAGE_PASSWORD"\n'
    config = load_config(write(tmp_path, text), environ={"GARAGE_PASSWORD": password})
    assert config.cameras[0].source.password == password
