"""EEN API v3 across processes: two proxies sharing one token file never log each other out (issue 13, item 8).

Each process is a real ``python run.py --config FILE``, as a restart that overlaps the old
process or a second replica would run; the fake EEN v3 serves them from this test's loop.
"""

from __future__ import annotations

import os

from mjpeg_proxy.sources.een_tokens import read_tokens
from tests.fake_een_v3 import FakeEenV3
from tests.helpers import MjpegViewer, real_frames
from tests.processes import proxy_process

PETS = real_frames()
FRONT = "1006073b"
REDIRECT = "http://127.0.0.1:3333/callback"


async def next_camera_frame(viewer: MjpegViewer) -> bytes:
    """The viewer's next new picture that is a camera frame (not the offline picture)."""
    while True:
        jpeg = (await viewer.next_new_part()).jpeg
        if jpeg in PETS:
            return jpeg


async def test_two_processes_sharing_the_token_file_refresh_in_turn_and_both_keep_serving(aiohttp_server, tmp_path):
    fake = FakeEenV3(redirect_uris=(REDIRECT,))
    fake.add_camera(FRONT, PETS, interval_s=0.1)
    een = (await aiohttp_server(fake.app())).make_url("")
    token_file = tmp_path / "een.json"
    await fake.log_in(een, token_file)
    config = tmp_path / "mjpeg-proxy.toml"
    config.write_text(
        f'[een]\napi = "v3"\nclient_id = "{fake.client_id}"\nclient_secret_env = "EEN_CLIENT_SECRET"\n'
        f'token_file = "een.json"\nauth_url = "{str(een).rstrip("/")}"\n\n'
        f'[[cameras]]\nid = "front"\nsource = "een"\nesn = "{FRONT}"\npreview = "image"\n'
    )
    env = {**os.environ, "EEN_CLIENT_SECRET": fake.client_secret}
    async with (
        proxy_process(tmp_path, "--config", str(config), env=env) as first,
        proxy_process(tmp_path, "--config", str(config), env=env) as second,
    ):
        async with (
            MjpegViewer(f"{first.base}/cameras/front/stream.mjpg") as one,
            MjpegViewer(f"{second.base}/cameras/front/stream.mjpg") as two,
        ):
            for viewer in (one, two):
                assert (await next_camera_frame(viewer)) in PETS
            # Both processes' access token dies at once: both get a 401, one refreshes, the
            # other finds the new tokens in the file and takes them without refreshing (a
            # second refresh would kill the first one's new tokens, and so on, back and forth).
            fake.expire_access_tokens()
            for _ in range(5):
                for viewer in (one, two):
                    await next_camera_frame(viewer)
        assert fake.token_requests["refresh_token"] == 1
        assert fake.dead_refreshes == 0, "one process used a refresh token the other had rotated away"
        record = read_tokens(token_file)
        assert record is not None and record.refresh_token in fake.refresh_tokens
    for process in (first, second):
        assert "login_expired" not in process.stderr() and "refused the refresh token" not in process.stderr()
