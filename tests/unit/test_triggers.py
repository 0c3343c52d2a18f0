"""Trigger rules as a table: every rule against representative direct-upstream states.

The expectations are Airflow's (TriggerRuleDep with flag_upstream_failed, as the
scheduler evaluates it). `.` in a state list stands for an upstream task that has not
finished yet (none, queued, running or up_for_retry all count the same).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubeflowlite.api.dag import TriggerRule
from kubeflowlite.api.dagrun import TaskState
from kubeflowlite.core.triggers import UpstreamCounts, Verdict, count_states, describe, evaluate

R = TriggerRule
RUN, SKIP, UF, WAIT = Verdict.run, Verdict.skip, Verdict.upstream_failed, Verdict.wait

_CODES = {
    "S": TaskState.success,
    "K": TaskState.skipped,
    "F": TaskState.failed,
    "U": TaskState.upstream_failed,
    ".": TaskState.running,
    "r": TaskState.up_for_retry,
    "n": TaskState.none,
}


def states(code: str) -> list[TaskState]:
    """'SK.' -> [success, skipped, running]."""
    return [_CODES[c] for c in code]


TABLE: list[tuple[TriggerRule, str, Verdict]] = [
    # all_success: fails fast on a failure, skips fast on a skip.
    (R.all_success, "SS", RUN),
    (R.all_success, "S.", WAIT),
    (R.all_success, "Sr", WAIT),
    (R.all_success, "F.", UF),
    (R.all_success, "U.", UF),
    (R.all_success, "K.", SKIP),
    (R.all_success, "KF", UF),
    (R.all_success, "n", WAIT),
    # all_failed
    (R.all_failed, "FF", RUN),
    (R.all_failed, "FU", RUN),
    (R.all_failed, "F.", WAIT),
    (R.all_failed, "S.", SKIP),
    (R.all_failed, "K.", SKIP),
    (R.all_failed, "FS", SKIP),
    # all_done: never skipped, never upstream_failed
    (R.all_done, "SKFU", RUN),
    (R.all_done, "FF", RUN),
    (R.all_done, "S.", WAIT),
    (R.all_done, "Fr", WAIT),
    # all_done_min_one_success (Airflow's code: any skipped upstream skips it)
    (R.all_done_min_one_success, "SF", RUN),
    (R.all_done_min_one_success, "SU", RUN),
    (R.all_done_min_one_success, "S.", WAIT),
    (R.all_done_min_one_success, "FF", UF),
    (R.all_done_min_one_success, "FU", UF),
    (R.all_done_min_one_success, "SK", SKIP),
    (R.all_done_min_one_success, "K.", SKIP),
    # all_skipped
    (R.all_skipped, "KK", RUN),
    (R.all_skipped, "K.", WAIT),
    (R.all_skipped, "S.", SKIP),
    (R.all_skipped, "F.", SKIP),
    (R.all_skipped, "U.", SKIP),
    # one_success: does not wait for the rest
    (R.one_success, "S.", RUN),
    (R.one_success, "SF", RUN),
    (R.one_success, "F.", WAIT),
    (R.one_success, "K.", WAIT),
    (R.one_success, "FF", UF),
    (R.one_success, "FK", UF),
    (R.one_success, "UU", UF),
    (R.one_success, "KK", SKIP),
    # one_failed
    (R.one_failed, "F.", RUN),
    (R.one_failed, "U.", RUN),
    (R.one_failed, "S.", WAIT),
    (R.one_failed, "SK", SKIP),
    (R.one_failed, "SS", SKIP),
    # one_done: success or failed (upstream_failed does not count as done here)
    (R.one_done, "S.", RUN),
    (R.one_done, "F.", RUN),
    (R.one_done, "U.", WAIT),
    (R.one_done, "K.", WAIT),
    (R.one_done, "KU", SKIP),
    (R.one_done, "KK", SKIP),
    # none_failed
    (R.none_failed, "SK", RUN),
    (R.none_failed, "KK", RUN),
    (R.none_failed, "S.", WAIT),
    (R.none_failed, "F.", UF),
    (R.none_failed, "U.", UF),
    # none_failed_min_one_success
    (R.none_failed_min_one_success, "SK", RUN),
    (R.none_failed_min_one_success, "SS", RUN),
    (R.none_failed_min_one_success, "K.", WAIT),
    (R.none_failed_min_one_success, "KK", SKIP),
    (R.none_failed_min_one_success, "F.", UF),
    (R.none_failed_min_one_success, "KU", UF),
    # none_skipped: failures are fine
    (R.none_skipped, "SF", RUN),
    (R.none_skipped, "UF", RUN),
    (R.none_skipped, "S.", WAIT),
    (R.none_skipped, "K.", SKIP),
    (R.none_skipped, "SK", SKIP),
    # always: at once
    (R.always, "..", RUN),
    (R.always, "FK", RUN),
    (R.always, "n", RUN),
]


@pytest.mark.parametrize(("rule", "code", "expected"), TABLE, ids=[f"{r.value}-{c}" for r, c, _ in TABLE])
def test_rule_table(rule: TriggerRule, code: str, expected: Verdict) -> None:
    assert evaluate(rule, count_states(states(code))) is expected


def test_the_table_covers_every_rule_and_verdict_it_can_give() -> None:
    assert {rule for rule, _, _ in TABLE} == set(TriggerRule)


@pytest.mark.parametrize("rule", list(TriggerRule))
def test_a_task_without_upstream_runs_whatever_its_rule(rule: TriggerRule) -> None:
    assert evaluate(rule, count_states([])) is Verdict.run


def test_counts_ignore_unfinished_states_except_in_the_total() -> None:
    counts = count_states(states("SKFU.rn"))
    assert counts == UpstreamCounts(total=7, success=1, skipped=1, failed=1, upstream_failed=1)
    assert counts.done == 4
    assert not counts.all_done


finished_states = st.lists(st.sampled_from(list("SKFU")), min_size=1, max_size=6).map("".join)


@given(rule=st.sampled_from(list(TriggerRule)), code=finished_states)
def test_every_rule_decides_once_every_upstream_is_finished(rule: TriggerRule, code: str) -> None:
    assert evaluate(rule, count_states(states(code))) is not Verdict.wait


@given(
    rule=st.sampled_from(list(TriggerRule)),
    code=finished_states,
    pending=st.integers(min_value=1, max_value=3),
)
def test_a_decision_taken_early_holds_whatever_the_rest_do(
    rule: TriggerRule, code: str, pending: int
) -> None:
    """The engine acts on a verdict at once, so an early verdict must agree with the eventual one.

    `code` is the eventual outcome. With the last `pending` upstream tasks still
    running, an early `run` must stay `run`, and an early skip or upstream_failed must
    not turn into `run` (which of the two it ends as may differ: all_success over
    skipped + running is skipped, over skipped + failed upstream_failed, as in Airflow).
    """
    pending = min(pending, len(code))
    early = evaluate(rule, count_states(states(code[:-pending] + "." * pending)))
    final = evaluate(rule, count_states(states(code)))
    if early is Verdict.run:
        assert final is Verdict.run
    elif early is not Verdict.wait:
        assert final in (Verdict.skip, Verdict.upstream_failed)


def test_describe_names_the_rule_and_the_counts() -> None:
    text = describe(R.all_success, count_states(states("SF.")))
    assert text == "trigger rule all_success: upstream 1 success, 1 failed, 1 not done"
