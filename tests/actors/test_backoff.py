"""The pure pacing policies: exponential backoff with cap and jitter, restart intensity."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.backoff import BackoffPolicy, RestartIntensity


def test_delays_grow_exponentially_and_are_capped() -> None:
    policy = BackoffPolicy(min_s=0.1, max_s=1.0, factor=2.0, jitter=0.5, random=lambda: 0.0)
    delays = [policy.delay(n) for n in range(1, 8)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])


def test_jitter_only_shortens_by_at_most_the_fraction() -> None:
    assert BackoffPolicy(min_s=1.0, max_s=8.0, jitter=0.2, random=lambda: 1.0).delay(3) == (
        pytest.approx(4.0 * 0.8)
    )
    assert BackoffPolicy(min_s=1.0, max_s=8.0, jitter=0.2, random=lambda: 0.5).delay(4) == (
        pytest.approx(8.0 * 0.9)
    )


@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    jitter=st.floats(min_value=0.0, max_value=1.0),
    roll=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_every_delay_lies_within_the_jitter_band_under_the_cap(
    attempt: int, jitter: float, roll: float
) -> None:
    policy = BackoffPolicy(min_s=0.5, max_s=30.0, jitter=jitter, random=lambda: roll)
    base = policy.base_delay(attempt)
    assert base == min(30.0, 0.5 * 2.0 ** min(attempt - 1, 100))
    assert base * (1 - jitter) - 1e-12 <= policy.delay(attempt) <= base <= 30.0


def test_real_random_jitter_spreads_delays() -> None:
    policy = BackoffPolicy(min_s=1.0, max_s=1.0, jitter=0.5)
    delays = {policy.delay(1) for _ in range(200)}
    assert len(delays) > 100
    assert all(0.5 <= d <= 1.0 for d in delays)


def test_zero_min_means_no_delay() -> None:
    assert BackoffPolicy(min_s=0.0, max_s=0.0).delay(50) == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [{"min_s": -1.0}, {"min_s": 2.0, "max_s": 1.0}, {"factor": 0.5}, {"jitter": 1.5}],
)
def test_invalid_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"must|need"):
        BackoffPolicy(**kwargs)


def test_attempt_is_one_based() -> None:
    with pytest.raises(ValueError, match="1-based"):
        BackoffPolicy().delay(0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_intensity_allows_max_restarts_within_the_period() -> None:
    clock = FakeClock()
    intensity = RestartIntensity(max_restarts=3, period_s=10.0, clock=clock)
    assert [intensity.allow() for _ in range(3)] == [True, True, True]
    clock.now += 9.9
    assert intensity.allow() is False  # 4 within 9.9 s


def test_intensity_forgets_restarts_older_than_the_period() -> None:
    clock = FakeClock()
    intensity = RestartIntensity(max_restarts=2, period_s=10.0, clock=clock)
    for _ in range(2):
        assert intensity.allow()
        clock.now += 6.0
    # the first restart (12 s ago) left the window; the second (6 s ago) did not
    assert intensity.allow() is True
    assert intensity.recent == 2
    clock.now += 10.0
    assert intensity.recent == 0


def test_zero_max_restarts_gives_up_at_the_first_failure() -> None:
    assert RestartIntensity(max_restarts=0, period_s=1.0).allow() is False


def test_intensity_memory_is_bounded_in_a_storm() -> None:
    intensity = RestartIntensity(max_restarts=5, period_s=1e9, clock=FakeClock())
    for _ in range(10_000):
        intensity.allow()
    assert intensity.recent == 6
