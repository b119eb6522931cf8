"""The FrameHub on its own: fan-out order, latest-frame-wins, viewer counting."""

from __future__ import annotations

import asyncio

from mjpeg_proxy.camera.frame import Frame
from mjpeg_proxy.camera.hub import FrameHub


def make_hub() -> FrameHub:
    return FrameHub(lambda frame: (b"part:" + frame.jpeg, b"browser part:" + frame.jpeg))


async def watch(hub: FrameHub, count: int, received: list[Frame], ready: asyncio.Event | None = None) -> None:
    """A viewer that takes every part the hub hands it until it has ``count``."""
    seq = 0
    with hub.viewer():
        if ready:
            ready.set()
        while len(received) < count:
            part = await hub.next_part(seq)
            assert part is not None
            received.append(part.frame)
            seq = part.frame.seq


async def test_publish_numbers_frames_and_builds_the_part_once():
    built = []
    hub = FrameHub(lambda frame: built.append(frame.seq) or (b"part:" + frame.jpeg, b"browser part:" + frame.jpeg))
    first = hub.publish(Frame(b"a"))
    second = hub.publish(Frame(b"b"))
    assert (first.frame.seq, second.frame.seq) == (1, 2)
    assert (second.data, second.browser_data) == (b"part:b", b"browser part:b")
    assert hub.latest is second
    assert built == [1, 2]


async def test_all_viewers_receive_the_same_frames_in_order():
    hub = make_hub()
    viewers = 20
    received: list[list[Frame]] = [[] for _ in range(viewers)]
    tasks = [asyncio.create_task(watch(hub, 10, r)) for r in received]
    await hub.wait_viewers(lambda n: n == viewers)
    for i in range(10):
        hub.publish(Frame(b"frame %d" % i))
        # Let every viewer take this frame before the next, as a camera's pace would.
        await asyncio.sleep(0)
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    expected = [b"frame %d" % i for i in range(10)]
    for frames in received:
        assert [f.jpeg for f in frames] == expected
        assert [f.seq for f in frames] == list(range(1, 11))


async def test_slow_viewer_skips_to_the_newest_frame_and_never_goes_back():
    hub = make_hub()
    for i in range(5):
        hub.publish(Frame(b"old %d" % i))
    # A viewer that last sent frame 2 and comes back after 3 more arrived gets only the newest.
    part = await hub.next_part(2)
    assert part.frame.seq == 5 and part.frame.jpeg == b"old 4"
    seqs = []
    seq = 0
    for i in range(20):
        hub.publish(Frame(b"%d" % i))
        if i % 3 == 0:
            part = await hub.next_part(seq)
            seqs.append(part.frame.seq)
            seq = part.frame.seq
    assert seqs == sorted(set(seqs)), "sequence numbers must only grow"


async def test_next_part_returns_at_once_when_a_newer_frame_exists():
    hub = make_hub()
    hub.publish(Frame(b"x"))
    part = await hub.next_part(0, timeout_s=0)
    assert part is not None and part.frame.jpeg == b"x"


async def test_next_part_times_out_with_none_while_nothing_new_arrives():
    hub = make_hub()
    hub.publish(Frame(b"x"))
    assert await hub.next_part(1, timeout_s=0.01) is None
    assert await make_hub().next_part(0, timeout_s=0.01) is None


async def test_waiting_viewer_is_woken_by_publish():
    hub = make_hub()
    waiter = asyncio.create_task(hub.next_part(0))
    await asyncio.sleep(0)
    assert not waiter.done()
    hub.publish(Frame(b"new"))
    part = await asyncio.wait_for(waiter, 1)
    assert part.frame.jpeg == b"new"


async def test_viewer_count_follows_viewers_and_can_be_awaited():
    hub = make_hub()
    ready = asyncio.Event()
    task = asyncio.create_task(watch(hub, 1, [], ready))
    await ready.wait()
    assert hub.viewers == 1
    hub.publish(Frame(b"only"))
    assert await asyncio.wait_for(hub.wait_viewers(lambda n: n == 0), 1) == 0
    await task


async def test_cancelled_viewer_is_uncounted():
    hub = make_hub()
    ready = asyncio.Event()
    task = asyncio.create_task(watch(hub, 5, [], ready))
    await ready.wait()
    task.cancel()
    await asyncio.wait_for(hub.wait_viewers(lambda n: n == 0), 1)
    assert hub.viewers == 0


async def test_hub_holds_one_frame_however_many_are_published():
    hub = make_hub()
    for _ in range(1000):
        hub.publish(Frame(bytes(1000)))
    # Nothing but the latest part is kept: no per-viewer or per-frame queue.
    assert hub.latest.frame.seq == 1000
    assert [name for name in vars(hub) if isinstance(vars(hub)[name], (list, dict, asyncio.Queue))] == []


class _Recorder:
    """A subscriber that records what the hub hands it."""

    def __init__(self) -> None:
        self.offered: list[int] = []
        self.closed_with: list[int | None] = []

    def offer(self, part) -> None:
        self.offered.append(part.frame.seq)

    def close(self, last) -> None:
        self.closed_with.append(None if last is None else last.frame.seq)


async def test_a_subscriber_of_a_closed_hub_is_closed_at_once_with_the_last_part():
    # A viewer that comes as its camera is removed by a reload must not wait for ever.
    hub = make_hub()
    hub.publish(Frame(b"\xff\xd8one\xff\xd9"))
    hub.close()
    late = _Recorder()
    with hub.viewer(late):
        assert late.closed_with == [1]
        hub.publish(Frame(b"\xff\xd8two\xff\xd9"))
    assert late.offered == []
