"""Exponential backoff with jitter, for retrying an upstream after errors."""

from __future__ import annotations

import random
from collections.abc import Callable

NAMED_WAIT_SPREAD = 0.1
"""The most, as a fraction, that ``Backoff.at_least`` adds to a wait the upstream named."""


class Backoff:
    """Delays that double after each failure, from ``initial_s`` up to ``max_s`` seconds.

    Each delay is drawn uniformly from the upper half of the current step ("equal
    jitter"), so cameras that failed together do not retry together, and no delay is
    ever shorter than half the step. ``reset()`` after a success starts over.
    """

    def __init__(
        self,
        initial_s: float,
        max_s: float,
        factor: float = 2.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not 0 < initial_s <= max_s:
            raise ValueError("need 0 < initial_s <= max_s")
        self.initial_s = initial_s
        self.max_s = max_s
        self.factor = factor
        self._rand = rand
        self.failures = 0

    def next_delay(self) -> float:
        """Count one more failure and return the seconds to wait before the next try."""
        # The exponent is capped: factor**failures overflows a float after ~1000 failures,
        # which a camera that is offline for a day reaches.
        step = min(self.max_s, self.initial_s * self.factor ** min(self.failures, 64))
        self.failures += 1
        return step / 2 + self._rand() * step / 2

    def at_least(self, seconds: float) -> float:
        """The wait when the upstream named it (``Retry-After``), counting no failure.

        ``seconds`` plus up to ``NAMED_WAIT_SPREAD`` of it more, so cameras told the same
        time (an HTTP-date, or channels of one device) do not come back together.
        """
        return seconds * (1 + NAMED_WAIT_SPREAD * self._rand())

    def reset(self) -> None:
        """Forget past failures after a success."""
        self.failures = 0
