"""The FrameHub on its own: fan-out order, latest-frame-wins, viewer counting, and the
push path (subscribers handed each part inside ``publish``) that live streams use."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from mjpeg_proxy.camera.frame import Frame
from mjpeg_proxy.camera.hub import FrameHub, HubClosed, Part
from tests.helpers import eventually


def make_hub() -> FrameHub[bytes]:
    return FrameHub(lambda frame: b"part:" + frame.jpeg)


async def watch(hub: FrameHub[bytes], count: int, received: list[Frame], ready: asyncio.Event | None = None) -> None:
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
    hub = FrameHub(lambda frame: built.append(frame.seq) or b"part:" + frame.jpeg)
    first = hub.publish(Frame(b"a"))
    second = hub.publish(Frame(b"b"))
    assert (first.frame.seq, second.frame.seq) == (1, 2)
    assert (first.payload, second.payload) == (b"part:a", b"part:b")
    assert hub.latest is second
    assert built == [1, 2]


async def test_all_viewers_receive_the_same_frames_in_order():
    hub = make_hub()
    viewers = 20
    received: list[list[Frame]] = [[] for _ in range(viewers)]
    tasks = [asyncio.create_task(watch(hub, 10, r)) for r in received]
    await eventually(lambda: hub.viewers == viewers)
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


async def test_viewer_count_follows_viewers():
    hub = make_hub()
    ready = asyncio.Event()
    task = asyncio.create_task(watch(hub, 1, [], ready))
    await ready.wait()
    assert hub.viewers == 1
    hub.publish(Frame(b"only"))
    await asyncio.wait_for(task, 1)
    assert hub.viewers == 0


async def test_cancelled_viewer_is_uncounted():
    hub = make_hub()
    ready = asyncio.Event()
    task = asyncio.create_task(watch(hub, 5, [], ready))
    await ready.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert hub.viewers == 0


async def test_hub_holds_one_frame_however_many_are_published():
    hub = make_hub()
    for _ in range(1000):
        hub.publish(Frame(bytes(1000)))
    # Nothing but the latest part is kept: no per-viewer or per-frame queue.
    assert hub.latest.frame.seq == 1000
    assert [name for name in vars(hub) if isinstance(vars(hub)[name], (list, dict, asyncio.Queue))] == []


class _Recorder:
    """A subscriber that records what the hub hands it (and runs ``on_offer`` first, if set)."""

    def __init__(self, on_offer=None) -> None:
        self.parts: list[Part[bytes]] = []
        self.closed_with: list[int | None] = []
        self.on_offer = on_offer

    @property
    def offered(self) -> list[int]:
        return [part.frame.seq for part in self.parts]

    def offer(self, part: Part[bytes]) -> None:
        if self.on_offer:
            self.on_offer()
        self.parts.append(part)

    def close(self, last: Part[bytes] | None) -> None:
        self.closed_with.append(None if last is None else last.frame.seq)


async def test_publish_hands_each_part_to_every_subscriber_once_in_order():
    hub = make_hub()
    recorders = [_Recorder() for _ in range(3)]
    with contextlib.ExitStack() as stack:
        for recorder in recorders:
            stack.enter_context(hub.viewer(recorder))
        assert hub.viewers == 3
        published = [hub.publish(Frame(b"%d" % i)) for i in range(5)]
    assert hub.viewers == 0
    for recorder in recorders:
        assert recorder.offered == [1, 2, 3, 4, 5]
        # The very part the hub built, once per frame: the same object for every subscriber.
        assert all(got is sent for got, sent in zip(recorder.parts, published, strict=True))
    hub.publish(Frame(b"after"))
    assert all(recorder.offered == [1, 2, 3, 4, 5] for recorder in recorders), "a subscriber that left gets nothing"


async def test_a_subscriber_that_joins_late_is_offered_only_newer_parts():
    hub = make_hub()
    hub.publish(Frame(b"before"))
    late = _Recorder()
    with hub.viewer(late):
        assert late.offered == []  # the latest part is the viewer's to take (hub.latest), not pushed
        assert hub.latest.frame.seq == 1
        hub.publish(Frame(b"after"))
    assert late.offered == [2]


async def test_a_subscriber_that_is_behind_gets_the_newest_part_and_nothing_is_queued_for_it():
    # Latest-frame-wins: the hub offers each part once and keeps none of them for a
    # subscriber that skipped it; one that catches up takes hub.latest, the newest.
    hub = make_hub()
    busy = True
    taken: list[int] = []

    class Slow(_Recorder):
        def offer(self, part: Part[bytes]) -> None:
            super().offer(part)
            if not busy:
                taken.append(part.frame.seq)

    slow = Slow()
    with hub.viewer(slow):
        for i in range(10):
            hub.publish(Frame(b"%d" % i))
        busy = False
        taken.append(hub.latest.frame.seq)  # caught up: the newest, never frames 1-9
        hub.publish(Frame(b"next"))
    assert slow.offered == list(range(1, 12))
    assert taken == [10, 11]


async def test_close_ends_every_subscriber_with_the_last_part():
    hub = make_hub()
    first, second = _Recorder(), _Recorder()
    with hub.viewer(first), hub.viewer(second):
        hub.publish(Frame(b"a"))
        hub.publish(Frame(b"b"))
        hub.close()
        assert first.closed_with == second.closed_with == [2]
    with pytest.raises(HubClosed):
        await hub.next_part(0)


async def test_close_before_any_frame_ends_subscribers_with_no_part():
    hub = make_hub()
    recorder = _Recorder()
    with hub.viewer(recorder):
        hub.close()
    assert recorder.closed_with == [None]


async def test_close_wakes_a_waiting_viewer_with_hub_closed():
    hub = make_hub()
    waiter = asyncio.create_task(hub.next_part(0))
    await asyncio.sleep(0)
    hub.close()
    with pytest.raises(HubClosed):
        await asyncio.wait_for(waiter, 1)


async def test_subscribers_leaving_during_the_fan_out_are_skipped_and_the_rest_served():
    hub = make_hub()
    stacks = {name: contextlib.ExitStack() for name in ("a", "b", "self", "still")}
    # Whichever of a and b is offered the part first makes the other leave; "self" leaves
    # while it takes its part; "still" stays throughout (the order of the fan-out is the hub's).
    a = _Recorder(on_offer=stacks["b"].close)
    b = _Recorder(on_offer=stacks["a"].close)
    leaver = _Recorder(on_offer=stacks["self"].close)
    still = _Recorder()
    for name, recorder in (("a", a), ("b", b), ("self", leaver), ("still", still)):
        stacks[name].enter_context(hub.viewer(recorder))
    with stacks["still"]:
        hub.publish(Frame(b"one"))
        assert hub.viewers == 2
        hub.publish(Frame(b"two"))
    assert sorted([a.offered, b.offered]) == [[], [1, 2]]
    assert leaver.offered == [1]
    assert still.offered == [1, 2]
    assert hub.viewers == 1  # the one of a and b that stayed
    for stack in stacks.values():
        stack.close()
    assert hub.viewers == 0


async def test_a_subscriber_joining_during_the_fan_out_gets_the_next_part():
    hub = make_hub()
    joined = _Recorder()
    with contextlib.ExitStack() as stack:
        host = _Recorder(on_offer=lambda: stack.enter_context(hub.viewer(joined)) if not joined.parts else None)
        stack.enter_context(hub.viewer(host))
        hub.publish(Frame(b"one"))
        hub.publish(Frame(b"two"))
    assert host.offered == [1, 2]
    assert joined.offered == [2]


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
