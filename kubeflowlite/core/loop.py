"""The observe -> decide -> act loop, written once for both shells, over one execution port.

The port (`Launcher`, Dagster's StepHandler in our terms) is what a shell does to
task tries: `observe` every task's latest try as an engine `Attempt`, `launch`
tries ("make sure this try exists": names are deterministic, so a repeat is
harmless), `stop` tries. Its two implementations are the operator's Pod launcher
(k8s.run_controller: Pods, plus the sensor and triggerDag tries it runs itself)
and the local runner's subprocess launcher (local.runner over local.launcher).
Nothing here knows which one runs.

One pass (`one_pass`) is the decision sequence both shells follow:

1. observe every try;
2. ask the engine (`engine.decide`);
3. launch the tries it starts; a launch that has its outcome at once (a template
   that fails, a Pod the API server refuses, a sensor's first poke) is folded in
   and the engine is asked again, in the same pass, until no launch has an
   immediate outcome, so a retry or a downstream decision never waits for another
   pass;
4. stop the tries it stops;
5. hand back the decision (the status to record, when to be woken).

The operator's I/O is asynchronous and the local runner's is not, so the pass is
written as a generator of requests to the port (sans-I/O): `run_pass` serves them
with a `Launcher`, `run_pass_async` with an `AsyncLauncher` (the same port,
awaited). Each shell then records the status and waits (the operator's work queue
timer, the local runner's selector) as it must; the states themselves are only
ever decided by the engine (including a run that is held, stalled or interrupted).
"""

from __future__ import annotations

from collections.abc import Collection, Generator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from kubeflowlite.api.dag import DAGSpec
from kubeflowlite.api.dagrun import DAGRunStatus, TaskState
from kubeflowlite.core import engine
from kubeflowlite.core.engine import Attempt, Decision, RunInput, StartTry, StopTry


class Launcher(Protocol):
    """The execution port: what a shell does to task tries."""

    def observe(self) -> Mapping[str, Attempt]:
        """Task id -> its latest try as observed now (tasks never launched are absent)."""
        ...

    def launch(self, starts: Sequence[StartTry]) -> Mapping[str, Attempt]:
        """Make sure these tries exist; returns the outcomes known at once (task id -> attempt)."""
        ...

    def stop(self, stops: Sequence[StopTry]) -> None:
        """Terminate these tries (they report failed once they have ended)."""
        ...


class AsyncLauncher(Protocol):
    """`Launcher` for a shell whose I/O is asynchronous (the operator)."""

    async def observe(self) -> Mapping[str, Attempt]: ...

    async def launch(self, starts: Sequence[StartTry]) -> Mapping[str, Attempt]: ...

    async def stop(self, stops: Sequence[StopTry]) -> None: ...


@dataclass(frozen=True)
class Observe:
    """Request: the port's `observe`."""


@dataclass(frozen=True)
class Launch:
    """Request: the port's `launch`."""

    starts: tuple[StartTry, ...]


@dataclass(frozen=True)
class Stop:
    """Request: the port's `stop`."""

    stops: tuple[StopTry, ...]


Request = Observe | Launch | Stop


@dataclass(frozen=True)
class Ask:
    """How to ask the engine about one run in this pass (everything but the attempts)."""

    dag: DAGSpec
    status: DAGRunStatus
    """The status recorded last (the engine's own, or as the shell decorated it)."""
    now: datetime
    previous_run: Mapping[str, TaskState] | None = None
    clear: tuple[str, tuple[str, ...]] | None = None
    remember: bool = True
    """False for a shell that passes back a decorated status (see engine.decide)."""
    seen: Mapping[str, Attempt] | None = None
    """The attempts the previous pass ended with, so the engine is told what changed (None: unknown)."""


@dataclass(frozen=True)
class Outcome:
    """The end of one pass."""

    decision: Decision
    attempts: Mapping[str, Attempt]
    """What the engine was last given: every observed try and every immediate outcome."""
    launched: bool
    """Some tries were launched without an immediate outcome (the shell may want to observe them soon)."""


def one_pass(ask: Ask) -> Generator[Request, object, Outcome]:
    """One observe -> decide -> act pass, as requests to the port (send each request's answer back)."""
    observed = yield Observe()
    attempts = dict(_attempts(observed))
    decision = _decide(ask, attempts, changed=_changed(ask.seen, attempts))
    launched = False
    asked: set[tuple[str, int]] = set()
    for _ in range(len(ask.dag.tasks) + 1):
        new = tuple(start for start in decision.start if (start.task, start.try_number) not in asked)
        if not new:
            break
        asked.update((start.task, start.try_number) for start in new)
        immediate = _attempts((yield Launch(new)))
        launched = launched or len(immediate) < len(new)
        if not immediate:
            break
        attempts.update(immediate)
        # Asked again from the same status: the engine adopts the immediate outcomes like any attempt.
        decision = _decide(ask, attempts, changed=None)
    if decision.stop:
        yield Stop(tuple(decision.stop))
    return Outcome(decision=decision, attempts=attempts, launched=launched)


def run_pass(ask: Ask, launcher: Launcher) -> Outcome:
    """One pass, its requests served by a synchronous port."""
    steps = one_pass(ask)
    answer: object = None
    while True:
        try:
            request = steps.send(answer)
        except StopIteration as done:
            outcome: Outcome = done.value
            return outcome
        if isinstance(request, Observe):
            answer = launcher.observe()
        elif isinstance(request, Launch):
            answer = launcher.launch(request.starts)
        else:
            launcher.stop(request.stops)
            answer = None


async def run_pass_async(ask: Ask, launcher: AsyncLauncher) -> Outcome:
    """One pass, its requests served by an asynchronous port."""
    steps = one_pass(ask)
    answer: object = None
    while True:
        try:
            request = steps.send(answer)
        except StopIteration as done:
            outcome: Outcome = done.value
            return outcome
        if isinstance(request, Observe):
            answer = await launcher.observe()
        elif isinstance(request, Launch):
            answer = await launcher.launch(request.starts)
        else:
            await launcher.stop(request.stops)
            answer = None


def _decide(ask: Ask, attempts: Mapping[str, Attempt], *, changed: Collection[str] | None) -> Decision:
    return engine.decide(
        RunInput(
            dag=ask.dag,
            status=ask.status,
            attempts=attempts,
            now=ask.now,
            previous_run=ask.previous_run,
            clear=ask.clear,
            changed=changed,
        ),
        remember=ask.remember,
    )


def _attempts(answer: object) -> Mapping[str, Attempt]:
    assert isinstance(answer, Mapping), f"the port answered {answer!r}"
    return answer


def _changed(seen: Mapping[str, Attempt] | None, attempts: Mapping[str, Attempt]) -> list[str] | None:
    """The tasks whose attempt differs from the last pass's (what the engine needs to look at)."""
    if seen is None:
        return None
    gone = [task for task in seen if task not in attempts]
    return [task for task, attempt in attempts.items() if seen.get(task) != attempt] + gone
