"""How long a failed try waits before the next one (Airflow's retry_delay semantics).

The delay after failed try `n` is `retryDelay`, or with `retryExponentialBackoff`
`retryDelay * 2**(n-1)` (so 5m, 10m, 20m, ...), and never more than
`maxRetryDelay` when that is set. Airflow adds a hash-based jitter to the
exponential delay; we leave it out so that a run's timers are predictable and
tests can state them exactly. Unlike Airflow, `maxRetryDelay` caps a plain delay
too, as its field description promises.
"""

from __future__ import annotations

from datetime import timedelta

DEFAULT_RETRY_DELAY = timedelta(minutes=5)
"""Airflow's default retry_delay."""

MAX_DELAY = timedelta(days=3650)
"""Bound on any computed delay, so that doubling never overflows a datetime."""


def retry_delay(
    *,
    failed_try: int,
    delay: timedelta = DEFAULT_RETRY_DELAY,
    exponential: bool = False,
    max_delay: timedelta | None = None,
) -> timedelta:
    """The wait after try number `failed_try` (1-based) failed."""
    if failed_try < 1:
        raise ValueError(f"try numbers start at 1, got {failed_try}")
    wait = delay
    if exponential:
        # Doubling more than ~40 times exceeds MAX_DELAY for any positive delay.
        factor = 2 ** min(failed_try - 1, 64)
        wait = MAX_DELAY if delay.total_seconds() * factor >= MAX_DELAY.total_seconds() else delay * factor
    if max_delay is not None:
        wait = min(wait, max_delay)
    return min(wait, MAX_DELAY)
