"""``[een] api = "v3"``: the OAuth2 client, the token file and the auth host (issue 13, item 1).

Protocol facts: the project's EEN notes (shared/EEN-API.md), section 3.1.
"""

from __future__ import annotations

import os

import pytest

from mjpeg_proxy.config.checks import ConfigError
from mjpeg_proxy.config.loader import load_config, load_table
from mjpeg_proxy.sources.een_config import EenCameraConfig, with_een_cameras
from mjpeg_proxy.sources.een_v3_config import EenV3Config
from tests.helpers import assert_names, load_error, write

V3 = '[een]\napi = "v3"\nclient_id = "client-1"\nclient_secret_env = "EEN_CLIENT_SECRET"\ntoken_file = "een.json"\n'
V3_ENV = {"EEN_CLIENT_SECRET": "s3cret-v3"}
CAMERA = '[[cameras]]\nid = "front-door"\nsource = "een"\nesn = "1006073B"\n'


def test_v3_account_reads_alone_with_defaults(tmp_path):
    path = write(tmp_path, V3 + CAMERA)
    account = load_table(path, "een", V3_ENV)
    assert account == EenV3Config(
        "client-1", "s3cret-v3", str(tmp_path / "een.json"), "https://auth.eagleeyenetworks.com"
    )
    assert "s3cret-v3" not in repr(account)


def test_v3_token_file_absolute_and_auth_url_on_loopback_kept(tmp_path):
    text = V3.replace('"een.json"', f'"{tmp_path}/x/t.json"') + 'auth_url = "http://127.0.0.1:8123/"\n'
    account = load_table(write(tmp_path, text), "een", V3_ENV)
    assert isinstance(account, EenV3Config)
    assert (account.token_file, account.auth_url) == (f"{tmp_path}/x/t.json", "http://127.0.0.1:8123")


def test_v3_cameras_read_with_their_preview_mode_multipart_by_default(tmp_path):
    text = V3 + CAMERA + CAMERA.replace("front-door", "gate").replace("1006073B", "1006073c") + 'preview = "image"\n'
    config = load_config(write(tmp_path, text), V3_ENV)
    front, gate = (camera.source for camera in config.cameras)
    assert isinstance(front, EenCameraConfig) and isinstance(gate, EenCameraConfig)
    assert (front.esn, front.preview, gate.preview) == ("1006073b", "multipart", "image")
    assert front.account == gate.account == config.tables["een"]


@pytest.mark.parametrize(
    "account, preview, expected",
    [
        (V3, '"mjpeg"', 'must be "multipart" or "image"'),
        (V3, "1", 'must be "multipart" or "image"'),
        ('[een]\nusername = "u@example.com"\npassword_env = "P"\n', '"image"', "is for API v3 accounts"),
    ],
)
def test_a_wrong_preview_mode_is_refused_with_the_camera_and_key(tmp_path, account, preview, expected):
    message = load_error(tmp_path, account + CAMERA + f"preview = {preview}\n", {**V3_ENV, "P": "pw"})
    assert_names(message, "camera 'front-door'", "preview")
    assert expected in message


def test_een_esn_works_with_a_v3_account(tmp_path):
    base = load_config(write(tmp_path, V3), V3_ENV, require_cameras=False)
    config = with_een_cameras(base, ["1006073B"], {})
    (camera,) = config.cameras
    assert isinstance(camera.source, EenCameraConfig)
    assert (camera.id, camera.source.account, camera.source.preview) == ("1006073b", base.tables["een"], "multipart")


def test_v1_files_and_api_v1_read_as_before(tmp_path):
    v1 = '[een]\nusername = "u@example.com"\npassword_env = "P"\n'
    plain = load_config(write(tmp_path, v1 + CAMERA), {"P": "pw"})
    explicit = load_config(write(tmp_path, '[een]\napi = "v1"\n' + v1[6:] + CAMERA), {"P": "pw"})
    assert plain.tables["een"] == explicit.tables["een"]


@pytest.mark.parametrize(
    "text, field",
    [
        (V3 + 'username = "u@example.com"\n', "username"),
        (V3 + 'password_env = "P"\n', "password_env"),
        (V3 + 'base_url = "https://login.eagleeyenetworks.com"\n', "base_url"),
        ('[een]\nusername = "u"\npassword_env = "P"\nclient_id = "c"\n', "client_id"),
        ('[een]\nusername = "u"\npassword_env = "P"\ntoken_file = "t.json"\n', "token_file"),
        ('[een]\napi = "v2"\n', "api"),
        ("[een]\napi = 3\n", "api"),
        (V3.replace('client_id = "client-1"\n', ""), "client_id"),
        (V3.replace('client_id = "client-1"', 'client_id = " c"'), "client_id"),
        (V3.replace('client_secret_env = "EEN_CLIENT_SECRET"\n', ""), "client_secret_env"),
        (V3.replace("EEN_CLIENT_SECRET", "UNSET_VAR"), "client_secret_env"),
        (V3.replace('token_file = "een.json"\n', ""), "token_file"),
        (V3.replace('"een.json"', '"tokens/"'), "token_file"),
        (V3 + 'auth_url = "http://auth.example.com"\n', "auth_url"),
        (V3 + 'auth_url = "http://10.0.0.1:80"\n', "auth_url"),
        (V3 + 'auth_url = "ftp://auth.example.com"\n', "auth_url"),
        (V3 + 'auth_url = "https://au th.example.com"\n', "auth_url"),
        (V3 + 'auth_url = "https://auth.example.com/?x=1"\n', "auth_url"),
        (V3 + "colour = 1\n", "colour"),
    ],
)
def test_v3_mistakes_name_file_table_and_field(tmp_path, text, field):
    message = load_error(tmp_path, text + CAMERA, {**V3_ENV, "P": "pw"})
    assert_names(message, "[een]", field)


def test_load_table_without_the_table_names_it(tmp_path):
    path = write(tmp_path, CAMERA)
    with pytest.raises(ConfigError, match=r"no \[een\] table"):
        load_table(path, "een", {})
    assert os.path.exists(path)
