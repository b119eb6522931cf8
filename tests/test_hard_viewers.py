"""Real clients and hard viewers: viewers that vanish, crawl or stall, per-viewer rate
caps, and streams that end on purpose.

The slow-viewer tests use a 15 fps camera of ~200 KB frames (real frames padded with
JPEG comment segments), so a viewer that does not read falls behind within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import json
import logging
import socket
import struct
import tracemalloc
from collections.abc import AsyncIterator, Sequence

import aiohttp
import pytest

from tests.helpers import (
    BIG_FRAME_BYTES,
    Proxy,
    StrictMjpegReader,
    big_frames,
    boundary_of,
    eventually,
    push_camera,
    real_frames,
    run_camera,
)
from tests.raw_viewers import STREAM, RawViewer, raw_viewers

FRAMES = real_frames()


# --- frames and a paced camera ------------------------------------------------------------


def index_of(frames: Sequence[bytes]) -> dict[bytes, int]:
    return {jpeg: index for index, jpeg in enumerate(frames)}


def test_padded_frames_are_whole_jpegs_of_about_200_kb():
    from PIL import Image

    last = len(big_frames()) - 1
    for jpeg, original in ((big_frames()[0], FRAMES[0]), (big_frames()[last], FRAMES[last % len(FRAMES)])):
        assert BIG_FRAME_BYTES - 4 <= len(jpeg) <= BIG_FRAME_BYTES
        with Image.open(io.BytesIO(jpeg)) as picture, Image.open(io.BytesIO(original)) as reference:
            assert picture.size == reference.size
            assert picture.tobytes() == reference.tobytes()  # comments change no pixel


# --- raw-socket viewers ------------------------------------------------------------------


@contextlib.asynccontextmanager
async def http_viewer(proxy: Proxy, path: str = STREAM) -> AsyncIterator[StrictMjpegReader]:
    """A viewer over aiohttp's client (HTTP/1.1), reading parts as fast as they come."""
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url(path)) as response:
            assert response.status == 200
            yield StrictMjpegReader(response.content, boundary_of(response.headers["Content-Type"]))


# --- 1. vanishing viewers ------------------------------------------------------------------


def log_problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Records with a traceback, and warnings or worse from the server's own loggers."""
    return [
        f"{record.name} {record.levelname}: {record.getMessage()}"
        for record in caplog.records
        if record.exc_info
        or record.exc_text
        or record.stack_info
        or (record.levelno >= logging.WARNING and record.name.split(".")[0] in ("mjpeg_proxy", "aiohttp", "asyncio"))
    ]


async def assert_nothing_left(proxy: Proxy, tasks_before: int, caplog: pytest.LogCaptureFixture) -> None:
    """No viewer counted, no connection open, no task left over, and a clean log."""
    hub = proxy.camera("cam").hub
    await eventually(lambda: hub.viewers == 0, 5)
    try:
        await eventually(lambda: not proxy.server.runner.server.connections, 5)
    except TimeoutError:
        pytest.fail(f"connections still open: {proxy.server.runner.server.connections}")
    try:
        await eventually(lambda: len(asyncio.all_tasks()) == tasks_before, 5)
    except TimeoutError:
        pytest.fail(f"{len(asyncio.all_tasks())} tasks, {tasks_before} before: {asyncio.all_tasks()}")
    assert log_problems(caplog) == []


async def test_viewer_killed_right_after_the_first_part_leaves_nothing_behind(start_proxy, caplog):
    caplog.set_level(logging.DEBUG)
    proxy = await start_proxy(push_camera(), resend_seconds=60)
    hub = proxy.camera("cam").hub
    frames = big_frames()
    await proxy.publish("cam", frames[0])
    tasks_before = len(asyncio.all_tasks())

    for round_ in range(3):  # bounded; each round kills a viewer mid-stream
        reader, writer = await asyncio.open_connection(proxy.server.host, proxy.server.port)
        writer.write(b"GET /cameras/cam/stream.mjpg HTTP/1.0\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        boundary = boundary_of(head.split(b"Content-Type: ")[1].split(b"\r\n")[0].decode())
        part = await asyncio.wait_for(StrictMjpegReader(reader, boundary).read_part(), 5)
        assert part.jpeg == hub.latest.frame.jpeg
        assert hub.viewers == 1
        # Gone without reading another byte, while the camera keeps sending 200 KB frames.
        writer.transport.abort()
        for jpeg in frames[1 + 3 * round_ : 4 + 3 * round_]:
            await proxy.publish("cam", jpeg)
        await assert_nothing_left(proxy, tasks_before, caplog)


async def test_viewer_that_resets_before_the_response_headers_leaves_nothing_behind(start_proxy, caplog):
    caplog.set_level(logging.DEBUG)
    proxy = await start_proxy(push_camera(), resend_seconds=60)
    await proxy.publish("cam", FRAMES[0])
    tasks_before = len(asyncio.all_tasks())
    loop = asyncio.get_running_loop()

    for _ in range(20):  # bounded; the reset lands at a different point each time
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.setblocking(False)
        await loop.sock_connect(sock, (proxy.server.host, proxy.server.port))
        await loop.sock_sendall(sock, b"GET /cameras/cam/stream.mjpg HTTP/1.1\r\nHost: test\r\n\r\n")
        sock.close()  # linger 0: RST at once, before any response

    # A request on a new connection is answered only after the server accepted all the
    # earlier ones (one listen queue), so the checks below see their aftermath.
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url("/healthz"), headers={"Connection": "close"}) as response:
            assert await response.text() == "ok"
    await assert_nothing_left(proxy, tasks_before, caplog)


async def test_viewer_that_disconnects_while_the_camera_is_idle_leaves_nothing_behind(start_proxy, caplog):
    caplog.set_level(logging.DEBUG)
    proxy = await start_proxy(push_camera(), resend_seconds=60)
    hub = proxy.camera("cam").hub
    await proxy.publish("cam", FRAMES[0])
    tasks_before = len(asyncio.all_tasks())

    reader, writer = await asyncio.open_connection(proxy.server.host, proxy.server.port)
    writer.write(b"GET /cameras/cam/stream.mjpg HTTP/1.0\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    boundary = boundary_of(head.split(b"Content-Type: ")[1].split(b"\r\n")[0].decode())
    assert (await asyncio.wait_for(StrictMjpegReader(reader, boundary).read_part(), 5)).jpeg == FRAMES[0]
    assert hub.viewers == 1
    writer.close()
    await writer.wait_closed()
    # Nothing more is published and nothing is re-sent for 60 s: the server has no write
    # to fail, it must notice the closed connection by itself.
    await assert_nothing_left(proxy, tasks_before, caplog)


async def connect_read_close(proxy: Proxy) -> None:
    reader, writer = await asyncio.open_connection(proxy.server.host, proxy.server.port)
    try:
        writer.write(b"GET /cameras/cam/stream.mjpg HTTP/1.0\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        await asyncio.wait_for(reader.readexactly(1000), 5)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_200_connect_read_close_rounds_leave_no_memory_behind(start_proxy, caplog):
    caplog.set_level(logging.DEBUG)
    proxy = await start_proxy(push_camera(), resend_seconds=60)
    await proxy.publish("cam", FRAMES[0])
    tasks_before = len(asyncio.all_tasks())
    for _ in range(20):  # warm-up: caches and free lists fill before measuring
        await connect_read_close(proxy)
    await assert_nothing_left(proxy, tasks_before, caplog)
    caplog.clear()

    # pytest keeps every log record of the test (for its report); those are not the server's.
    not_the_server = [
        tracemalloc.Filter(False, logging.__file__),
        tracemalloc.Filter(False, "*/_pytest/*"),
        tracemalloc.Filter(False, tracemalloc.__file__),
    ]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot().filter_traces(not_the_server)
        for _ in range(200):
            await connect_read_close(proxy)
        await assert_nothing_left(proxy, tasks_before, caplog)
        caplog.clear()
        gc.collect()
        growth = tracemalloc.take_snapshot().filter_traces(not_the_server).compare_to(before, "lineno")
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in growth)
    assert grown < 1_000_000, f"{grown} bytes more after 200 rounds; largest growth:\n" + "\n".join(
        map(str, growth[:10])
    )
    print(f"memory growth after 200 connect-read-close rounds: {grown} bytes")


# --- 2. slow and stuck viewers ---------------------------------------------------------------


async def test_crawling_and_stuck_viewers_do_not_slow_a_normal_viewer(start_proxy):
    proxy = await start_proxy(push_camera(), resend_seconds=60)
    hub = proxy.camera("cam").hub
    frames = big_frames()[:46]
    index = index_of(frames)
    await proxy.publish("cam", frames[0])
    part_bytes = len(hub.latest.payload.player)
    loop = asyncio.get_running_loop()

    crawler = await RawViewer.connect(proxy, rcvbuf=4096)  # reads 1 byte a second
    stuck = await RawViewer.connect(proxy, rcvbuf=4096)  # never reads
    async with raw_viewers(crawler, stuck), http_viewer(proxy) as normal:
        await eventually(lambda: hub.viewers == 3, 5)
        assert index[(await asyncio.wait_for(normal.read_part(), 5)).jpeg] == 0

        peak = {"crawler": 0, "stuck": 0}

        def sample() -> None:
            for name, viewer in (("crawler", crawler), ("stuck", stuck)):
                peak[name] = max(peak[name], viewer.server_buffered())

        async def crawl() -> None:
            for _ in range(10):
                await crawler.recv(1)
                await asyncio.sleep(1)

        crawling = asyncio.create_task(crawl())
        camera = asyncio.create_task(run_camera(proxy, frames[1:], sample))
        received, arrived_at = [], {}
        try:
            for _ in range(len(frames) - 1):
                part = await asyncio.wait_for(normal.read_part(), 5)
                received.append(index[part.jpeg])
                arrived_at[part.jpeg] = loop.time()
                sample()
            pushed_at = await camera
        finally:
            camera.cancel()
            crawling.cancel()
        lag = [arrived_at[jpeg] - pushed_at[jpeg] for jpeg in arrived_at]
        # Every frame, in order, each soon after the camera sent it: the normal viewer
        # reads faster than 15 fps, so the latest-frame-wins hub never needs to skip one.
        assert received == list(range(1, len(frames)))
        assert max(lag) < 1.0
        # Neither slow viewer was dropped (write_timeout is 30 s) nor costs more than about
        # two parts of server memory.
        assert hub.viewers == 3
        assert crawler.server_side() is not None and stuck.server_side() is not None
        assert peak["crawler"] <= 2 * part_bytes and peak["stuck"] <= 2 * part_bytes
        assert len(crawler.received) >= 2  # it did read, a byte a second
    print(
        f"part {part_bytes} B; normal viewer got {len(received)}/{len(frames) - 1} frames, max lag "
        f"{max(lag) * 1000:.0f} ms; peak server write buffer: crawler {peak['crawler']} B, stuck {peak['stuck']} B"
    )
    await eventually(lambda: hub.viewers == 0, 5)


async def test_write_timeout_closes_a_stuck_viewer_but_not_a_slow_reader(start_proxy, caplog):
    caplog.set_level(logging.DEBUG)
    proxy = await start_proxy(push_camera(), resend_seconds=60, write_timeout=1.0)
    camera = proxy.camera("cam")
    hub = camera.hub
    frames = big_frames()
    index = index_of(frames)
    await proxy.publish("cam", frames[0])
    loop = asyncio.get_running_loop()

    stuck = await RawViewer.connect(proxy, rcvbuf=4096)
    # Slower than the camera (~2.5 of its ~3 MB/s) but steady: every 0.2 s it takes what
    # its socket holds, up to 512 KB. That drains the server's 4 MB socket buffer by the
    # third it must free before the server can write again well within write_timeout.
    slow = await RawViewer.connect(proxy)
    async with raw_viewers(stuck, slow):
        await eventually(lambda: hub.viewers == 2, 5)

        async def read_slowly() -> None:
            for _ in range(60):
                if not await slow.recv(512 * 1024):
                    return
                await asyncio.sleep(0.2)

        reading = asyncio.create_task(read_slowly())
        started = loop.time()
        playing = asyncio.create_task(run_camera(proxy, frames[1:]))
        try:
            await eventually(lambda: camera.stats.viewers_timed_out >= 1, 6)
            closed_after = loop.time() - started
            await eventually(lambda: stuck.server_side() is None, 2)
            # The camera plays on for 2 s or more: time enough for the watchdog to fire on the slow reader too.
            await asyncio.wait_for(playing, 10)
            assert camera.stats.viewers_timed_out == 1
            assert hub.viewers == 1
            assert slow.server_side() is not None
            assert not reading.done()
        finally:
            playing.cancel()
            reading.cancel()

        # The stuck viewer, reading at last, finds its connection closed.
        for _ in range(1000):
            if not await stuck.recv(65536):
                break
        assert stuck.ended in ("eof", "reset")

        parts = await slow.parts()
        seen = [index[part.jpeg] for part in parts]  # KeyError: not a whole pushed frame
        assert seen == sorted(set(seen))
        assert len(seen) < len(frames)  # it was slower than the camera: frames were skipped
    assert log_problems(caplog) == []
    print(
        f"stuck viewer closed {closed_after:.2f} s after the camera started ({stuck.ended}); "
        f"slow reader read {len(slow.received)} B, {len(seen)} of {len(frames)} frames"
    )


async def test_write_timeout_spares_a_viewer_whose_buffer_keeps_shrinking(start_proxy):
    proxy = await start_proxy(push_camera(), resend_seconds=60, write_timeout=1.0)
    camera = proxy.camera("cam")
    frames = big_frames()
    slow = await RawViewer.connect(proxy, rcvbuf=16384)
    async with raw_viewers(slow):
        await eventually(lambda: camera.hub.viewers == 1, 5)
        # A host with small socket send buffers (as a low net.ipv4.tcp_wmem gives), so the
        # server's own write buffer shows every bit of progress the viewer makes.
        server_socket = slow.server_side().transport.get_extra_info("socket")
        server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32768)
        buffered: list[int] = []

        async def read_slowly() -> None:  # ~60 KB/s: a 200 KB part takes ~3 s, in steps of 0.2 s
            for _ in range(30):
                if not await slow.recv(20_000):
                    return
                buffered.append(slow.server_buffered())
                await asyncio.sleep(0.2)

        reading = asyncio.create_task(read_slowly())
        try:
            await run_camera(proxy, frames[:31])  # 2 s
        finally:
            reading.cancel()
        assert (camera.stats.viewers_timed_out, slow.ended) == (0, None), (
            f"server write buffer after each read: {buffered}"
        )
        assert slow.server_side() is not None


async def test_paused_viewer_gets_whole_parts_and_then_the_newest_frame_not_a_backlog(start_proxy):
    proxy = await start_proxy(push_camera(), resend_seconds=60)
    hub = proxy.camera("cam").hub
    frames = big_frames()[:31]
    index = index_of(frames)
    await proxy.publish("cam", frames[0])
    part_bytes = len(hub.latest.payload.player)
    loop = asyncio.get_running_loop()

    paused = await RawViewer.connect(proxy, rcvbuf=4096)
    async with raw_viewers(paused):
        await eventually(lambda: hub.viewers == 1, 5)
        peak = 0

        def sample() -> None:
            nonlocal peak
            peak = max(peak, paused.server_buffered())

        await run_camera(proxy, frames[1:], sample)  # 30 frames while the viewer reads nothing
        newest = hub.latest.payload.player

        resumed = loop.time()
        for _ in range(10_000):  # bounded: 31 parts of 200 KB in chunks of at least 1 KB
            if not await paused.recv(1 << 20) or paused.received.endswith(newest):
                break
        caught_up_after = loop.time() - resumed
        assert paused.received.endswith(newest)

    received = [index[part.jpeg] for part in await paused.parts()]  # KeyError: not a whole frame
    # What the operating system's socket buffers took while the viewer was still
    # "keeping up" arrives in order; then the part the server was writing when the
    # buffers filled; then the newest frame. The frames in between were skipped.
    assert received[-1] == len(frames) - 1
    assert received[:-1] == list(range(len(received) - 1))
    assert len(received) < 30
    assert caught_up_after < 3
    assert peak <= 2 * part_bytes
    print(
        f"paused viewer got {len(received)} parts {received}; newest {caught_up_after * 1000:.0f} ms after "
        f"resuming; peak server write buffer {peak} B (part {part_bytes} B)"
    )


# --- 3. ?fps= ----------------------------------------------------------------------------------


async def test_fps_caps_one_viewer_and_not_the_others(start_proxy):
    proxy = await start_proxy(push_camera(), resend_seconds=60)
    hub = proxy.camera("cam").hub
    frames = big_frames()[:46]
    index = index_of(frames)
    await proxy.publish("cam", frames[0])
    loop = asyncio.get_running_loop()

    async with http_viewer(proxy, STREAM + "?fps=2") as capped, http_viewer(proxy) as full:
        await eventually(lambda: hub.viewers == 2, 5)
        assert index[(await asyncio.wait_for(capped.read_part(), 5)).jpeg] == 0
        assert index[(await asyncio.wait_for(full.read_part(), 5)).jpeg] == 0

        capped_parts: list[tuple[float, int, int]] = []  # (time, frame, newest frame then)

        async def watch_capped() -> None:
            for _ in range(100):
                part = await capped.read_part()
                capped_parts.append((loop.time(), index[part.jpeg], index[hub.latest.frame.jpeg]))

        watching = asyncio.create_task(watch_capped())
        playing = asyncio.create_task(run_camera(proxy, frames[1:]))
        try:
            full_frames = [index[(await asyncio.wait_for(full.read_part(), 5)).jpeg] for _ in frames[1:]]
            await playing
        finally:
            playing.cancel()
            watching.cancel()

    assert full_frames == list(range(1, len(frames)))
    # ~3 s of camera at 2 fps: about 6 parts, each the newest frame when it went out.
    assert 4 <= len(capped_parts) <= 8, capped_parts
    times = [at for at, _, _ in capped_parts]
    assert min(b - a for a, b in zip(times, times[1:], strict=False)) > 0.4
    for _, frame, newest in capped_parts:
        # At most one frame newer may have been published between the server's write and this read.
        assert frame >= newest - 1, capped_parts
    sent = [frame for _, frame, _ in capped_parts]
    assert all(later - earlier >= 3 for earlier, later in zip(sent, sent[1:], strict=False)), sent
    print(f"?fps=2 viewer got frames {sent}; the other got all {len(full_frames)}")


@pytest.mark.parametrize(
    "query", ["fps=0", "fps=abc", "fps=-1", "fps=nan", "fps=inf", "max_seconds=0", "max_seconds=-5"]
)
async def test_bad_stream_parameters_answer_400_with_a_json_error(start_proxy, query):
    proxy = await start_proxy(push_camera(), resend_seconds=60)
    await proxy.publish("cam", FRAMES[0])
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url(f"{STREAM}?{query}")) as response:
            assert response.status == 400
            assert response.content_type == "application/json"
            error = json.loads(await response.read())
    assert error["status"] == 400
    assert f"?{query.split('=')[0]}=" in error["message"]
    range_text = "from 0.01 to 100" if query.startswith("fps") else "from 1 to 31536000"
    assert range_text in error["message"]  # plain numbers, as people write them (not 3.1536e+07)
    assert proxy.camera("cam").hub.viewers == 0


# --- 4. streams that end on purpose -----------------------------------------------------------


def closed_stream_parts(body: bytes, boundary: str) -> list[bytes]:
    """The JPEGs of a whole stream body that must end with the close delimiter and nothing after."""
    delimiter = b"--" + boundary.encode()
    assert body.startswith(delimiter + b"\r\n")
    assert body.endswith(b"\r\n" + delimiter + b"--\r\n"), body[-80:]
    jpegs, at = [], len(delimiter) + 2
    for _ in range(len(body)):  # bounded by the body's size
        head_end = body.index(b"\r\n\r\n", at)
        headers = dict(line.split(": ", 1) for line in body[at:head_end].decode("ascii").split("\r\n"))
        assert headers["Content-Type"] == "image/jpeg"
        start = head_end + 4
        end = start + int(headers["Content-Length"])
        jpegs.append(body[start:end])
        tail = body[end : end + 2 + len(delimiter) + 2]
        if tail == b"\r\n" + delimiter + b"--":
            assert end + len(tail) + 2 == len(body)
            return jpegs
        assert tail == b"\r\n" + delimiter + b"\r\n", tail
        at = end + len(tail)
    raise AssertionError("unreachable")


async def read_whole_raw_stream(proxy: Proxy, path: str) -> tuple[str, bytes, float]:
    """GET ``path`` over HTTP/1.0; return the boundary, the body up to EOF, and how long it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    reader, writer = await asyncio.open_connection(proxy.server.host, proxy.server.port)
    try:
        writer.write(b"GET %s HTTP/1.0\r\n\r\n" % path.encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.0 200 OK\r\n"), head
        boundary = boundary_of(head.split(b"Content-Type: ")[1].split(b"\r\n")[0].decode())
        body = await asyncio.wait_for(reader.read(), 10)  # to EOF: the server closes it
        return boundary, body, loop.time() - started
    finally:
        writer.close()


async def test_max_stream_seconds_ends_each_stream_with_the_close_delimiter(start_proxy, caplog):
    caplog.set_level(logging.DEBUG)
    proxy = await start_proxy(push_camera(), resend_seconds=60, max_stream_seconds=1)
    hub = proxy.camera("cam").hub
    frames = big_frames()[:31]
    index = index_of(frames)
    await proxy.publish("cam", frames[0])
    playing = asyncio.create_task(run_camera(proxy, frames[1:]))  # 2 s of camera
    try:
        boundary, body, took = await read_whole_raw_stream(proxy, STREAM)
        newest = index[hub.latest.frame.jpeg]
    finally:
        playing.cancel()
    assert 0.9 <= took < 2.0
    received = [index[jpeg] for jpeg in closed_stream_parts(body, boundary)]  # KeyError: not a whole frame
    # In push order; the closing part may repeat the frame before it when none came since.
    assert received[:-1] == sorted(set(received[:-1])) and received[-1] >= received[-2]
    assert received[-1] >= newest - 1  # the last part is the newest frame (or the one before, by a hair)
    assert log_problems(caplog) == []
    print(f"stream ended after {took:.2f} s with {len(received)} parts, last frame {received[-1]}")


async def test_max_seconds_query_ends_the_stream_on_a_server_without_a_limit(start_proxy):
    proxy = await start_proxy(push_camera(), resend_seconds=60)
    await proxy.publish("cam", FRAMES[0])
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with aiohttp.ClientSession() as session:
        async with session.get(proxy.url(f"{STREAM}?max_seconds=1")) as response:
            assert response.status == 200
            boundary = boundary_of(response.headers["Content-Type"])
            body = await asyncio.wait_for(response.read(), 10)  # the end of the (chunked) body
    took = loop.time() - started
    assert 0.9 <= took < 2.0
    # The idle camera's frame at once, then again as the last part, closed.
    assert closed_stream_parts(body, boundary) == [FRAMES[0], FRAMES[0]]


async def test_max_seconds_query_is_capped_by_the_servers_max_stream_seconds(start_proxy):
    proxy = await start_proxy(push_camera(), resend_seconds=60, max_stream_seconds=1)
    await proxy.publish("cam", FRAMES[0])
    boundary, body, took = await read_whole_raw_stream(proxy, f"{STREAM}?max_seconds=100")
    assert took < 3
    assert closed_stream_parts(body, boundary)[-1] == FRAMES[0]
