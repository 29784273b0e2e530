"""Restart pacing: exponential backoff between restarts and the restart intensity limit.

Pure policy objects with injectable randomness and clock, so tests need no sleeps.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """delay(attempt) = min(max_s, min_s * factor**(attempt-1)), then jittered downwards.

    Jitter takes up to `jitter` (a fraction) off the delay, never adds to it: the cap stays a
    hard cap, and restarts of siblings that failed together spread out instead of stampeding.
    `reset_after_s`: a child that ran this long before failing starts again from attempt 1.
    """

    min_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.1
    reset_after_s: float = 60.0
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.min_s < 0 or self.max_s < self.min_s:
            raise ValueError(f"need 0 <= min_s <= max_s, got {self.min_s}, {self.max_s}")
        if self.factor < 1:
            raise ValueError(f"factor must be >= 1, got {self.factor}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be a fraction in [0, 1], got {self.jitter}")

    def base_delay(self, attempt: int) -> float:
        """The delay before restart number `attempt` (1-based), before jitter."""
        if attempt < 1:
            raise ValueError(f"attempt is 1-based, got {attempt}")
        if self.min_s == 0:
            return 0.0
        # Compare exponents rather than computing factor**n, which overflows for big attempts.
        delay = self.min_s
        for _ in range(attempt - 1):
            delay *= self.factor
            if delay >= self.max_s:
                return self.max_s
        return min(delay, self.max_s)

    def delay(self, attempt: int) -> float:
        base = self.base_delay(attempt)
        return base * (1.0 - self.jitter * self.random())


class RestartIntensity:
    """At most `max_restarts` restarts within any `period_s` window (Erlang's MaxR/MaxT).

    Not thread-safe: owned by one supervisor and used from its thread only.
    """

    def __init__(
        self, max_restarts: int = 5, period_s: float = 60.0, clock: Clock = time.monotonic
    ) -> None:
        if max_restarts < 0 or period_s <= 0:
            raise ValueError(
                f"need max_restarts >= 0 and period_s > 0, got {max_restarts}, {period_s}"
            )
        self.max_restarts = max_restarts
        self.period_s = period_s
        self._clock = clock
        # Only the last max_restarts+1 times can matter, so the window is bounded in a storm.
        self._times: deque[float] = deque(maxlen=max_restarts + 1)

    def _expire(self, now: float) -> None:
        while self._times and now - self._times[0] >= self.period_s:
            self._times.popleft()

    def allow(self) -> bool:
        """Count one restart now; False when that makes more than max_restarts in the window."""
        now = self._clock()
        self._times.append(now)
        self._expire(now)
        return len(self._times) <= self.max_restarts

    @property
    def recent(self) -> int:
        """Restarts counted in the current window."""
        self._expire(self._clock())
        return len(self._times)

    def reset(self) -> None:
        self._times.clear()
