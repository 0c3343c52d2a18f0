"""The external-task sensor's rule (Airflow's ExternalTaskSensor), once for both shells.

One poke looks at the states of the watched runs (the other DAG's runs at the
target logical date, or one task of them) and says what the sensor try is now:
succeeded as soon as one is in `allowedStates`, failed as soon as one is in
`failedStates`, failed once `timeout` has passed since the try started, and
otherwise still running, to be poked again after `pokeInterval`. The operator pokes
from its reconcile (k8s.inline_tasks), the local runner from the sensor try's
process (local.sensor); both read the watched runs their own way and ask this.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from kubeflowlite.api.times import format_time
from kubeflowlite.core import durations
from kubeflowlite.core.engine import AttemptPhase


@dataclass(frozen=True)
class Poke:
    """What one poke found: the try's phase (succeeded, failed or running) and why."""

    phase: AttemptPhase
    message: str
    wake_at: datetime | None = None
    """When to poke again (running only): the next poke, or the timeout if that comes first."""


def poke(
    states: Iterable[str | None],
    *,
    what: str,
    target: datetime,
    allowed: Collection[str],
    failed: Collection[str],
    timeout: str,
    poke_interval: str,
    started: datetime,
    now: datetime,
) -> Poke:
    """One poke of a sensor try started at `started`; `states` are the watched runs' (None: not known).

    `what` names the watched DAG (or `dag.task`), `target` its logical date; `timeout`
    and `poke_interval` are the spec's durations.
    """
    seen_states = list(states)
    when = format_time(target)
    good = next((state for state in seen_states if state in allowed), None)
    if good is not None:
        return Poke(AttemptPhase.succeeded, f"{what} at {when} is {good}")
    bad = next((state for state in seen_states if state in failed), None)
    if bad is not None:
        return Poke(
            AttemptPhase.failed, f"{what} at {when} is {bad} (one of the failed states {sorted(failed)})"
        )
    limit = durations.parse_duration(timeout)
    seen = ", ".join(sorted({s or "none" for s in seen_states})) or "no run yet"
    if now - started >= limit:
        return Poke(
            AttemptPhase.failed,
            f"sensor timed out after {timeout} waiting for {what} at {when} (last seen: {seen})",
        )
    wake = min(now + durations.parse_duration(poke_interval), started + limit)
    return Poke(
        AttemptPhase.running,
        f"waiting for {what} at {when} to be {'/'.join(sorted(allowed))} (now: {seen})",
        wake,
    )
