"""The registry of upstream hosts: places for short requests, spaced start-ups, shared
credentials; and its ``[server]`` key."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from mjpeg_proxy.config import ServerConfig
from mjpeg_proxy.config.loader import load_config
from mjpeg_proxy.sources.upstream_hosts import RAISE_AFTER_SUCCESSES, START_GAP_S, Places, UpstreamHosts
from tests.helpers import DEMO, assert_names, load_error, write

# --- hosts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("http://nvr.lan/cam/1/video.mjpg", "http://nvr.lan/cam/2/snapshot.jpg?channel=2"),
        ("http://nvr.lan/x", "http://nvr.lan:80/y"),
        ("http://NVR.lan/x", "http://nvr.lan/y"),
        ("https://nvr.lan/x", "https://nvr.lan:443/y"),
    ],
)
async def test_urls_of_one_scheme_host_and_port_share_a_host(a, b):
    hosts = UpstreamHosts(4)
    assert hosts.host(a) is hosts.host(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("http://nvr.lan/x", "https://nvr.lan/x"),
        ("http://nvr.lan/x", "http://nvr.lan:8080/x"),
        ("http://nvr.lan/x", "http://nvr2.lan/x"),
    ],
)
async def test_another_scheme_host_or_port_is_another_host(a, b):
    hosts = UpstreamHosts(4)
    assert hosts.host(a) is not hosts.host(b)


def test_a_cap_below_one_is_refused():
    with pytest.raises(ValueError, match="max_requests_per_host"):
        UpstreamHosts(0)


async def test_a_request_over_the_cap_waits_for_a_place_and_gets_the_first_one_freed():
    host = UpstreamHosts(2).host("http://nvr.lan/")
    first, second, third = host.place(), host.place(), host.place()
    await first.__aenter__()
    await second.__aenter__()
    waiting = asyncio.create_task(third.__aenter__())
    await asyncio.sleep(0)  # let it try
    assert not waiting.done()

    first.release()  # an MJPEG stream's first part is in: its place is free, the stream goes on
    await asyncio.wait_for(waiting, 5)

    await second.__aexit__(None, None, None)
    await third.__aexit__(None, None, None)
    first.release()  # again: nothing more is freed
    async with host.place(), host.place():
        pass  # exactly two places, both free


@pytest.mark.parametrize("rand", [0.0, 0.999])
async def test_start_ups_on_one_host_are_spaced_by_a_jittered_gap(rand):
    host = UpstreamHosts(4, rand=lambda: rand).host("http://nvr.lan/")
    loop = asyncio.get_running_loop()

    async def start() -> float:
        await host.turn()
        return loop.time()

    called = loop.time()
    times = sorted(await asyncio.gather(*(start() for _ in range(5))))

    # The k-th start-up comes no sooner than k gaps after they all asked at once
    # (less a microsecond: asyncio may run a timer up to its clock's resolution early).
    gap = START_GAP_S * (1 + rand) / 2
    assert all(at - called >= k * gap - 1e-6 for k, at in enumerate(times))


async def test_start_ups_on_different_hosts_do_not_wait_for_each_other():
    hosts = UpstreamHosts(4, rand=lambda: 0.999)
    loop = asyncio.get_running_loop()
    before = loop.time()

    for n in range(20):
        await hosts.host(f"http://nvr{n}.lan/").turn()

    # Twenty start-ups on one host would take at least 19 gaps.
    assert loop.time() - before < 19 * START_GAP_S / 2


# --- credentials ---------------------------------------------------------------------------


async def test_credentials_work_for_another_camera_while_it_holds_an_accepted_answer_and_after():
    host = UpstreamHosts(4).host("http://nvr.lan/")
    streaming, refused = object(), object()
    credentials = host.credentials("admin", "secret")

    assert not await credentials.working_for_another(refused)
    with credentials.accepted(streaming):
        assert await credentials.working_for_another(refused)
        assert not await credentials.working_for_another(streaming), "a camera's own success does not count"
    assert await credentials.working_for_another(refused), "recently accepted"


async def test_other_credentials_or_another_host_do_not_count():
    hosts = UpstreamHosts(4)
    nvr = hosts.host("http://nvr.lan/")
    working, refused = object(), object()
    with nvr.credentials("admin", "secret").accepted(working):
        assert not await nvr.credentials("admin", "Secret").working_for_another(refused)
        assert not await nvr.credentials("Admin", "secret").working_for_another(refused)
        assert not await nvr.credentials(None, None).working_for_another(refused)
        assert not await hosts.host("http://nvr.lan:8080/").credentials("admin", "secret").working_for_another(refused)
        assert await nvr.credentials("admin", "secret").working_for_another(refused)


async def test_the_registry_holds_no_copy_of_a_password():
    hosts = UpstreamHosts(4)
    hosts.host("http://nvr.lan/").credentials("admin", "hunter2-PASSWORD")

    assert "hunter2-PASSWORD" not in repr(hosts.host("http://nvr.lan/").__dict__)


# --- the [server] key ----------------------------------------------------------------------


def test_max_upstream_requests_per_host_parses_and_defaults_to_4(tmp_path):
    config = load_config(write(tmp_path, "[server]\nmax_upstream_requests_per_host = 2\n" + DEMO), environ={})

    assert config.server.max_upstream_requests_per_host == 2
    assert ServerConfig().max_upstream_requests_per_host == 4


@pytest.mark.parametrize("value", ["0", "1001", "2.5", '"4"', "-1"])
def test_bad_max_upstream_requests_per_host_is_one_line_naming_the_field(tmp_path, value):
    message = load_error(tmp_path, f"[server]\nmax_upstream_requests_per_host = {value}\n" + DEMO)

    assert_names(message, "[server]", "max_upstream_requests_per_host")
    assert "integer from 1 to 1000" in message


async def test_a_401_waits_for_the_answers_of_requests_in_flight_with_the_same_credentials():
    credentials = UpstreamHosts(4).host("http://nvr.lan/").credentials("admin", "secret")
    first, late = object(), object()
    with credentials.asking(first) as answered:
        verdict = asyncio.create_task(credentials.working_for_another(late))
        await asyncio.sleep(0)
        assert not verdict.done(), "another request is still in flight"
        answered()
        with credentials.accepted(first):  # its answer accepts the credentials
            assert await verdict

    with credentials.asking(first) as answered:
        verdict = asyncio.create_task(credentials.working_for_another(object()))
        await asyncio.sleep(0)
        answered()  # answered, and not accepted
    assert await verdict is True  # still true: first was accepted a moment ago (CREDENTIALS_TRUSTED_S)
    refused = UpstreamHosts(4).host("http://nvr.lan/").credentials("admin", "wrong")
    with refused.asking(first) as answered:
        verdict = asyncio.create_task(refused.working_for_another(late))
        await asyncio.sleep(0)
        answered()
    assert await verdict is False


async def test_a_busy_refusal_lowers_the_hosts_cap_below_what_was_in_progress_and_successes_raise_it():
    places = Places(4)
    taken = [await places.acquire() for _ in range(3)]
    assert taken == [1, 2, 3] and places.limit == 4
    places.busy(3)  # the device refused the third: it allows 2 at once
    assert places.limit == 2
    waiting = asyncio.create_task(places.acquire())
    await asyncio.sleep(0)
    assert not waiting.done(), "3 taken, 2 allowed: it waits its turn"
    places.release()
    places.release()
    assert await waiting == 2  # handed over first come, first served, within the new limit
    places.busy(1)
    assert places.limit == 2, "a request refused while alone says nothing of start-ups (the streams are full)"
    for _ in range(RAISE_AFTER_SUCCESSES):
        places.succeeded()
    assert places.limit == 3, "the device accepting requests again raises the cap, one at a time"
    for _ in range(10 * RAISE_AFTER_SUCCESSES):
        places.succeeded()
    assert places.limit == 4, "up to the configured cap, never over"


async def test_a_wait_for_a_place_that_is_cancelled_leaves_no_place_taken():
    places = Places(1)
    await places.acquire()
    waiting = asyncio.create_task(places.acquire())
    await asyncio.sleep(0)
    waiting.cancel()
    places.release()  # handed to the waiter as it is cancelled, or not at all
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    assert places.taken == 0
    assert await places.acquire() == 1


async def test_a_401_whose_verdict_cannot_be_told_is_no_refusal():
    # The login in flight with the same password was cut short (its viewer left): nothing
    # says the password is wrong, so the 401 is not taken for a refusal.
    credentials = UpstreamHosts(4).host("http://nvr.lan/").credentials("admin", "secret")
    first, late = object(), object()
    with contextlib.suppress(asyncio.CancelledError), credentials.asking(first):
        verdict = asyncio.create_task(credentials.working_for_another(late))
        await asyncio.sleep(0)
        raise asyncio.CancelledError  # the request ends without an answer
    assert await verdict is None
