"""Backoff: doubling steps up to a cap, each delay in the upper half of its step."""

from __future__ import annotations

import random

import pytest

from mjpeg_proxy.camera.backoff import Backoff


def delays(backoff: Backoff, n: int) -> list[float]:
    return [backoff.next_delay() for _ in range(n)]


def test_delays_double_up_to_the_cap_with_the_largest_jitter():
    backoff = Backoff(initial_s=1.0, max_s=8.0, rand=lambda: 1.0)

    assert delays(backoff, 6) == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_delays_double_up_to_the_cap_with_the_smallest_jitter():
    backoff = Backoff(initial_s=1.0, max_s=8.0, rand=lambda: 0.0)

    assert delays(backoff, 6) == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_cap_that_is_not_a_doubling_step_is_still_the_limit():
    backoff = Backoff(initial_s=1.0, max_s=5.0, rand=lambda: 1.0)

    assert delays(backoff, 5) == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_every_delay_lies_in_the_upper_half_of_its_step():
    rng = random.Random(20240601)
    backoff = Backoff(initial_s=0.25, max_s=30.0, rand=rng.random)
    steps = [min(30.0, 0.25 * 2**n) for n in range(40)]

    for step, delay in zip(steps, delays(backoff, 40), strict=True):
        assert step / 2 <= delay <= step


def test_jitter_spreads_delays_of_the_same_step():
    rng = random.Random(7)
    seen = {Backoff(initial_s=1.0, max_s=1.0, rand=rng.random).next_delay() for _ in range(20)}

    assert len(seen) > 1
    assert all(0.5 <= d <= 1.0 for d in seen)


def test_reset_starts_over_from_the_initial_step():
    backoff = Backoff(initial_s=1.0, max_s=60.0, rand=lambda: 1.0)
    delays(backoff, 4)

    backoff.reset()

    assert delays(backoff, 3) == [1.0, 2.0, 4.0]


def test_default_jitter_stays_within_the_step():
    backoff = Backoff(initial_s=1.0, max_s=60.0)

    assert 0.5 <= backoff.next_delay() <= 1.0
    assert 1.0 <= backoff.next_delay() <= 2.0


def test_small_injected_delays_for_tests():
    backoff = Backoff(0.001, 0.01, rand=lambda: 1.0)

    assert delays(backoff, 6) == pytest.approx([0.001, 0.002, 0.004, 0.008, 0.01, 0.01])


@pytest.mark.parametrize(("initial_s", "max_s"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_impossible_limits_are_refused(initial_s, max_s):
    with pytest.raises(ValueError, match="initial_s"):
        Backoff(initial_s=initial_s, max_s=max_s)


def test_a_day_of_failures_does_not_overflow():
    backoff = Backoff(1.0, 60.0, rand=lambda: 1.0)
    delays = [backoff.next_delay() for _ in range(5000)]
    assert delays[-1] == 60.0
