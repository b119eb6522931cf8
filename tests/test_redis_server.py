"""The tests' own Redis (``tests/redis_server.py``): it answers, forgets every key when it
restarts (persistence off, as in the Redis restart cluster mode must survive), and a server
with a password refuses clients without it."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as redis
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.helpers import need_binary
from tests.redis_server import RedisServer


async def test_the_fixtures_server_answers_on_loopback(redis_server: RedisServer):
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    async with redis.from_url(redis_server.url) as client:
        assert await client.ping() is True
        await client.set("camera:front", b"jpeg")
        assert await client.get("camera:front") == b"jpeg"
        assert (await client.config_get("bind"))["bind"] == "127.0.0.1"


async def test_a_restart_on_the_same_port_has_lost_every_key(redis_server: RedisServer):
    async with redis.from_url(redis_server.url) as client:
        await client.set("lease:front", "replica-a")
        assert (await client.config_get("save"))["save"] == ""
        assert (await client.config_get("appendonly"))["appendonly"] == "no"
    port = redis_server.port

    await redis_server.stop()
    async with redis.from_url(redis_server.url) as client:
        with pytest.raises(RedisConnectionError):
            await client.ping()
    await redis_server.start()

    assert redis_server.port == port
    async with redis.from_url(redis_server.url) as client:
        assert await client.get("lease:front") is None
        assert await client.dbsize() == 0
    assert not list(redis_server.directory.glob("*.rdb")) and not list(redis_server.directory.glob("appendonly*"))


async def test_a_server_with_a_password_refuses_clients_without_it(tmp_path: Path):
    server = RedisServer(need_binary("redis-server"), tmp_path, password="s3cret-pass")
    await server.start()
    try:
        async with redis.from_url(server.url) as client:
            with pytest.raises(AuthenticationError):
                await client.ping()
        async with redis.from_url(server.url, password="wrong") as client:
            with pytest.raises(AuthenticationError):
                await client.ping()
        async with redis.from_url(server.url, password="s3cret-pass") as client:
            assert await client.ping() is True
    finally:
        await server.stop()


async def test_stop_twice_and_stop_before_start_do_nothing(tmp_path: Path):
    server = RedisServer(need_binary("redis-server"), tmp_path)
    await server.stop()
    await server.start()
    await server.stop()
    await server.stop()
    assert server.process is None
