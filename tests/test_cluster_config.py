"""``[cluster]``: the Redis URL, its password from the environment, the replica's name and
the lease; every mistake one line naming file, table and key, never the password; a reload
keeps the ``[cluster]`` the process started with."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import pytest
import redis.asyncio as redis

from mjpeg_proxy.cluster.config import ClusterConfig
from mjpeg_proxy.config import Config, LiveConfig, ServerConfig
from mjpeg_proxy.config.loader import default_config, load_config
from tests.helpers import DEMO, MjpegViewer, eventually, load_error, need_binary, write
from tests.processes import proxy_process
from tests.redis_server import RedisServer

SECRET = "hunter2-redis"
ENV = {"REDIS_PASSWORD": SECRET}


def cluster_toml(*lines: str) -> str:
    return "[cluster]\n" + "".join(f"{line}\n" for line in lines) + DEMO


def test_a_full_cluster_table_is_read(tmp_path: Path):
    text = cluster_toml(
        'redis_url = "rediss://cache.example:6380/2"',
        'password_env = "REDIS_PASSWORD"',
        'replica_id = "web-1:8080"',
        "lease_seconds = 2.5",
    )
    config = load_config(write(tmp_path, text), environ=ENV)
    assert config.cluster == ClusterConfig(
        redis_url="rediss://cache.example:6380/2", password=SECRET, replica_id="web-1:8080", lease_seconds=2.5
    )


def test_only_redis_url_is_required_and_the_rest_has_defaults(tmp_path: Path):
    config = load_config(write(tmp_path, cluster_toml('redis_url = "redis://10.0.0.5:6379/0"')), environ={})
    assert config.cluster == ClusterConfig(redis_url="redis://10.0.0.5:6379/0")
    assert (config.cluster.password, config.cluster.replica_id, config.cluster.lease_seconds) == (None, None, 5.0)


def test_without_a_cluster_table_cluster_mode_is_off(tmp_path: Path):
    assert load_config(write(tmp_path, DEMO), environ={}).cluster is None
    assert default_config().cluster is None


@pytest.mark.parametrize(
    "url",
    [
        "redis://10.0.0.5",
        "redis://cache.example:6379/15",
        "redis://mjpeg@cache.example:6379/0",  # an ACL user; its password comes from password_env
        "redis://[::1]:6379/0",
        "rediss://cache.example:6380/0",
        "unix:///run/redis/redis.sock",
    ],
)
def test_redis_urls_that_redis_py_connects_to_are_accepted(tmp_path: Path, url: str):
    assert load_config(write(tmp_path, cluster_toml(f'redis_url = "{url}"')), environ={}).cluster == ClusterConfig(url)


NO_PASSWORD = "must not hold a password; name an environment variable that holds it in 'password_env'"
URL_EXAMPLE = 'such as "redis://10.0.0.5:6379/0"'
SCHEMES = f"must start with redis://, rediss:// (TLS) or unix:// (a socket), {URL_EXAMPLE}"
LEASE = "must be a number of seconds from 1 to 60, got"


@pytest.mark.parametrize(
    ("lines", "key", "problem"),
    [
        (["lease_seconds = 5"], "redis_url", f"missing; the Redis server the replicas share, {URL_EXAMPLE}"),
        (['redis_url = "redis://:hunter2-redis@10.0.0.5:6379/0"'], "redis_url", NO_PASSWORD),
        (['redis_url = "redis://app:hunter2-redis@10.0.0.5/0"'], "redis_url", NO_PASSWORD),
        (['redis_url = "redis://10.0.0.5/0?password=hunter2-redis"'], "redis_url", NO_PASSWORD),
        (['redis_url = "http://10.0.0.5:6379/0"'], "redis_url", SCHEMES),
        (['redis_url = "redis:10.0.0.5"'], "redis_url", SCHEMES),
        (["redis_url = 6379"], "redis_url", f"must be a string {URL_EXAMPLE}"),
        (['redis_url = "redis://10.0.0.5 /0"'], "redis_url", "must not contain spaces or invisible characters"),
        (['redis_url = "redis:///0"'], "redis_url", f"must name a valid host, {URL_EXAMPLE}"),
        (['redis_url = "redis://-cache-/0"'], "redis_url", f"must name a valid host, {URL_EXAMPLE}"),
        (['redis_url = "redis://10.0.0.5:0/0"'], "redis_url", "port must be from 1 to 65535"),
        (['redis_url = "redis://10.0.0.5:70000/0"'], "redis_url", "is not a valid URL: Port out of range 0-65535"),
        (
            ['redis_url = "redis://10.0.0.5/cache"'],
            "redis_url",
            "its path must be a database number such as /0, got '/cache'",
        ),
        (
            ['redis_url = "unix://"'],
            "redis_url",
            'must name the socket\'s absolute path, such as "unix:///run/redis/redis.sock"',
        ),
        (['redis_url = "redis://r"', 'replica_id = "web 1"'], "replica_id", "must be 1-128 letters"),
        (['redis_url = "redis://r"', 'replica_id = ""'], "replica_id", "must be 1-128 letters"),
        (['redis_url = "redis://r"', "replica_id = 7"], "replica_id", "must be 1-128 letters"),
        (['redis_url = "redis://r"', "lease_seconds = 0"], "lease_seconds", f"{LEASE} 0"),
        (['redis_url = "redis://r"', "lease_seconds = -1.5"], "lease_seconds", f"{LEASE} -1.5"),
        (['redis_url = "redis://r"', "lease_seconds = 0.5"], "lease_seconds", f"{LEASE} 0.5"),
        (['redis_url = "redis://r"', "lease_seconds = 61"], "lease_seconds", f"{LEASE} 61"),
        (['redis_url = "redis://r"', 'lease_seconds = "5"'], "lease_seconds", f"{LEASE} '5'"),
        (['redis_url = "redis://r"', "lease_seconds = true"], "lease_seconds", f"{LEASE} True"),
        (['redis_url = "redis://r"', "lease_seconds = nan"], "lease_seconds", f"{LEASE} nan"),
        (
            ['redis_url = "redis://r"', 'password_env = "redis password"'],
            "password_env",
            'must be the name of an environment variable, such as "CAMERA_PASSWORD"',
        ),
        (
            ['redis_url = "redis://r"', 'password_env = "UNSET_PASSWORD"'],
            "password_env",
            "environment variable UNSET_PASSWORD is not set",
        ),
        (
            ['redis_url = "redis://r"', 'password_env = "BLANK"'],
            "password_env",
            "environment variable BLANK holds only blanks or invisible characters",
        ),
        (
            ['redis_url = "redis://r"', 'password = "hunter2-redis"'],
            "password",
            "unknown key (known: lease_seconds, password_env, redis_url, replica_id)",
        ),
    ],
)
def test_each_bad_value_is_one_line_naming_file_table_and_key(tmp_path: Path, lines, key, problem):
    message = load_error(tmp_path, cluster_toml(*lines), environ={**ENV, "BLANK": "  "})
    assert message.startswith(f"{tmp_path / 'proxy.toml'}: [cluster]: field '{key}': {problem}"), message
    assert SECRET not in message


def test_cluster_must_be_a_table(tmp_path: Path):
    message = load_error(tmp_path, 'cluster = "redis://10.0.0.5"\n' + DEMO)
    assert message == f"{tmp_path / 'proxy.toml'}: 'cluster' must be a table, written [cluster]"


def test_an_unknown_table_lists_cluster_among_the_expected(tmp_path: Path):
    assert "[server], [cluster]" in load_error(tmp_path, "[clustr]\nredis_url = 'redis://r'\n" + DEMO)


def test_the_password_is_kept_out_of_repr_and_of_errors(tmp_path: Path):
    text = cluster_toml('redis_url = "redis://10.0.0.5/0"', 'password_env = "REDIS_PASSWORD"')
    config = load_config(write(tmp_path, text), environ=ENV)
    assert config.cluster is not None and config.cluster.password == SECRET
    assert SECRET not in repr(config) and SECRET not in repr(config.cluster)
    broken = cluster_toml('redis_url = "redis://10.0.0.5/0"', 'password_env = "REDIS_PASSWORD"', "lease_seconds = 0")
    assert SECRET not in load_error(tmp_path, broken, environ=ENV)


async def test_the_parsed_url_and_password_reach_a_redis_with_a_password(tmp_path: Path):
    server = RedisServer(need_binary("redis-server"), tmp_path / "redis", password=SECRET)
    await server.start()
    try:
        text = cluster_toml(f'redis_url = "{server.url}"', 'password_env = "REDIS_PASSWORD"')
        cluster = load_config(write(tmp_path, text), environ=ENV).cluster
        assert cluster is not None
        async with redis.from_url(cluster.redis_url, password=cluster.password) as client:
            assert await client.ping() is True
    finally:
        await server.stop()


# --- reloads -------------------------------------------------------------------------

A = ClusterConfig("redis://10.0.0.5:6379/0", password=SECRET)


def config_with(cluster: ClusterConfig | None, **server: object) -> Config:
    return Config(server=ServerConfig(**server), cameras=default_config().cameras, cluster=cluster)


@pytest.mark.parametrize(
    ("old", "new", "logged"),
    [
        (A, ClusterConfig("redis://10.0.0.6:6379/0", password=SECRET), "redis_url: 'redis://10.0.0.5:6379/0' ->"),
        (A, ClusterConfig(A.redis_url, password="other-secret", lease_seconds=10.0), "lease_seconds: 5.0 -> 10.0"),
        (A, ClusterConfig(A.redis_url, password="other-secret"), "[cluster] password: changed needs a restart"),
        (None, A, "[cluster] table added needs a restart"),
        (A, None, "[cluster] table removed needs a restart"),
    ],
)
def test_a_reload_that_changes_cluster_keeps_the_old_one_and_says_it_needs_a_restart(caplog, old, new, logged):
    live = LiveConfig(config_with(old))
    with caplog.at_level(logging.WARNING):
        applied, pending = live.apply(config_with(new, max_viewers=10))
    assert live.cluster == old and live.current.cluster == old
    assert live.server.max_viewers == 10 and applied == ["max_viewers: 5000 -> 10"] and pending == []
    assert logged in caplog.text and "needs a restart to take effect" in caplog.text
    assert SECRET not in caplog.text and "other-secret" not in caplog.text


def test_a_reload_with_the_same_cluster_says_nothing_of_it(caplog):
    live = LiveConfig(config_with(A))
    with caplog.at_level(logging.WARNING):
        live.apply(config_with(ClusterConfig(A.redis_url, password=SECRET)))
    assert live.cluster == A and "[cluster]" not in caplog.text


async def test_sighup_with_a_changed_cluster_logs_that_it_needs_a_restart(tmp_path: Path):
    path = tmp_path / "proxy.toml"
    path.write_text(cluster_toml('redis_url = "redis://127.0.0.1:1/0"'), encoding="utf-8")
    async with proxy_process(tmp_path, "--config", str(path)) as proxy:
        path.write_text(cluster_toml('redis_url = "redis://127.0.0.1:1/0"', "lease_seconds = 9"), encoding="utf-8")
        proxy.process.send_signal(signal.SIGHUP)
        await eventually(lambda: "configuration reloaded" in proxy.stderr())
        assert "[cluster] lease_seconds: 5.0 -> 9.0 needs a restart to take effect" in proxy.stderr()
        async with MjpegViewer(f"{proxy.base}/cameras/demo/stream.mjpg") as viewer:
            await viewer.new_parts(1)  # still serving
