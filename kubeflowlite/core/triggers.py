"""Trigger rules: may a task run, judged from the states of its direct upstream tasks?

A task's trigger rule is evaluated over counts of its *finished* direct upstream
task instances, exactly as Airflow's TriggerRuleDep does (with
flag_upstream_failed on, as the scheduler runs it). The answer is one of four
verdicts: run it now, mark it `skipped`, mark it `upstream_failed`, or wait
because the answer is not known yet. Skips and failures propagate through a DAG
because each downstream task applies its own rule to the states its upstream
tasks were given.

"done" counts finished upstream tasks: success, skipped, failed, upstream_failed
(an up_for_retry task is not done). `n` is the number of direct upstream tasks.
A task with no upstream task always runs at once, whatever its rule.

==============================  ==========================================  ===================================  ================================
rule                            run when                                    skipped when                         upstream_failed when
==============================  ==========================================  ===================================  ================================
all_success (default)           success == n                                any skipped (and none failed)        any failed or upstream_failed
all_failed                      failed + upstream_failed == n               any success or skipped               never
all_done                        done == n                                   never                                never
all_done_min_one_success        done == n, none skipped, >= 1 success       any skipped                          done == n, no success
all_skipped                     skipped == n                                any success/failed/upstream_failed   never
one_success                     >= 1 success (does not wait for the rest)   done == n, all skipped               done == n, no success, not all skipped
one_failed                      >= 1 failed or upstream_failed              done == n, none failed               never
one_done                        >= 1 success or failed                      done == n, no success or failed      never
none_failed                     success + skipped == n                      never                                any failed or upstream_failed
none_failed_min_one_success     success + skipped == n, >= 1 success        skipped == n                         any failed or upstream_failed
none_skipped                    done == n, none skipped                     any skipped                          never
always                          at once, even before any upstream finishes  never                                never
==============================  ==========================================  ===================================  ================================

Skips and upstream failures are decided as soon as they are certain, without waiting
for the other upstream tasks (all_success is upstream_failed the moment one upstream
fails). all_done_min_one_success follows Airflow's code rather than its docs: one
skipped upstream task skips it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import Enum
from typing import NamedTuple

from kubeflowlite.api.dag import TriggerRule
from kubeflowlite.api.dagrun import TaskState


class Verdict(str, Enum):
    """What a trigger rule says about a task that has not started yet."""

    run = "run"
    skip = "skip"
    upstream_failed = "upstream_failed"
    wait = "wait"


class UpstreamCounts(NamedTuple):
    """How many direct upstream tasks are in each finished state, out of `total`."""

    total: int
    success: int = 0
    skipped: int = 0
    failed: int = 0
    upstream_failed: int = 0

    @property
    def done(self) -> int:
        return self.success + self.skipped + self.failed + self.upstream_failed

    @property
    def all_done(self) -> bool:
        return self.done >= self.total

    @property
    def any_failed(self) -> bool:
        """A failed or upstream_failed upstream task (the two count alike in every rule but one_done)."""
        return self.failed + self.upstream_failed > 0


def count_states(states: Iterable[TaskState]) -> UpstreamCounts:
    """Count the direct upstream states of one task (unfinished states only add to the total)."""
    total = success = skipped = failed = upstream_failed = 0
    for state in states:
        total += 1
        if state is TaskState.success:
            success += 1
        elif state is TaskState.skipped:
            skipped += 1
        elif state is TaskState.failed:
            failed += 1
        elif state is TaskState.upstream_failed:
            upstream_failed += 1
    return UpstreamCounts(total, success, skipped, failed, upstream_failed)


def _all_success(c: UpstreamCounts) -> Verdict:
    if c.any_failed:
        return Verdict.upstream_failed
    if c.skipped:
        return Verdict.skip
    return Verdict.run if c.success == c.total else Verdict.wait


def _all_failed(c: UpstreamCounts) -> Verdict:
    if c.success or c.skipped:
        return Verdict.skip
    return Verdict.run if c.failed + c.upstream_failed == c.total else Verdict.wait


def _all_done(c: UpstreamCounts) -> Verdict:
    return Verdict.run if c.all_done else Verdict.wait


def _all_done_min_one_success(c: UpstreamCounts) -> Verdict:
    if c.skipped:
        return Verdict.skip
    if not c.all_done:
        return Verdict.wait
    return Verdict.run if c.success else Verdict.upstream_failed


def _all_skipped(c: UpstreamCounts) -> Verdict:
    if c.success or c.any_failed:
        return Verdict.skip
    return Verdict.run if c.skipped == c.total else Verdict.wait


def _one_success(c: UpstreamCounts) -> Verdict:
    if c.success:
        return Verdict.run
    if not c.all_done:
        return Verdict.wait
    return Verdict.skip if c.skipped == c.total else Verdict.upstream_failed


def _one_failed(c: UpstreamCounts) -> Verdict:
    if c.any_failed:
        return Verdict.run
    return Verdict.skip if c.all_done else Verdict.wait


def _one_done(c: UpstreamCounts) -> Verdict:
    if c.success or c.failed:
        return Verdict.run
    return Verdict.skip if c.all_done else Verdict.wait


def _none_failed(c: UpstreamCounts) -> Verdict:
    if c.any_failed:
        return Verdict.upstream_failed
    return Verdict.run if c.success + c.skipped == c.total else Verdict.wait


def _none_failed_min_one_success(c: UpstreamCounts) -> Verdict:
    if c.any_failed:
        return Verdict.upstream_failed
    if c.skipped == c.total:
        return Verdict.skip
    return Verdict.run if c.success + c.skipped == c.total else Verdict.wait


def _none_skipped(c: UpstreamCounts) -> Verdict:
    if c.skipped:
        return Verdict.skip
    return Verdict.run if c.all_done else Verdict.wait


def _always(c: UpstreamCounts) -> Verdict:
    return Verdict.run


_RULES: dict[TriggerRule, Callable[[UpstreamCounts], Verdict]] = {
    TriggerRule.all_success: _all_success,
    TriggerRule.all_failed: _all_failed,
    TriggerRule.all_done: _all_done,
    TriggerRule.all_done_min_one_success: _all_done_min_one_success,
    TriggerRule.all_skipped: _all_skipped,
    TriggerRule.one_success: _one_success,
    TriggerRule.one_failed: _one_failed,
    TriggerRule.one_done: _one_done,
    TriggerRule.none_failed: _none_failed,
    TriggerRule.none_failed_min_one_success: _none_failed_min_one_success,
    TriggerRule.none_skipped: _none_skipped,
    TriggerRule.always: _always,
}


def evaluate(rule: TriggerRule, counts: UpstreamCounts) -> Verdict:
    """The verdict of `rule` over the direct upstream `counts` of a task that has not started."""
    if counts.total == 0:
        return Verdict.run
    return _RULES[rule](counts)


def describe(rule: TriggerRule, counts: UpstreamCounts) -> str:
    """A short explanation of a verdict for the task's status message."""
    parts = [
        f"{number} {name}"
        for number, name in (
            (counts.success, "success"),
            (counts.skipped, "skipped"),
            (counts.failed, "failed"),
            (counts.upstream_failed, "upstream_failed"),
        )
        if number
    ]
    unfinished = counts.total - counts.done
    if unfinished:
        parts.append(f"{unfinished} not done")
    return f"trigger rule {rule.value}: upstream {', '.join(parts) or 'none'}"
