"""Viewers that leave, and viewers that stop reading: nothing leaks, nobody waits for them."""

from __future__ import annotations

import asyncio
import socket

import aiohttp

from tests.helpers import StrictMjpegReader, boundary_of, eventually, push_camera, real_frames

FRAMES = real_frames()


async def test_viewer_that_disconnects_while_camera_is_idle_is_removed(start_proxy):
    proxy = await start_proxy(push_camera(), resend_seconds=60)
    hub = proxy.camera("cam").hub
    await proxy.publish("cam", FRAMES[0])
    tasks_before = len(asyncio.all_tasks())

    reader, writer = await asyncio.open_connection(proxy.server.host, proxy.server.port)
    writer.write(b"GET /cameras/cam/stream.mjpg HTTP/1.1\r\nHost: test\r\n\r\n")
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    await asyncio.wait_for(reader.readuntil(FRAMES[0][-64:]), 5)  # the first part arrived
    assert hub.viewers == 1
    writer.close()
    await writer.wait_closed()

    # No frame is sent after this (resend every 60 s), yet the viewer is noticed gone.
    await eventually(lambda: hub.viewers == 0, 3)
    await eventually(lambda: len(asyncio.all_tasks()) <= tasks_before, 3)
    await eventually(lambda: not proxy.server.runner.server.connections, 3)


async def test_many_connect_read_close_rounds_leave_nothing_behind(start_proxy):
    proxy = await start_proxy(push_camera(), resend_seconds=60)
    hub = proxy.camera("cam").hub
    await proxy.publish("cam", FRAMES[0])
    tasks_before = len(asyncio.all_tasks())
    for _ in range(50):
        reader, writer = await asyncio.open_connection(proxy.server.host, proxy.server.port)
        writer.write(b"GET /cameras/cam/stream.mjpg HTTP/1.0\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        await asyncio.wait_for(reader.readexactly(100), 5)
        writer.close()
    await eventually(lambda: hub.viewers == 0, 5)
    await eventually(lambda: len(asyncio.all_tasks()) <= tasks_before, 5)


async def test_stuck_viewer_does_not_slow_others_and_its_memory_stays_bounded(start_proxy):
    proxy = await start_proxy(push_camera(), resend_seconds=60)
    hub = proxy.camera("cam").hub

    # A viewer that sends its request and then never reads, with a small receive window.
    stuck = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.setblocking(False)
    await asyncio.get_running_loop().sock_connect(stuck, (proxy.server.host, proxy.server.port))
    stuck.send(b"GET /cameras/cam/stream.mjpg HTTP/1.1\r\nHost: test\r\n\r\n")
    await eventually(lambda: hub.viewers == 1, 10)

    part_sizes = []
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(proxy.url("/cameras/cam/stream.mjpg")) as response:
                await eventually(lambda: hub.viewers == 2, 10)
                mjpeg = StrictMjpegReader(response.content, boundary_of(response.headers["Content-Type"]))
                rounds = 40
                for i in range(rounds):
                    jpeg = FRAMES[i % len(FRAMES)]
                    proxy.push("cam", jpeg)
                    # The reading viewer gets every frame, however far behind the stuck one is.
                    part = await asyncio.wait_for(mjpeg.read_part(), 5)
                    assert part.jpeg == jpeg
                    part_sizes.append(len(hub.latest.payload.player))
                    buffered = [
                        c.transport.get_write_buffer_size()
                        for c in proxy.server.runner.server.connections
                        if c.transport
                    ]
                    # The server holds at most about two frames for the stuck viewer, at any time.
                    assert max(buffered) <= 2 * max(part_sizes)
        await eventually(lambda: hub.viewers == 1, 5)
    finally:
        stuck.close()
    await eventually(lambda: hub.viewers == 0, 5)
