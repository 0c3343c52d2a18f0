"""The run state machine: one pure function from what is observed to what to do.

`decide(RunInput) -> Decision` is the whole contract between the engine and its two
shells (the kopf operator and the local runner). It does no I/O and never reads the
clock: `now` is an argument, and the returned `wake_at` tells the shell when the
engine next needs to be called even if nothing is observed to change (a retry delay
ending, an execution timeout, a sensor poke).

Level-triggered: the engine recomputes every task state from the spec, the last
status it wrote (its only memory: try numbers, retry times, cleared requests) and the
latest observed attempt of each task. Calling it twice with the same input gives the
same decision, and a decision repeated because the shell had not yet observed its
effect is harmless, since the shell names every try deterministically.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from kubeflowlite.api.dag import DAGSpec
from kubeflowlite.api.dagrun import DAGRunStatus, TaskState


class AttemptPhase(str, Enum):
    """What the shell observed of one try: a Pod's phase, or a subprocess's lifecycle."""

    pending = "pending"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class _Missing(Enum):
    MISSING = "MISSING"


NO_XCOM = _Missing.MISSING
"""Marker: the try pushed no return value (distinct from pushing null)."""


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class StartTry:
    """Launch try `try_number` of `task` (a Pod, a subprocess, or a controller-side action)."""

    task: str
    try_number: int


@dataclass(frozen=True)
class StopTry:
    """Terminate a running try (execution timeout, or the run was failed)."""

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


def decide(run: RunInput) -> Decision:
    """Compute the next decision for a run. Pure: same input, same output."""
    raise NotImplementedError  # implemented in the engine issue
