"""Every admission limit refuses past its bound, says when to retry, frees its place when a
viewer leaves, and is counted in ``/metrics`` by reason."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mjpeg_proxy.config import LOOPBACK
from mjpeg_proxy.config.loader import parse_config
from tests.helpers import LOCALHOST, eventually, push_camera
from tests.processes import http_get, proxy_process


class Streams:
    """Stream requests from one test client, kept open until closed or the block ends;
    ``local_address`` is the loopback address the client connects from."""

    def __init__(self, proxy, local_address: str = "127.0.0.1") -> None:
        self.proxy = proxy
        self.local_address = local_address

    async def __aenter__(self) -> Streams:
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(self.local_address, 0)))
        self.open: list[aiohttp.ClientResponse] = []
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for response in self.open:
            response.close()
        await self.session.close()

    async def get(self, camera_id: str, forwarded_for: str | None = None) -> aiohttp.ClientResponse:
        """Open a stream; a refused one is read to its end (its JSON stays readable)."""
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        response = await self.session.get(self.proxy.url(f"/cameras/{camera_id}/stream.mjpg"), headers=headers)
        if response.status == 200:
            self.open.append(response)
        else:
            await response.read()
        return response

    async def accepted(self, camera_id: str, forwarded_for: str | None = None) -> aiohttp.ClientResponse:
        response = await self.get(camera_id, forwarded_for)
        assert response.status == 200, (camera_id, forwarded_for, response.status)
        return response

    def close(self, response: aiohttp.ClientResponse) -> None:
        self.open.remove(response)
        response.close()


async def assert_refused(response: aiohttp.ClientResponse, status: int, *in_message: str) -> None:
    assert response.status == status
    assert int(response.headers["Retry-After"]) > 0
    body = await response.json()
    assert body["status"] == status
    for text in in_message:
        assert text in body["message"], body


async def refusals(proxy) -> dict[str, float]:
    """``mjpeg_proxy_refused_requests_total`` by reason, as scraped from /metrics."""
    async with aiohttp.ClientSession() as session, session.get(proxy.url("/metrics")) as response:
        assert response.status == 200
        text = await response.text()
    return parse_refusals(text)


def parse_refusals(text: str) -> dict[str, float]:
    return {
        sample.labels["reason"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "mjpeg_proxy_refused_requests"
        for sample in family.samples
    }


async def wait_viewers(proxy, camera_id: str, count: int) -> None:
    await eventually(lambda: proxy.camera(camera_id).hub.viewers == count, 5)


async def test_max_viewers_per_camera(start_proxy):
    proxy = await start_proxy(push_camera("cam"), push_camera("other"), max_viewers_per_camera=2)
    async with Streams(proxy) as streams:
        first = await streams.accepted("cam")
        await streams.accepted("cam")
        await wait_viewers(proxy, "cam", 2)

        await assert_refused(await streams.get("cam"), 503, "'cam'")
        assert proxy.camera("cam").hub.viewers == 2  # the refused one never became a viewer
        await streams.accepted("other")  # another camera still serves

        streams.close(first)
        await wait_viewers(proxy, "cam", 1)
        await streams.accepted("cam")  # the freed place is taken again
        await wait_viewers(proxy, "cam", 2)
        await assert_refused(await streams.get("cam"), 503)

        counted = await refusals(proxy)
    assert counted == {"camera_full": 2, "server_full": 0, "client_limit": 0, "bad_request": 0, "operator_only": 0}


async def test_max_viewers_per_camera_holds_for_a_burst_of_simultaneous_viewers(start_proxy):
    proxy = await start_proxy(push_camera("cam"), max_viewers_per_camera=2)
    async with Streams(proxy) as streams:
        responses = await asyncio.gather(*(streams.get("cam") for _ in range(6)))
        assert sorted(response.status for response in responses) == [200, 200, 503, 503, 503, 503]
        await wait_viewers(proxy, "cam", 2)
        assert (await refusals(proxy))["camera_full"] == 4


async def test_max_viewers_across_cameras(start_proxy):
    proxy = await start_proxy(push_camera("a"), push_camera("b"), max_viewers=2)
    async with Streams(proxy) as streams:
        first = await streams.accepted("a")
        await streams.accepted("b")
        await wait_viewers(proxy, "a", 1)
        await wait_viewers(proxy, "b", 1)

        await assert_refused(await streams.get("a"), 503, "2 viewers")
        await assert_refused(await streams.get("b"), 503)
        assert (proxy.camera("a").hub.viewers, proxy.camera("b").hub.viewers) == (1, 1)

        streams.close(first)
        await wait_viewers(proxy, "a", 0)
        await streams.accepted("b")  # the server-wide place is free for any camera

        counted = await refusals(proxy)
    assert counted == {"camera_full": 0, "server_full": 2, "client_limit": 0, "bad_request": 0, "operator_only": 0}


async def test_max_connections_per_client(start_proxy):
    proxy = await start_proxy(push_camera("cam"), push_camera("other"), max_connections_per_client=2)
    async with Streams(proxy) as streams:
        first = await streams.accepted("cam")
        second = await streams.accepted("other")
        await wait_viewers(proxy, "cam", 1)
        await wait_viewers(proxy, "other", 1)
        await assert_refused(await streams.get("cam"), 429)
        await assert_refused(await streams.get("other"), 429)

        streams.close(first)
        streams.close(second)
        await wait_viewers(proxy, "cam", 0)
        await wait_viewers(proxy, "other", 0)
        # Refused requests took no place: both places are free again.
        await streams.accepted("cam")
        await streams.accepted("cam")
        await assert_refused(await streams.get("other"), 429)
        await wait_viewers(proxy, "cam", 2)

    await wait_viewers(proxy, "cam", 0)
    counted = await refusals(proxy)
    assert counted == {"camera_full": 0, "server_full": 0, "client_limit": 3, "bad_request": 0, "operator_only": 0}


async def test_monitoring_gets_through_a_client_at_its_limit(start_proxy):
    proxy = await start_proxy(push_camera("cam"), max_connections_per_client=1)
    async with Streams(proxy) as streams, aiohttp.ClientSession() as session:
        await streams.accepted("cam")
        await wait_viewers(proxy, "cam", 1)
        await assert_refused(await streams.get("cam"), 429)
        for path in ("/healthz", "/metrics"):
            async with session.get(proxy.url(path)) as response:
                assert response.status == 200, path
        async with session.get(proxy.url("/api/cameras")) as response:
            assert response.status == 429, "only monitoring is exempt"


async def test_trusted_proxy_counts_each_forwarded_client_separately(start_proxy):
    proxy = await start_proxy(push_camera("cam"), max_connections_per_client=2, trusted_proxies=LOCALHOST)
    async with Streams(proxy) as streams:
        for client in ("10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.2"):
            await streams.accepted("cam", forwarded_for=client)
        await wait_viewers(proxy, "cam", 4)

        await assert_refused(await streams.get("cam", forwarded_for="10.0.0.1"), 429)
        # A forged hop left of the one our proxy appended does not make a new client, and
        # a trusted proxy's own address on the right is skipped.
        await assert_refused(await streams.get("cam", forwarded_for="203.0.113.9, 10.0.0.1"), 429)
        await assert_refused(await streams.get("cam", forwarded_for="10.0.0.2, 127.0.0.1"), 429)
        await streams.accepted("cam", forwarded_for="10.0.0.3")
        # The proxy's own requests (no header) are a client of their own, with no streams.
        counted = await refusals(proxy)
    assert counted["client_limit"] == 3


async def test_a_reverse_proxy_on_this_machine_is_trusted_by_default(start_proxy, caplog):
    # The README's nginx recipe without trusted_proxies: nginx connects from 127.0.0.1.
    proxy = await start_proxy(push_camera("cam"), max_connections_per_client=2)
    async with Streams(proxy) as streams:
        for client in ("10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.2", "10.0.0.3"):
            await streams.accepted("cam", forwarded_for=client)
        await wait_viewers(proxy, "cam", 5)
        await assert_refused(await streams.get("cam", forwarded_for="10.0.0.1"), 429)
    assert (await refusals(proxy))["client_limit"] == 1
    # A real client at its limit behind a trusted proxy is no configuration mistake.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


async def test_empty_trusted_proxies_trusts_nobody(start_proxy):
    proxy = await start_proxy(push_camera("cam"), max_connections_per_client=2, trusted_proxies=())
    async with Streams(proxy) as streams:
        await streams.accepted("cam", forwarded_for="10.0.0.1")
        await streams.accepted("cam", forwarded_for="10.0.0.2")
        # All three come from 127.0.0.1, whatever the header says.
        await assert_refused(await streams.get("cam", forwarded_for="10.0.0.3"), 429)
        await wait_viewers(proxy, "cam", 2)
    await wait_viewers(proxy, "cam", 0)
    assert (await refusals(proxy))["client_limit"] == 1


def test_trusted_proxies_default_to_loopback_and_an_empty_list_is_kept():
    def trusted(server_toml: str) -> list[str]:
        config = parse_config({"server": server_toml, "cameras": [{"id": "demo", "source": "demo"}]}, "p.toml", {})
        return [str(network) for network in config.server.trusted_proxies]

    assert trusted({}) == ["127.0.0.0/8", "::1/128"] == [str(network) for network in LOOPBACK]
    assert trusted({"trusted_proxies": []}) == []
    assert trusted({"trusted_proxies": ["10.0.0.5"]}) == ["10.0.0.5/32"]


async def test_forwarded_hops_with_ports_or_ipv4_mapped_count_as_their_address(start_proxy):
    # Azure Application Gateway and IIS ARR write the client's port into the hop.
    proxy = await start_proxy(push_camera("cam"), max_connections_per_client=2, trusted_proxies=LOCALHOST)
    async with Streams(proxy) as streams:
        await streams.accepted("cam", forwarded_for="10.0.0.1:4711")
        await streams.accepted("cam", forwarded_for="::ffff:10.0.0.1")
        await assert_refused(await streams.get("cam", forwarded_for="10.0.0.1"), 429)
        await streams.accepted("cam", forwarded_for="[2001:db8::1]:443")
        await streams.accepted("cam", forwarded_for="2001:db8::1")
        await assert_refused(await streams.get("cam", forwarded_for="[2001:DB8:0::1]"), 429)
        await streams.accepted("cam", forwarded_for="10.0.0.2:4711")
    assert (await refusals(proxy))["client_limit"] == 2


async def test_a_refusal_behind_an_untrusted_proxy_says_once_which_setting_to_change(start_proxy, caplog):
    caplog.set_level(logging.WARNING, logger="mjpeg_proxy")
    # A reverse proxy at 127.0.0.2 that the configuration does not trust.
    proxy = await start_proxy(push_camera("cam"), max_connections_per_client=1, trusted_proxies=LOCALHOST)
    async with Streams(proxy, local_address="127.0.0.2") as streams:
        await streams.accepted("cam", forwarded_for="10.0.0.1")
        await wait_viewers(proxy, "cam", 1)
        # A client at its limit without a proxy in between: nothing to hint at.
        await assert_refused(await streams.get("cam"), 429)
        assert not caplog.records, caplog.text
        for client in ("10.0.0.2", "10.0.0.3", "10.0.0.4"):
            await assert_refused(await streams.get("cam", forwarded_for=client), 429)
    hints = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(hints) == 1, caplog.text
    message = hints[0].getMessage()
    assert "127.0.0.2" in message and "X-Forwarded-For" in message and "trusted_proxies" in message, message


async def test_a_refusal_from_a_trusted_proxy_without_forwarded_for_says_once_to_send_it(start_proxy, caplog):
    caplog.set_level(logging.WARNING, logger="mjpeg_proxy")
    # nginx with proxy_pass alone sends no X-Forwarded-For: its clients all look like 127.0.0.1.
    proxy = await start_proxy(push_camera("cam"), max_connections_per_client=1)
    async with Streams(proxy) as streams:
        await streams.accepted("cam")
        await wait_viewers(proxy, "cam", 1)
        for _ in range(3):
            await assert_refused(await streams.get("cam"), 429)
    hints = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(hints) == 1, caplog.text
    assert "127.0.0.1" in hints[0] and "proxy_set_header X-Forwarded-For" in hints[0], hints[0]


async def test_forwarded_for_is_ignored_from_an_untrusted_peer(start_proxy):
    proxy = await start_proxy(
        push_camera("cam"),
        max_connections_per_client=2,
        trusted_proxies=(ipaddress.ip_network("10.9.0.0/16"),),
    )
    async with Streams(proxy) as streams:
        await streams.accepted("cam", forwarded_for="10.0.0.1")
        await streams.accepted("cam", forwarded_for="10.0.0.2")
        await assert_refused(await streams.get("cam", forwarded_for="10.0.0.3"), 429)


# --- limits applied by run_app: a real process ---------------------------------------------


def raw_exchange(port: int, request: bytes, timeout_s: float = 5.0) -> bytes:
    """Send ``request`` on a new connection; return the answer's first bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(request)
        return sock.recv(4096)


def closed_by_server_after(sock: socket.socket, timeout_s: float) -> tuple[float, bytes]:
    """Seconds until the server closes ``sock`` (recv returns b""), and what it sent until
    then; fails after ``timeout_s``."""
    sock.settimeout(timeout_s)
    start = time.monotonic()
    received = b""
    try:
        while data := sock.recv(4096):
            received += data
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for {timeout_s} s")
    except ConnectionResetError:
        pass
    return time.monotonic() - start, received


@pytest.fixture
async def limited_server(tmp_path) -> AsyncIterator[int]:
    """``python -m mjpeg_proxy`` with max_header_bytes = 1024 and request_timeout = 1; its port."""
    config = tmp_path / "proxy.toml"
    config.write_text(
        '[server]\nmax_header_bytes = 1024\nrequest_timeout = 1\n\n[[cameras]]\nid = "demo"\nsource = "demo"\n',
        encoding="utf-8",
    )
    async with proxy_process(tmp_path, "--config", str(config), entry=("-m", "mjpeg_proxy")) as proxy:
        yield proxy.port


def test_max_header_bytes_and_request_timeout_in_a_real_process(limited_server):
    port = limited_server
    assert http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200

    # A header field just under the limit passes; one over it is refused, as is a long request line.
    fits = raw_exchange(port, b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Pad: " + b"a" * 900 + b"\r\n\r\n")
    assert fits.startswith(b"HTTP/1.1 200 "), fits
    bad_requests = 0
    for request in (
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Pad: " + b"a" * 2000 + b"\r\n\r\n",
        b"GET /healthz?pad=" + b"a" * 2000 + b" HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /cameras/demo/stream.mjpg?fps=fast HTTP/1.1\r\nHost: t\r\n\r\n",  # a bad query: 400 too
    ):
        answer = raw_exchange(port, request)
        assert answer.split(b"\r\n", 1)[0].split(b" ")[1] == b"400", answer[:100]
        bad_requests += 1

    # A request head that never completes is closed after request_timeout (1 s).
    with socket.create_connection(("127.0.0.1", port), timeout=5) as slow:
        slow.sendall(b"GET / HTTP/1.1\r\n")
        elapsed, answer = closed_by_server_after(slow, 5)
        assert 0.5 <= elapsed < 4
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer[:100]  # never a 200

    # A client trickling header lines, each well within the timeout, is closed all the same.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as trickle:
        trickle.sendall(b"GET / HTTP/1.1\r\n")
        trickle.settimeout(0.2)
        start = time.monotonic()
        closed = False
        while not closed and time.monotonic() - start < 5:
            try:
                closed = trickle.recv(4096) == b""
            except TimeoutError:
                try:
                    trickle.sendall(b"X-Slow: 1\r\n")  # the pace: one line per 0.2 s recv timeout
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
            except ConnectionResetError:
                closed = True
        assert closed, "a trickling request head was kept open"
        assert time.monotonic() - start < 4

    # A keep-alive connection idle after its answer is closed after request_timeout too.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as idle:
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        elapsed, answer = closed_by_server_after(idle, 5)
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:100]
        assert 0.5 <= elapsed < 4

    # A stream is not a slow request: it outlives request_timeout.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as viewer:
        viewer.sendall(b"GET /cameras/demo/stream.mjpg HTTP/1.0\r\n\r\n")
        start = time.monotonic()
        assert viewer.recv(65536).startswith(b"HTTP/1.0 200 ")
        while time.monotonic() - start < 2.5:  # the demo camera sends 5 frames a second
            assert viewer.recv(65536), f"the stream ended after {time.monotonic() - start:.1f} s"

    counted = parse_refusals(http_get(f"http://127.0.0.1:{port}/metrics")[1].decode())
    assert counted["bad_request"] == bad_requests
    assert counted["client_limit"] == counted["camera_full"] == counted["server_full"] == 0
