"""The source registry refuses a second kind, table or default camera of one name, and
the shared upstream clients are kept apart by kind."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import pytest

from mjpeg_proxy.config import CameraConfig, SourceConfig
from mjpeg_proxy.config.loader import default_config
from mjpeg_proxy.sources import KINDS, TABLES
from mjpeg_proxy.sources.een_config import EenCameraConfig, EenConfig, EenTiming
from mjpeg_proxy.sources.registry import DEFAULT_CAMERAS, register, register_default_camera, register_table
from mjpeg_proxy.sources.upstreams import Upstreams


def test_a_second_kind_of_one_name_is_refused():
    demo = KINDS["demo"]

    with pytest.raises(ValueError, match="'demo' is already registered"):
        register(demo)
    assert KINDS["demo"] is demo


def test_a_second_table_of_one_name_is_refused():
    een = TABLES["een"]

    with pytest.raises(ValueError, match=r"\[een\] is already registered"):
        register_table("een", lambda data, path, environ: None)
    assert TABLES["een"] is een


def test_a_second_default_camera_of_one_id_is_refused():
    before = list(DEFAULT_CAMERAS)

    with pytest.raises(ValueError, match="'demo' is already registered"):
        register_default_camera(CameraConfig(id="demo", source=before[0].source))
    assert DEFAULT_CAMERAS == before


def test_the_default_configuration_is_the_registered_default_cameras():
    assert default_config().cameras == tuple(DEFAULT_CAMERAS)
    assert [(camera.id, camera.kind) for camera in DEFAULT_CAMERAS] == [("demo", "demo")]


@dataclass(frozen=True)
class AccountA(SourceConfig):
    kind = "a"

    def shared_key(self) -> Hashable:
        return "same account"


@dataclass(frozen=True)
class AccountB(SourceConfig):
    kind = "b"

    def shared_key(self) -> Hashable:
        return "same account"


class Client:
    def __init__(self) -> None:
        self.closed = False

    async def close(self) -> None:
        self.closed = True

    def reloaded(self) -> None:
        pass


class OtherClient(Client):
    pass


async def test_two_kinds_with_equal_keys_get_a_client_each():
    upstreams = Upstreams(4)
    try:
        a = upstreams.shared(AccountA(), Client, Client)
        b = upstreams.shared(AccountB(), Client, Client)

        assert a is not b
        assert upstreams.shared(AccountA(), Client, Client) is a
        assert upstreams.shared(AccountB(), Client, Client) is b

        await upstreams.keep_only([CameraConfig(id="b", source=AccountB())])
        assert (a.closed, b.closed) == (True, False)
    finally:
        await upstreams.close()
    assert b.closed


async def test_a_shared_client_of_another_type_is_refused():
    upstreams = Upstreams(4)
    try:
        upstreams.shared(AccountA(), Client, Client)

        with pytest.raises(TypeError, match="is a Client, not a OtherClient"):
            upstreams.shared(AccountA(), OtherClient, OtherClient)
    finally:
        await upstreams.close()


def test_een_timing_is_no_part_of_the_account_its_cameras_share():
    account = EenConfig("user@example.com", "pw")
    shortened = EenConfig("user@example.com", "pw", timing=EenTiming(min_request_gap_s=0))

    assert EenCameraConfig("1006073b", account).shared_key() == EenCameraConfig("100d4c41", shortened).shared_key()
    assert EenConfig("user@example.com", "another pw") != account
