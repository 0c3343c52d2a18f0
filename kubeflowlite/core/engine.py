"""The run state machine: one pure function from what is observed to what to do.

`decide(RunInput) -> Decision` is the whole contract between the engine and its two
shells (the kopf operator and the local runner). It does no I/O and never reads the
clock: `now` is an argument, and the returned `wake_at` tells the shell when the
engine next needs to be called even if nothing is observed to change (a retry delay
ending, an execution timeout).

Level-triggered: the engine decides every task state from the spec, the last status
it wrote (try numbers, retry times, cleared requests) and the latest observed attempt
of each task. Calling it twice with the same input gives the
same decision, and a decision repeated because the shell had not yet observed its
effect is harmless, since the shell names every try deterministically.

One call, in this order (each step a small function below):

1. clear: a new clear request resets its tasks to `none` (try numbers and history kept).
2. reconcile: each observed attempt is folded into its task's status. An attempt of a
   try newer than the status knows is adopted (the status write after a launch was
   lost); an attempt of the current try is applied only while the engine thinks that
   try is in flight (queued or running); anything older is history and ignored.
3. one pass in topological order (ties in file order): timeouts fail running tries,
   branch and short-circuit decisions skip tasks, trigger rules turn waiting tasks into
   run / skipped / upstream_failed, `empty` tasks succeed on the spot. Because the pass
   is in topological order, one call settles everything that needs no process: a
   chain of 10,000 empty tasks finishes in one call.
4. slots: tasks ready to run (and retries that are due) get StartTry while fewer than
   maxActiveTasks tries are queued or running; the rest wait in `scheduled`.
5. the run's state follows Airflow's rule: finished when every task is finished,
   failed if a leaf task (one with no downstream) is failed or upstream_failed.

Execution timeouts: when a running try passes `executionTimeout`, the engine fails it at
once (message "execution timeout after X", retried like any failure) and asks the
shell to StopTry it. The engine never waits for the shell to confirm the kill: any
observed attempt that is still pending or running although the engine no longer counts
it in flight (timed out, superseded by a newer try, cleared) gets a StopTry on every
call until the shell reports it finished.

Incremental, with the same answers: the engine remembers an index of the status it
returned last (task names grouped by state, failed leaves, tries seen alive; kept per
status object, bounded, never persisted). Called again with that very status, and
with `RunInput.changed` naming the tasks whose attempt changed since, it folds only
those attempts and visits, in the same topological order, only the tasks whose visit
can change something (see `_settle_changed`): a chain of N process tasks costs O(N)
in total rather than O(N^2). Any other call (a fresh process, a status the shell
decorated or lost, a clear request, `remember=False`) makes the full pass, O(tasks +
edges + attempts), and the property tests check on every call that both passes
decide exactly the same. The new status shares the old one's task statuses through
api.dagrun.TaskMap (an immutable map: O(changes x log tasks) per call, no copy of
10,000 entries), so an incremental call costs O(what changed) plus O(tasks queued,
running, scheduled or retrying) (benchmarks/bench_engine.py). The compiled graph of
a spec is memoized per DAGSpec object (a run's spec is a snapshot the shells never
mutate in place).
"""

from __future__ import annotations

import heapq
import operator
from collections import ChainMap
from collections.abc import Collection, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum
from functools import lru_cache
from typing import Any, cast

from kubeflowlite.api.dag import DAGSpec, Task, TaskType, TriggerRule, effective_field
from kubeflowlite.api.dagrun import DAGRunStatus, RunState, TaskInstanceStatus, TaskMap, TaskState, TryRecord
from kubeflowlite.core import durations, retries, runstatus, triggers, validation
from kubeflowlite.core.xcom import NO_XCOM, XComError, branch_targets, is_falsy

__all__ = [
    "INTERRUPTED",
    "IN_FLIGHT",
    "NO_XCOM",
    "Attempt",
    "AttemptPhase",
    "Decision",
    "RunInput",
    "StartTry",
    "StopTry",
    "decide",
    "held",
    "interrupted",
    "stalled",
    "stalled_status",
    "waiting_reasons",
]


class AttemptPhase(str, Enum):
    """What the shell observed of one try: a Pod's phase, or a subprocess's lifecycle."""

    pending = "pending"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    skipped = "skipped"
    """The try itself asked to be skipped (a Python task raising AirflowSkipException)."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """The shell's observation of one try of one task instance.

    A try counts as `succeeded` only after the shell has stored its XCom value: a
    shell that cannot store it reports the try `failed` with the reason in `message`.
    """

    task: str
    try_number: int
    phase: AttemptPhase
    start_time: datetime | None = None
    end_time: datetime | None = None
    exit_code: int | None = None
    message: str | None = None
    xcom: Any = NO_XCOM


@dataclass(frozen=True)
class RunInput:
    """Everything the engine may look at."""

    dag: DAGSpec
    """The DAG spec snapshot of this run."""
    status: DAGRunStatus
    """The status the engine returned last time (a fresh DAGRunStatus() for a new run)."""
    attempts: Mapping[str, Attempt]
    """Task id -> the observed attempt with the highest try number, for tasks that have one."""
    now: datetime
    """Aware UTC datetime."""
    previous_run: Mapping[str, TaskState] | None = None
    """Task states of the previous run of this DAG (for dependsOnPast); None if there is none."""
    clear: tuple[str, tuple[str, ...]] | None = None
    """A pending clear request (id, task ids) from the run's spec; applied once per id."""
    changed: Collection[str] | None = None
    """Task ids whose attempt may differ from the one the call that returned `status` saw (a
    superset is fine). None: not known, so every attempt is looked at. Only a hint for the
    engine's memory: a call the engine has no memory of `status` for looks at every attempt."""


@dataclass(frozen=True, slots=True)
class StartTry:
    """Launch try `try_number` of `task` (a Pod, a subprocess, or a controller-side action).

    Level-triggered: repeated on every call while the task is queued for this try and
    no attempt of it is observed, so a launch lost to a crash is retried. A shell
    treats it as "make sure this try exists", which its deterministic names make safe.
    """

    task: str
    try_number: int


@dataclass(frozen=True, slots=True)
class StopTry:
    """Terminate a try the engine no longer counts as in flight (timed out, superseded, cleared).

    Repeated on every call while the shell still observes that try pending or running.
    """

    task: str
    try_number: int
    reason: str


@dataclass(frozen=True)
class Decision:
    """What the shell should do now, and when to call the engine again."""

    status: DAGRunStatus
    """The new status to persist (and to pass back in next time)."""
    start: list[StartTry] = field(default_factory=list)
    stop: list[StopTry] = field(default_factory=list)
    wake_at: datetime | None = None
    """Call again at this time at the latest, even if nothing changes; None: only on observed change."""

    @property
    def finished(self) -> bool:
        return self.status.state.finished


IN_FLIGHT = frozenset({TaskState.queued, TaskState.running})
"""States that hold one of the maxActiveTasks slots."""
_WAITING = frozenset({TaskState.none, TaskState.scheduled})
"""States of a task whose current instance has not started: trigger rules apply to these."""
_FINISHED = frozenset({TaskState.success, TaskState.failed, TaskState.upstream_failed, TaskState.skipped})
_NONE, _SUCCESS = TaskState.none, TaskState.success
_FAILED = frozenset({TaskState.failed, TaskState.upstream_failed})
"""A leaf in one of these fails the run."""
_ALIVE = frozenset({AttemptPhase.pending, AttemptPhase.running})
_PAST_OK = frozenset({TaskState.success, TaskState.skipped})
_NEVER_STARTED = TaskInstanceStatus()
"""The status of a task the run's status does not mention yet (shared: never changed in place)."""
_MAX_HISTORY = 20
"""Try records kept per task (the oldest are dropped): run status must stay small."""
_MAX_CLEARED_IDS = 16


# --- the compiled DAG ------------------------------------------------------------------------------


@dataclass(slots=True)
class _TaskPlan:
    """What the engine needs of one task, with the DAG's defaults applied (api.dag.effective_field).

    Built once per spec and never changed (not frozen only because frozen dataclasses
    are slow to build, and a 10,000-task spec builds 10,000 of them).
    """

    name: str
    index: int
    """Position in the spec's task list (file order)."""
    upstream: tuple[str, ...]
    downstream: tuple[str, ...]
    rule: TriggerRule
    runs_process: bool
    branch: bool
    short_circuit: bool
    depends_on_past: bool
    retries: int
    retry_delay: timedelta
    exponential_backoff: bool
    max_retry_delay: timedelta | None
    execution_timeout: timedelta | None
    execution_timeout_text: str | None
    gated: bool = False
    """Has upstream tasks and a rule other than always: it cannot move before one of them finishes."""
    chooses: bool = False
    """A branch or short-circuit task: its success may skip tasks downstream."""
    short_circuit_all: bool = True
    """A short circuit skips every descendant (else only the direct downstream tasks)."""
    leaf: bool = False
    """No downstream task: its failure fails the run."""
    rank: int = 0
    """Position in the topological order (the incremental pass visits tasks by rank)."""

    def __post_init__(self) -> None:
        self.gated = bool(self.upstream) and self.rule is not TriggerRule.always
        self.chooses = self.branch or self.short_circuit
        self.leaf = not self.downstream


@dataclass
class _Plan:
    """A DAG spec compiled for the engine: tasks in topological order and their edges."""

    spec: DAGSpec
    spec_tasks: int
    order: tuple[_TaskPlan, ...]
    by_name: dict[str, _TaskPlan]
    names: frozenset[str]
    max_active: int
    rows: tuple[tuple[str, _TaskPlan], ...] = ()
    """(name, task) in topological order: what the full pass iterates over."""
    timed: frozenset[str] = frozenset()
    """Tasks with an execution timeout (a running one is looked at on every call)."""
    past_bound: frozenset[str] = frozenset()
    """Tasks with dependsOnPast (a waiting one is looked at on every call: previous_run may change)."""
    _descendants: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def descendants(self, name: str) -> tuple[str, ...]:
        """Every task reachable downstream of `name` (memoized: the plan never changes)."""
        found = self._descendants.get(name)
        if found is None:
            seen: dict[str, None] = {}
            stack = list(self.by_name[name].downstream)
            while stack:
                task = stack.pop()
                if task not in seen:
                    seen[task] = None
                    stack.extend(self.by_name[task].downstream)
            found = self._descendants[name] = tuple(seen)
        return found


@lru_cache(maxsize=256)
def _duration(text: str | None) -> timedelta | None:
    """A parsed duration field (memoized: a big DAG repeats the same few values thousands of times)."""
    return None if text is None else durations.parse_duration(text)


_Settings = dict[str, Any]
_SETTING_NAMES = (
    "trigger_rule",
    "depends_on_past",
    "retries",
    "retry_delay",
    "retry_exponential_backoff",
    "max_retry_delay",
    "execution_timeout",
)
_SETTING_FIELDS = operator.attrgetter(*_SETTING_NAMES)


def _settings(spec: DAGSpec, task: Task) -> _Settings:
    """The _TaskPlan fields that come from task settings, with the DAG's defaults applied."""
    timeout_text = effective_field(spec, task, "execution_timeout")
    delay = _duration(effective_field(spec, task, "retry_delay"))
    return {
        "rule": effective_field(spec, task, "trigger_rule") or TriggerRule.all_success,
        "depends_on_past": bool(effective_field(spec, task, "depends_on_past")),
        "retries": effective_field(spec, task, "retries") or 0,
        "retry_delay": retries.DEFAULT_RETRY_DELAY if delay is None else delay,
        "exponential_backoff": bool(effective_field(spec, task, "retry_exponential_backoff")),
        "max_retry_delay": _duration(effective_field(spec, task, "max_retry_delay")),
        "execution_timeout": _duration(timeout_text),
        "execution_timeout_text": timeout_text,
    }


def _compile(spec: DAGSpec) -> _Plan:
    """Build the plan of a validated spec (core.validation.task_graph raises ValueError on a cycle)."""
    graph = validation.task_graph(spec)
    first: dict[str, tuple[int, Task]] = {}
    for position, task in enumerate(spec.tasks):
        first.setdefault(task.name, (position, task))
    plans: dict[str, _TaskPlan] = {}
    settings: dict[tuple[Any, ...], _Settings] = {}  # a big DAG repeats a few settings thousands of times
    for name in graph.topological_order:
        position, task = first[name]
        key = _SETTING_FIELDS(task)
        found = settings.get(key)
        if found is None:
            found = settings[key] = _settings(spec, task)
        plans[name] = _TaskPlan(
            name=name,
            index=position,
            upstream=graph.upstream[name],
            downstream=graph.downstream[name],
            runs_process=task.effective_type() is not TaskType.empty,
            branch=task.branch,
            short_circuit=task.short_circuit,
            short_circuit_all=task.ignore_downstream_trigger_rules is not False,
            **found,
        )
    order = tuple(plans.values())
    for rank, plan in enumerate(order):
        plan.rank = rank
    return _Plan(
        spec=spec,
        spec_tasks=len(spec.tasks),
        order=order,
        by_name=plans,
        names=frozenset(plans),
        max_active=spec.max_active_tasks,
        rows=tuple(plans.items()),
        timed=frozenset(p.name for p in order if p.execution_timeout is not None),
        past_bound=frozenset(p.name for p in order if p.depends_on_past),
    )


_PLANS: dict[int, _Plan] = {}
_PLANS_KEPT = 32


def _plan_for(spec: DAGSpec) -> _Plan:
    """The memoized plan of `spec` (keyed by identity; the plan holds the spec, so ids are not reused)."""
    plan = _PLANS.get(id(spec))
    if plan is not None and plan.spec is spec and plan.spec_tasks == len(spec.tasks):
        return plan
    plan = _compile(spec)
    if len(_PLANS) >= _PLANS_KEPT:
        _PLANS.clear()
    _PLANS[id(spec)] = plan
    return plan


# --- task transitions (each returns the new status, or the same object when nothing changes) ---------


def _with(status: TaskInstanceStatus, **changes: Any) -> TaskInstanceStatus:
    """`status` with `changes` applied; the same object if they change nothing (copy on write)."""
    for name, value in changes.items():
        if getattr(status, name) != value:
            return status.model_copy(update=changes)
    return status


def _with_history(status: TaskInstanceStatus) -> list[TryRecord]:
    """The try history with the current try recorded (once), before the task moves on from it."""
    tries = status.tries
    if status.try_number == 0 or (tries and tries[-1].try_number == status.try_number):
        return tries
    state = status.state if status.state in _FINISHED else TaskState.failed
    record = TryRecord(
        try_number=status.try_number,
        state=state,
        start_time=status.start_time,
        end_time=status.end_time,
        exit_code=status.exit_code,
        message=status.message,
    )
    return [*tries, record][-_MAX_HISTORY:]


def _begin_try(status: TaskInstanceStatus, try_number: int) -> TaskInstanceStatus:
    """The task queued for a new try: the previous try goes to history, per-try fields reset."""
    return status.model_copy(
        update={
            "state": TaskState.queued,
            "try_number": try_number,
            "tries": _with_history(status),
            "pod_name": None,
            "start_time": None,
            "end_time": None,
            "exit_code": None,
            "message": None,
            "next_try_at": None,
        }
    )


def _clear(status: TaskInstanceStatus, request_id: str) -> TaskInstanceStatus:
    """Airflow's Clear: back to `none`, so the task runs again as try_number + 1."""
    return status.model_copy(
        update={
            "state": TaskState.none,
            "tries": _with_history(status),
            "pod_name": None,
            "start_time": None,
            "end_time": None,
            "exit_code": None,
            "message": f"cleared by request {request_id}",
            "next_try_at": None,
        }
    )


def _fail_try(
    task: _TaskPlan,
    status: TaskInstanceStatus,
    *,
    message: str,
    end: datetime,
    start_time: datetime | None = None,
    exit_code: int | None = None,
) -> TaskInstanceStatus:
    """A failed try: up_for_retry while tries remain (try_number <= retries), else failed."""
    changes: dict[str, Any] = {
        "end_time": end,
        "message": message,
        "exit_code": exit_code,
        "start_time": start_time or status.start_time,
    }
    if status.try_number <= task.retries:
        delay = retries.retry_delay(
            failed_try=max(status.try_number, 1),
            delay=task.retry_delay,
            exponential=task.exponential_backoff,
            max_delay=task.max_retry_delay,
        )
        return _with(status, state=TaskState.up_for_retry, next_try_at=end + delay, **changes)
    return _with(status, state=TaskState.failed, next_try_at=None, **changes)


def _branch_problem(task: _TaskPlan, value: Any) -> str | None:
    """Why a branch task's return value cannot be followed, or None if it can."""
    try:
        chosen = branch_targets(value)
    except XComError as error:
        return str(error)
    unknown = [name for name in chosen if name not in task.downstream]
    if unknown:
        return (
            f"branch chose {', '.join(map(repr, unknown))}, not a direct downstream task of "
            f"{task.name!r} (direct downstream: {', '.join(task.downstream) or 'none'})"
        )
    return None


def _observe(
    task: _TaskPlan, status: TaskInstanceStatus, attempt: Attempt, now: datetime
) -> TaskInstanceStatus:
    """Fold one observed attempt into the task's status (see the module docstring for which apply)."""
    if attempt.try_number > status.try_number:
        status = _begin_try(status, attempt.try_number)
    elif attempt.try_number < status.try_number or status.state not in IN_FLIGHT:
        return status
    start = attempt.start_time if attempt.start_time else None
    phase = attempt.phase
    if phase is AttemptPhase.pending:
        return _with(status, state=TaskState.queued, message=attempt.message)
    if phase is AttemptPhase.running:
        return _with(
            status,
            state=TaskState.running,
            start_time=start or status.start_time or now,
            message=attempt.message,
        )
    end = attempt.end_time or now
    if phase is AttemptPhase.skipped:
        return _with(
            status,
            state=TaskState.skipped,
            start_time=start or status.start_time or end,
            end_time=end,
            exit_code=attempt.exit_code,
            message=attempt.message or "the task skipped itself",
            next_try_at=None,
        )
    if phase is AttemptPhase.succeeded:
        problem = _branch_problem(task, attempt.xcom) if task.branch else None
        if problem is None:
            return _with(
                status,
                state=TaskState.success,
                start_time=start or status.start_time or end,
                end_time=end,
                exit_code=attempt.exit_code,
                message=attempt.message,
                next_try_at=None,
            )
        return _fail_try(
            task, status, message=problem, end=end, start_time=start, exit_code=attempt.exit_code
        )
    message = attempt.message or (
        f"exit code {attempt.exit_code}" if attempt.exit_code is not None else "the try failed"
    )
    return _fail_try(task, status, message=message, end=end, start_time=start, exit_code=attempt.exit_code)


def _finish_without_running(
    status: TaskInstanceStatus, state: TaskState, message: str, now: datetime
) -> TaskInstanceStatus:
    """skipped / upstream_failed / (an empty task's) success, decided by the engine itself."""
    return _with(status, state=state, start_time=status.start_time or now, end_time=now, message=message)


# --- the engine's memory between calls -------------------------------------------------------------


@dataclass(slots=True, eq=False)
class _Index:
    """The task states of one status, grouped: what lets a call visit only the tasks that can move.

    Derived from the status alone (and `alive` from the attempts), so it is only ever a
    shortcut: a call that has none (a fresh process, a status the engine did not return
    last) builds it with one full pass and decides exactly the same.
    """

    plan: _Plan
    by_state: dict[TaskState, set[str]]
    failing_leaves: int
    """Leaf tasks that are failed or upstream_failed (any fails the run)."""
    alive: set[str] = field(default_factory=set)
    """Tasks whose latest observed attempt is pending or running."""
    status: DAGRunStatus | None = None
    """The status these are the states of (set once the call's status exists)."""

    @classmethod
    def build(cls, plan: _Plan, tasks: Mapping[str, TaskInstanceStatus]) -> _Index:
        by_state: dict[TaskState, set[str]] = {state: set() for state in TaskState}
        failing = 0
        for name, task in plan.rows:
            state = tasks[name].state
            by_state[state].add(name)
            if task.leaf and state in _FAILED:
                failing += 1
        return cls(plan=plan, by_state=by_state, failing_leaves=failing)

    def apply(self, work: _Pass) -> None:
        """Move the tasks written since the last apply to the groups of their new states."""
        by_name, by_state, tasks = self.plan.by_name, self.by_state, work.tasks
        changes, work.before = work.before, {}
        for name, old in changes.items():
            new = tasks[name].state
            if new is old:
                continue
            by_state[old].discard(name)
            by_state[new].add(name)
            if by_name[name].leaf:
                self.failing_leaves += (new in _FAILED) - (old in _FAILED)

    def count(self, states: Iterable[TaskState]) -> int:
        return sum(len(self.by_state[state]) for state in states)


class _Memory:
    """The index of the status each run's last call returned, keyed by that status object.

    Bounded (the oldest entries go first) and never needed for correctness: a status
    the memory does not hold, or holds for another spec, gets a full pass.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._indexes: dict[int, _Index] = {}

    def take(self, status: DAGRunStatus, plan: _Plan) -> _Index | None:
        index = self._indexes.pop(id(status), None)
        if index is None or index.status is not status or index.plan is not plan:
            return None
        return index

    def keep(self, index: _Index) -> None:
        if len(self._indexes) >= self._size:
            del self._indexes[next(iter(self._indexes))]
        self._indexes[id(index.status)] = index


_MEMORY = _Memory(size=64)


# --- one call ------------------------------------------------------------------------------------------


@dataclass
class _Pass:
    """The working state of one decide() call: task statuses being rewritten, and what to do."""

    plan: _Plan
    run: RunInput
    tasks: MutableMapping[str, TaskInstanceStatus]
    """The run's task statuses as this call rewrites them (a copy, or changes over the status); written
    only through put()."""
    now: datetime
    track: bool = True
    """Record in `before` what put() changes (off in a full pass until its index is built)."""
    before: dict[str, TaskState] = field(default_factory=dict)
    """Task -> its state before the first put() since the index last took the changes."""
    start: list[StartTry] = field(default_factory=list)
    ready: list[str] = field(default_factory=list)
    wake_at: datetime | None = None
    queue: list[int] | None = None
    """Ranks still to visit in an incremental pass (None in a full pass, which visits every task)."""

    def put(self, name: str, status: TaskInstanceStatus) -> None:
        if self.track:
            before = self.before
            if name not in before:
                before[name] = self.tasks[name].state
        self.tasks[name] = status

    def wake(self, moment: datetime) -> None:
        if self.wake_at is None or moment < self.wake_at:
            self.wake_at = moment

    def skip_unstarted(self, names: Iterable[str], message: str) -> None:
        """Skip the tasks among `names` that have not started (branch and short-circuit decisions)."""
        for name in names:
            status = self.tasks[name]
            if status.state in _WAITING:
                self.put(name, _finish_without_running(status, TaskState.skipped, message, self.now))
                if self.queue is not None:
                    heapq.heappush(self.queue, self.plan.by_name[name].rank)


def _new_clear(run: RunInput) -> bool:
    return run.clear is not None and run.clear[0] not in run.status.cleared


def _apply_clear(work: _Pass) -> list[str] | None:
    """Reset the tasks of a new clear request; the new `cleared` list, or None if nothing to apply."""
    run = work.run
    if run.clear is None or not _new_clear(run):
        return None
    request_id, names = run.clear
    for name in names:
        if name in work.plan.by_name:
            work.put(name, _clear(work.tasks[name], request_id))
    return [*run.status.cleared, request_id][-_MAX_CLEARED_IDS:]


def _enforce_choice(work: _Pass, task: _TaskPlan, status: TaskInstanceStatus) -> None:
    """A succeeded branch / short-circuit task skips what it did not choose (re-applied every call)."""
    attempt = work.run.attempts.get(task.name)
    if (
        attempt is None
        or attempt.try_number != status.try_number
        or attempt.phase is not AttemptPhase.succeeded
    ):
        return
    if task.short_circuit and is_falsy(attempt.xcom):
        skipped = work.plan.descendants(task.name) if task.short_circuit_all else task.downstream
        work.skip_unstarted(skipped, f"short-circuited by {task.name}")
    if task.branch and _branch_problem(task, attempt.xcom) is None:
        chosen = set(branch_targets(attempt.xcom))
        others = tuple(name for name in task.downstream if name not in chosen)
        work.skip_unstarted(others, f"not chosen by branch {task.name}")


def _past_problem(task: _TaskPlan, previous: Mapping[str, TaskState] | None) -> str | None:
    """Why dependsOnPast holds the task back, or None."""
    if not task.depends_on_past or previous is None or task.name not in previous:
        return None
    state = previous[task.name]
    if state in _PAST_OK:
        return None
    return f"dependsOnPast: waiting for {task.name} of the previous run to succeed (it is {state.value})"


def _step(work: _Pass, task: _TaskPlan) -> None:
    """Advance one unfinished task, its upstream tasks having been advanced already in this call."""
    tasks = work.tasks
    status = tasks[task.name]
    state = status.state
    now = work.run.now
    if state is TaskState.running and task.execution_timeout is not None and status.start_time:
        deadline = status.start_time + task.execution_timeout
        if now >= deadline:
            message = f"execution timeout after {task.execution_timeout_text}"
            status = _fail_try(task, status, message=message, end=now)
            work.put(task.name, status)
            state = status.state
        else:
            work.wake(deadline)
    if state in IN_FLIGHT or state in _FINISHED:  # in flight: counted later; finished: a timeout, for good
        return
    if state is TaskState.up_for_retry:
        due = status.next_try_at if status.next_try_at else now
        if due <= now:
            work.ready.append(task.name)
        else:
            work.wake(due)
        return
    # none or scheduled: the trigger rule decides.
    counts = triggers.count_states(tasks[up].state for up in task.upstream)
    verdict = triggers.evaluate(task.rule, counts)
    if verdict is triggers.Verdict.wait:
        if state is TaskState.scheduled:
            work.put(task.name, _with(status, state=TaskState.none, message=None))
        return
    if verdict is not triggers.Verdict.run:
        final = TaskState.skipped if verdict is triggers.Verdict.skip else TaskState.upstream_failed
        work.put(
            task.name,
            _finish_without_running(status, final, triggers.describe(task.rule, counts), work.now),
        )
        return
    problem = _past_problem(task, work.run.previous_run)
    if problem is not None:
        work.put(task.name, _with(status, state=TaskState.none, message=problem))
    elif not task.runs_process:
        work.put(task.name, _finish_without_running(status, TaskState.success, "empty task", work.now))
    else:
        work.ready.append(task.name)


def _visit(work: _Pass, task: _TaskPlan) -> None:
    """One task's turn in the pass (topological order): step it, or re-apply its branch choice.

    A waiting task none of whose upstream tasks has finished is passed over without a
    step: no trigger rule but `always` (which is not gated) can fire then.
    """
    tasks = work.tasks
    status = tasks[task.name]
    state = status.state
    if state not in _FINISHED:
        if state is _NONE and task.gated:
            for upstream in task.upstream:
                if tasks[upstream].state in _FINISHED:
                    break
            else:
                return
        _step(work, task)
    elif task.chooses and state is _SUCCESS:
        _enforce_choice(work, task, status)


def _settle_all(work: _Pass) -> None:
    """The full pass: every task in topological order (a fresh call, or after a clear)."""
    tasks = work.tasks
    done, none = _FINISHED, _NONE  # locals are faster in the loop
    for name, task in work.plan.rows:
        state = tasks[name].state
        if state is none and task.gated:  # the common case of a big DAG, inlined
            for upstream in task.upstream:
                if tasks[upstream].state in done:
                    break
            else:
                continue
        if state not in done or task.chooses:
            _visit(work, task)


def _settle_changed(work: _Pass, index: _Index) -> None:
    """The incremental pass: the same visits as the full pass, but only where one can change something.

    A task's visit can only change it if the task changed in this call, an upstream
    task finished in this call (trigger rules look at finished upstream states only,
    and those never change but by a clear, which gets a full pass), or its visit
    depends on `now` or `previous_run` (scheduled tasks waiting for a slot, retries,
    running tries with a timeout, waiting dependsOnPast tasks). Those are visited in
    topological order; each task that finishes queues its downstream tasks.
    """
    plan, tasks = work.plan, work.tasks
    by_state, by_name, order = index.by_state, plan.by_name, plan.order
    before = work.before
    visit: set[str] = set(before)
    visit.update(by_state[TaskState.scheduled], by_state[TaskState.up_for_retry])
    if plan.timed:
        visit.update(plan.timed & by_state[TaskState.running])
    if plan.past_bound:
        visit.update(name for name in plan.past_bound if tasks[name].state in _WAITING)
    queue = work.queue = [by_name[name].rank for name in visit]
    heapq.heapify(queue)
    done = _FINISHED
    last = -1
    while queue:
        rank = heapq.heappop(queue)
        if rank <= last:
            continue  # queued twice (everything queued during the pass ranks after the task queuing it)
        last = rank
        task = order[rank]
        _visit(work, task)
        was = before.get(task.name)
        if was is not None and was not in done and tasks[task.name].state in done:
            for name in task.downstream:
                heapq.heappush(queue, by_name[name].rank)
            if len(queue) * 4 > len(order) and type(tasks) is ChainMap:
                work.tasks = tasks = _as_dict(tasks)  # a big fan-out: many reads ahead, faster on a dict
    work.queue = None


def _start_ready(work: _Pass, in_flight: int) -> None:
    """Give free maxActiveTasks slots to ready tasks in topological order; the rest are scheduled."""
    free = max(0, work.plan.max_active - in_flight)
    for name in work.ready[:free]:
        status = work.tasks[name]
        work.put(name, _begin_try(status, status.try_number + 1))
        work.start.append(StartTry(name, status.try_number + 1))
    for name in work.ready[free:]:
        status = work.tasks[name]
        if status.state is TaskState.none:
            work.put(
                name,
                _with(
                    status,
                    state=TaskState.scheduled,
                    message=f"waiting for a slot (maxActiveTasks {work.plan.max_active})",
                ),
            )


def _fold(work: _Pass, name: str, attempt: Attempt) -> None:
    status = work.tasks[name]
    folded = _observe(work.plan.by_name[name], status, attempt, work.run.now)
    if folded is not status:
        work.put(name, folded)


def _reconcile_all(work: _Pass) -> set[str]:
    """Fold every observed attempt into its task; the tasks whose observed try is still alive.

    Most attempts are old news (folded in by an earlier call, their task has moved
    on): one comprehension picks out the few that are not, as the run may have
    thousands of attempts.
    """
    run, plan = work.run, work.plan
    tasks_get, in_flight, alive_phases = work.tasks.get, IN_FLIGHT, _ALIVE
    news = [
        (name, attempt)
        for name, attempt in run.attempts.items()
        if (status := tasks_get(name)) is not None
        and (
            attempt.phase in alive_phases
            or attempt.try_number != status.try_number
            or status.state in in_flight
        )
        and name in plan.names
    ]
    alive: set[str] = set()
    for name, attempt in news:
        if attempt.phase in _ALIVE:
            alive.add(name)
        _fold(work, name, attempt)
    return alive


def _reconcile_changed(work: _Pass, alive: set[str], changed: Iterable[str]) -> None:
    """Fold the attempts the shell says changed; keep `alive` up to date for them."""
    run, plan = work.run, work.plan
    for name in changed:
        attempt = run.attempts.get(name)
        if attempt is None or name not in plan.names:
            alive.discard(name)
            continue
        if attempt.phase in _ALIVE:
            alive.add(name)
        else:
            alive.discard(name)
        _fold(work, name, attempt)


def _unlaunched(work: _Pass, queued: Iterable[str]) -> list[StartTry]:
    """StartTry again for queued tries no attempt of which is observed yet (a launch may have been lost)."""
    attempts, tasks, by_name = work.run.attempts, work.tasks, work.plan.by_name
    waiting = [
        name
        for name in queued
        if (attempt := attempts.get(name)) is None or attempt.try_number < tasks[name].try_number
    ]
    waiting.sort(key=lambda name: by_name[name].rank)
    return [StartTry(name, tasks[name].try_number) for name in waiting]


def _stale_tries(work: _Pass, alive: Iterable[str]) -> list[StopTry]:
    """Observed tries still pending or running that the engine no longer counts in flight."""
    stops: list[tuple[int, StopTry]] = []
    for name in alive:
        attempt = work.run.attempts.get(name)
        if attempt is None:
            continue
        status = work.tasks[name]
        if attempt.try_number == status.try_number:
            if status.state in IN_FLIGHT:
                continue
            # Only two things take a live try out of flight: an execution timeout, or a clear.
            timed_out = status.state in (TaskState.up_for_retry, TaskState.failed) and status.message
            reason = status.message if timed_out and status.message else "the task was cleared"
        elif attempt.try_number < status.try_number:
            reason = f"superseded by try {status.try_number}"
        else:
            continue
        stops.append((work.plan.by_name[name].index, StopTry(name, attempt.try_number, reason)))
    return [stop for _, stop in sorted(stops, key=lambda item: item[0])]


def _as_dict(tasks: Mapping[str, TaskInstanceStatus]) -> dict[str, TaskInstanceStatus]:
    """A plain dict of `tasks` (a TaskMap, a dict, or this call's changes over the old map)."""
    if type(tasks) is ChainMap:
        merged = _as_dict(tasks.maps[1])
        merged.update(tasks.maps[0])
        return merged
    return tasks.to_dict() if type(tasks) is TaskMap else dict(tasks)


def _new_tasks(work: _Pass) -> TaskMap:
    """The task statuses of the new status: the changes over the old map, or the full pass's copy."""
    tasks, old = work.tasks, work.run.status.tasks
    if type(tasks) is ChainMap and type(old) is TaskMap:
        return old.updated(tasks.maps[0])
    return TaskMap(tasks)


def _run_status(work: _Pass, index: _Index, cleared: list[str] | None) -> DAGRunStatus:
    """The run's new status: Airflow's run state rule over the task states just decided."""
    previous = work.run.status
    total = len(work.plan.order)
    finished = index.count(_FINISHED)
    if finished == total:
        state = RunState.failed if index.failing_leaves else RunState.success
    elif len(index.by_state[TaskState.none]) == total and previous.start_time is None:
        state = RunState.queued
    else:
        state = RunState.running
    start_time = previous.start_time
    if state is not RunState.queued and start_time is None:
        start_time = work.now
    end_time = None
    if state.finished:
        end_time = previous.end_time if previous.state.finished and previous.end_time else work.now
    update: dict[str, Any] = {
        "state": state,
        "start_time": start_time,
        "end_time": end_time,
        "tasks": _new_tasks(work),
        "tasks_summary": f"{finished}/{total}",
    }
    if cleared is not None:
        update["cleared"] = cleared
    return previous.model_copy(update=update)


def decide(run: RunInput, *, remember: bool = True) -> Decision:
    """Compute the next decision for a run. Pure: same input, same output; the input is never mutated.

    The returned status shares unchanged task statuses with `run.status` (copy on
    write); treat both as immutable. With `remember` (the default) the engine keeps
    an index of the returned status, so that the next call given that status (and
    `RunInput.changed`) visits only what can move; `remember=False` neither uses nor
    keeps one (a shell that never passes back the status as returned, or a test
    asking what a process with no memory decides).
    """
    plan = _plan_for(run.dag)
    index = _MEMORY.take(run.status, plan) if remember else None
    if _new_clear(run):
        index = None  # a clear moves tasks back where nothing else does: a full pass
    tasks: MutableMapping[str, TaskInstanceStatus]
    if index is None:
        tasks = _as_dict(run.status.tasks)  # a full pass reads every task: a plain dict is fastest
        if not tasks.keys() >= plan.names:
            for task in plan.order:
                if task.name not in tasks:
                    tasks[task.name] = _NEVER_STARTED  # one shared object: statuses are copied on write
    else:
        # The status the engine returned last: it has every task. Writes go to a dict of
        # changes over it, and the new status shares everything else (TaskMap.updated).
        tasks = ChainMap({}, cast(MutableMapping[str, TaskInstanceStatus], run.status.tasks))  # (read only)
    # A full pass indexes the states once it is done, so it need not track what it changes.
    work = _Pass(plan=plan, run=run, tasks=tasks, now=run.now, track=index is not None)
    cleared = _apply_clear(work)
    if cleared is not None:
        # A cleared run is not finished any more; its previous end no longer counts.
        work.run = replace(
            run, status=run.status.model_copy(update={"state": RunState.running, "end_time": None})
        )
    if index is None:
        alive = _reconcile_all(work)
        _settle_all(work)
        index = _Index.build(plan, tasks)
        index.alive = alive
        work.track = True
    else:
        if run.changed is None or len(run.changed) * 4 > len(plan.order):
            work.tasks = _as_dict(work.tasks)  # most tasks will be read: faster on a dict
        if run.changed is None:
            index.alive = _reconcile_all(work)
        else:
            _reconcile_changed(work, index.alive, run.changed)
        if len(work.before) * 4 > len(plan.order):
            # A quarter of the tasks changed: visiting all in order is cheaper, on a plain dict.
            if type(work.tasks) is ChainMap:
                work.tasks = _as_dict(work.tasks)
            _settle_all(work)
        else:
            _settle_changed(work, index)
        index.apply(work)
    queued = index.by_state[TaskState.queued]
    work.start = _unlaunched(work, queued)
    _start_ready(work, len(queued) + len(index.by_state[TaskState.running]))
    index.apply(work)
    stops = _stale_tries(work, index.alive)
    status = _run_status(work, index, cleared)
    if remember and not status.state.finished:
        index.status = status
        _MEMORY.keep(index)
    return Decision(status=status, start=work.start, stop=stops, wake_at=work.wake_at)


# --- run states decided outside the pass: held, stalled, interrupted --------------------------------

INTERRUPTED = "run interrupted"
"""The message of tries and runs ended by a stop request (Ctrl-C, SIGTERM)."""


def held(status: DAGRunStatus, hold: runstatus.Hold, *, now: datetime) -> DAGRunStatus | None:
    """A run that may not start yet: queued, its Admitted=False condition saying why.

    None when the status already says exactly that (nothing to write).
    """
    condition = runstatus.admitted_condition(hold)
    current = next((c for c in status.conditions if c.type == condition.type), None)
    if current is not None and (current.status, current.reason, current.message) == (
        condition.status,
        condition.reason,
        condition.message,
    ):
        return None
    return status.model_copy(
        update={
            "state": RunState.queued,
            "conditions": runstatus.set_condition(status.conditions, condition, now=now),
        }
    )


def stalled(decision: Decision, attempts: Mapping[str, Attempt]) -> bool:
    """Nothing can ever move without an outside event: the run is unfinished, no try is alive or
    to be started, and no wake-up is due (dependsOnPast on a failed previous run, for example).

    The operator waits for that event (another run ending); a local run has none to wait for.
    """
    return (
        not decision.finished
        and not decision.start
        and decision.wake_at is None
        and not any(attempt.phase in _ALIVE for attempt in attempts.values())
    )


def stalled_status(status: DAGRunStatus, *, now: datetime) -> DAGRunStatus:
    """The final status of a stalled run that nothing will wake: failed; waiting tasks keep their
    state and the message saying why they wait."""
    return status.model_copy(update={"state": RunState.failed, "end_time": now})


def waiting_reasons(status: DAGRunStatus) -> list[str]:
    """`task: why it waits` for each unfinished task (what a stalled run reports)."""
    return [
        f"{task}: {instance.message or instance.state.value}"
        for task, instance in status.tasks.items()
        if not instance.state.finished
    ]


def interrupted(
    dag: DAGSpec, status: DAGRunStatus, attempts: Mapping[str, Attempt], *, now: datetime
) -> DAGRunStatus:
    """The final status of a stopped run: tried tasks failed, untried ones none, the run failed.

    `attempts` are the tries as last observed, after every try was stopped.
    """
    tasks: dict[str, TaskInstanceStatus] = {}
    for task, instance in status.tasks.items():
        attempt = attempts.get(task)
        if instance.state.finished:
            tasks[task] = instance
        elif attempt is not None and attempt.try_number >= instance.try_number:
            tasks[task] = _with(
                instance,
                state=TaskState.failed,
                try_number=attempt.try_number,
                start_time=attempt.start_time if attempt.start_time else instance.start_time,
                end_time=attempt.end_time or now,
                exit_code=attempt.exit_code,
                message=INTERRUPTED,
                next_try_at=None,
            )
        elif instance.try_number >= 1:
            tasks[task] = _with(
                instance,
                state=TaskState.failed,
                message=f"{INTERRUPTED} before the next try",
                next_try_at=None,
            )
        else:
            tasks[task] = _with(
                instance, state=TaskState.none, message=f"{INTERRUPTED} before the task started"
            )
    finished = sum(1 for instance in tasks.values() if instance.state in _FINISHED)
    return status.model_copy(
        update={
            "state": RunState.failed,
            "tasks": TaskMap(tasks),
            "end_time": now,
            "tasks_summary": f"{finished}/{len(dag.tasks)}",
        }
    )
