"""The DAGRun reconcile: observe the run's Pods, ask the engine, act, write status once.

Level-triggered, in kubebuilder's shape: load the run (from the view, never the
API), list its children (Pods by the `kubeflowlite.io/run` label, from the view),
fold them into attempts and ask the engine: one pass of the loop both shells share
(core.loop; `_PodTries` is this shell's side of its launcher port), then act:

1. XCom values of succeeded tries are stored (one ConfigMap write) *before*
   anything else, so the engine's "success" is never persisted ahead of its value;
2. Pods for StartTry are created (deterministic names: AlreadyExists after a
   crash just means "already done") and Pods for StopTry deleted, concurrently
   with
3. one merge patch of the run's status (only the difference, and only if the
   status changed; while a wide run is still launching, at most every
   STATUS_WRITES_WHILE_LAUNCHING seconds), then podCleanup deletes what the
   persisted status allows;
4. the reconcile returns when it next needs to run (retry delays, timeouts, a
   Pending Pod's deadline, a sensor's poke): the work queue's timer, no polling.

The engine's only memory is the run status. The controller keeps, per run
(`RunMemory`), the status it last wrote and the one its last pass decided: it is
the only writer, so that copy is what the server holds even before the watch
echoes it back, and reconciles never act on a stale status. After a restart the
memory is rebuilt from the watched objects and the run's Pods.

Tasks without a Pod (sensor, triggerDag) are evaluated in the controller
(inline_tasks); a try that fails before it runs (a template error, a Pod the API
server rejects) becomes an immediate failed attempt, and the engine is asked
again in the same reconcile, so a retry or a downstream decision never waits for
another event.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import math
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pydantic import ValidationError

from kubeflowlite.api.dag import DAGSpec, Task, effective_field
from kubeflowlite.api.dagrun import DAGRunSpec, DAGRunStatus, RunState, RunType
from kubeflowlite.api.times import format_time, parse_time
from kubeflowlite.core import engine, loading, loop, runstatus
from kubeflowlite.core.engine import IN_FLIGHT, Attempt, AttemptPhase
from kubeflowlite.core.schedule import Schedule
from kubeflowlite.core.validation import InvalidDAGError
from kubeflowlite.k8s import (
    inline_tasks,
    kube,
    launch,
    metrics,
    names,
    observe,
    outcomes,
    patches,
    pysource,
    runtime_config,
    workqueue,
    xcom_store,
)
from kubeflowlite.k8s import run_rules as rules
from kubeflowlite.k8s.view import ClusterView, Obj

logger = logging.getLogger(__name__)

Key = tuple[str, str, str]
"""Work queue keys: ("run" | "dag", namespace, name)."""

_PERMANENT_CREATE_ERRORS = inline_tasks.PERMANENT_CREATE_ERRORS
"""Pod create failures that a retry of the same manifest cannot fix: the try fails instead."""
LAUNCH_GRACE = 30.0
"""Seconds a created Pod may take to show up in the watch before a reconcile creates it again."""
MAX_CREATES = 1000
"""Pods prepared and not yet created, summed over all runs' passes, beyond which a pass prepares
no more than MIN_PASS_CREATES; the rest go in the next pass (workqueue.CONTINUE: queued at once,
not spaced). A 10,000-task fan-out so writes its status, and records its first finished tasks,
while it is still launching, and the manifests in hand stay bounded however many runs launch
together (the heap keeps the high-water mark of a launch burst: ten 1,000-task runs launched in
passes of 500 each left the operator at 152 MiB with 10,000 tasks in flight, in passes of 200 at
143 MiB, with this budget at 141 MiB; bench_operator --inflight 10000). One wide run alone is
launched in one pass: passes of 200 left the API server idle between them (a 1,000-task fan-out's
Pods were created 4.4x faster than they were bound in passes of 200; in one pass, with
STATUS_WRITES_WHILE_LAUNCHING, 5.8x, the median of 3 runs of bench_operator --fanout 1000)."""
MIN_PASS_CREATES = 200
"""Pods a pass may always prepare, whatever the other runs hold (no run waits for another's burst)."""
STATUS_WRITES_WHILE_LAUNCHING = 5.0
"""Seconds between status writes of a run while its launch passes continue (work.more). Each write
of a wide run costs the API server a decode, validation, managedFields update and watch events of
the whole object (1,000 tasks: about 0.1 CPU-s), taken from the Pod creates going on at the same
time. These passes never wait: the first, the last launch pass, and any that changes the run's
state. Meanwhile the run's Pods are the record (a restarted operator finds them, as it finds any
Pod created before the status said so)."""
_SOON = 0.001
"""The wait for a wake-up already due: a timer, so the work queue's spacing still applies (0 is CONTINUE)."""
CREATES_IN_FLIGHT = 32
"""Creates one reconcile has in flight at once: the client's other requests (other runs' creates and
status writes, this run's own status write) never queue behind thousands of them, and with the
watches they fit the operator's connection pool (operator.CONNECTIONS). A 1,000-task fan-out
created its Pods 3.5x faster than the scheduler bound them with 24, 4.4x with 32 (bench_operator)."""


def run_key(namespace: str, name: str) -> Key:
    return ("run", namespace, name)


def dag_key(namespace: str, name: str) -> Key:
    return ("dag", namespace, name)


@dataclass
class RunMemory:
    """What the controller last wrote for one run (it is the only writer of run status)."""

    uid: str
    status: DAGRunStatus
    """The run's status as the controller knows it: what the next pass continues from."""
    wire: dict[str, Any]
    """The status as stored on the server (camelCase): what the next patch is computed against. Less
    `dagSpec` once the server holds it (`spec_stored`): a snapshot never changes once written, and its
    stored form of a 10,000-task DAG is megabytes."""
    wire_of: DAGRunStatus
    """The status `wire` was made of (`status` itself, unless a write waits: STATUS_WRITES_WHILE_LAUNCHING)."""
    resource_version: str | None = None
    spec: DAGSpec | None = None
    """The DAG spec snapshot once the run has started (parsed once; the engine memoizes by identity)."""
    spec_stored: DAGSpec | None = None
    """The snapshot the server holds in `status.dagSpec` (written once, with the run's first status)."""
    launch_failures: dict[str, Attempt] = field(default_factory=dict)
    """Tries whose Pod the API server refused; reported as failed attempts until the engine moves on."""
    launched: dict[str, float] = field(default_factory=dict)
    """Pods created (or found existing) but not yet seen in the view -> when (monotonic): not re-created
    while the watch catches up, unless that takes longer than LAUNCH_GRACE."""
    folded: dict[str, tuple[str, Attempt, datetime | None]] = field(default_factory=dict)
    """Pod name -> (resourceVersion, Attempt, valid until): a Pod that did not change is not folded again
    (a Pending Pod's attempt holds until its pending timeout; any other's for good)."""
    written_at: float = -math.inf
    """When (monotonic) the status was last patched."""


@dataclass(frozen=True)
class RunSettings:
    pending_timeout: timedelta = observe.DEFAULT_PENDING_TIMEOUT
    variables: Mapping[str, str] = field(default_factory=dict)
    """Airflow Variables for templates ({{ var.value.x }}), from the operator's KFL_VAR_* environment
    (the namespace's labelled ConfigMaps are added to them, k8s.runtime_config)."""
    read_connection_secrets: bool = True
    """List the namespace's connection Secrets; off: tasks refer to them by their CLI names only."""


def _now() -> datetime:
    return datetime.now(UTC)


class PodSeeding(Protocol):
    """The Pod cache's part in a reconcile (k8s.podwatch.PodCache): complete a run's Pods, let them go."""

    async def seed(self, namespace: str, run_name: str) -> None: ...

    def release(self, namespace: str, run_name: str) -> None: ...


class RunController:
    """Reconciles DAGRuns; one instance per operator, called by the work queue."""

    def __init__(
        self,
        *,
        client: kube.Kube,
        view: ClusterView,
        xcoms: xcom_store.RunStore,
        enqueue: Callable[[Hashable], None],
        settings: RunSettings | None = None,
        clock: Callable[[], datetime] = _now,
        monotonic: Callable[[], float] = time.monotonic,
        pods: PodSeeding | None = None,
    ) -> None:
        self.client = client
        self.view = view
        self.xcoms = xcoms
        self.enqueue = enqueue
        self.settings = settings or RunSettings()
        self.clock = clock
        self.monotonic = monotonic
        """The clock of launch grace periods (a test seam, as `clock` is for run times)."""
        self.pods = pods
        """None: the view always holds every Pod of every run (a test's view)."""
        self.namespace_config = runtime_config.NamespaceConfigCache(
            client, read_secrets=self.settings.read_connection_secrets
        )
        self._memory: dict[tuple[str, str], RunMemory] = {}
        self.in_hand = 0
        """Pod manifests prepared by the passes under way and not yet created (MAX_CREATES)."""
        self._dag_specs: dict[str, tuple[int | None, tuple[DAGSpec | None, str | None]]] = {}
        """DAG uid -> (generation, its parsed spec or problems): see dag_spec."""

    # -- memory -----------------------------------------------------------------------------------

    def forget(self, namespace: str, name: str) -> None:
        """The run is gone: drop everything remembered about it."""
        self._memory.pop((namespace, name), None)
        self.xcoms.forget(namespace, name)
        if self.pods is not None:
            self.pods.release(namespace, name)

    def _memory_for(self, namespace: str, name: str, body: Obj) -> RunMemory:
        metadata = body.get("metadata") or {}
        uid = str(metadata.get("uid") or "")
        memory = self._memory.get((namespace, name))
        if memory is not None and memory.uid == uid:
            return memory
        wire = dict(body.get("status") or {})
        try:
            status = DAGRunStatus.model_validate(wire)
        except ValidationError:
            logger.warning("run %s/%s: unreadable status, starting from scratch", namespace, name)
            status, wire = DAGRunStatus(), {}
        wire.pop("dagSpec", None)
        spec = status.dag_spec
        if spec is not None:
            spec = self._shared_spec(namespace, (body.get("spec") or {}).get("dagName"), spec)
            status = status.model_copy(update={"dag_spec": spec})
        memory = RunMemory(
            uid=uid,
            status=status,
            wire=wire,
            wire_of=status,
            resource_version=metadata.get("resourceVersion"),
            spec=spec,
            spec_stored=spec,
        )
        self._memory[(namespace, name)] = memory
        return memory

    def current(self, run: Obj) -> Obj:
        """`run` with the status this controller last wrote (fresher than the watch's copy), less its
        `dagSpec` once the server holds that (RunMemory.wire): readers of runs here read their state."""
        metadata = run.get("metadata") or {}
        memory = self._memory.get((metadata.get("namespace", ""), metadata.get("name", "")))
        if memory is None or memory.uid != metadata.get("uid"):
            return run
        return {**run, "status": memory.wire}

    def written(self, namespace: str, name: str) -> Mapping[str, Any]:
        """The status this controller last wrote for the run (stored form, less `dagSpec`), if it holds one."""
        memory = self._memory.get((namespace, name))
        return memory.wire if memory is not None else {}

    def run_spec(self, namespace: str, name: str) -> DAGSpec | None:
        """The DAG spec the run started with, parsed, if this controller holds the run: what its
        `status.dagSpec` holds (this controller writes it, from this object; nothing else does)."""
        memory = self._memory.get((namespace, name))
        return memory.spec if memory is not None else None

    def runs_of_dag(self, namespace: str, dag: str) -> list[Obj]:
        return [self.current(run) for run in self.view.runs_of_dag(namespace, dag)]

    def dag_spec(self, dag: Obj | None) -> tuple[DAGSpec | None, str | None]:
        """The DAG's validated spec, or None and the problems.

        Parsed once per DAG generation, and that one object is shared: by the DAG controller,
        the gauges and every run started from that generation (their `RunMemory.spec`). A new
        generation replaces it; runs already started keep theirs.
        """
        if dag is None:
            return None, None
        metadata = dag.get("metadata") or {}
        uid, generation = str(metadata.get("uid")), metadata.get("generation")
        cached = self._dag_specs.get(uid)
        if cached is None or cached[0] != generation:
            try:
                parsed = loading.parse_dag(dict(dag), source=f"DAG {metadata.get('name')}")
                result: tuple[DAGSpec | None, str | None] = (parsed.spec, None)
            except InvalidDAGError as error:
                result = (None, "; ".join(str(issue) for issue in error.issues))
            if cached is None and len(self._dag_specs) >= 1024:
                self._dag_specs.clear()
            cached = self._dag_specs[uid] = (generation, result)
        return cached[1]

    def _shared_spec(self, namespace: str, dag_name: object, spec: DAGSpec) -> DAGSpec:
        """A snapshot read back from a run, replaced by an equal spec already held (the DAG's current
        one, or another run's): after a restart, runs of one DAG generation share one parsed spec."""
        dag_name = str(dag_name or "")
        held = [self.dag_spec(self.view.dag(namespace, dag_name))[0]]
        for run in self.view.runs_of_dag(namespace, dag_name):
            memory = self._memory.get((namespace, str((run.get("metadata") or {}).get("name") or "")))
            if memory is not None:
                held.append(memory.spec)
        seen: set[int] = set()
        for candidate in held:
            if candidate is None or id(candidate) in seen:
                continue
            seen.add(id(candidate))
            if candidate is spec or (len(candidate.tasks) == len(spec.tasks) and candidate == spec):
                return candidate
        return spec

    # -- the reconcile ----------------------------------------------------------------------------

    async def reconcile(self, namespace: str, name: str) -> float | None:
        """Bring one run one step closer to done; seconds until it must be looked at again (or None)."""
        body = self.view.run(namespace, name)
        if body is None:
            self.forget(namespace, name)
            return None
        if (body.get("metadata") or {}).get("deletionTimestamp"):
            return None
        memory = self._memory_for(namespace, name, body)
        now = self.clock()
        try:
            spec = DAGRunSpec.model_validate(body.get("spec") or {})
        except ValidationError as error:
            invalid = "; ".join(map(str, loading.issues_from(error, DAGRunSpec, prefix="spec.")))
            logger.warning("run %s/%s has an invalid spec: %s", namespace, name, invalid)
            await self._hold(namespace, name, body, memory, runstatus.Hold("InvalidSpec", invalid), now)
            return None
        clear = None
        if spec.clear is not None and spec.clear.id not in memory.status.cleared:
            clear = (spec.clear.id, tuple(spec.clear.tasks))
        if memory.status.state.finished and clear is None:
            await self._after_end(namespace, name, body, memory)
            return None
        if memory.spec is None:
            dag_body = self.view.dag(namespace, spec.dag_name)
            dag_spec, problem = self.dag_spec(dag_body)
            hold = rules.admission(
                run=self.current(body),
                dag=dag_body,
                dag_spec=dag_spec,
                dag_problem=problem,
                runs_of_dag=self.runs_of_dag(namespace, spec.dag_name),
            )
            if hold is not None or dag_spec is None:
                await self._hold(namespace, name, body, memory, hold, now)
                return None
            memory.spec = dag_spec
        return await self._advance(namespace, name, body, memory, spec, clear, now)

    async def _advance(
        self,
        namespace: str,
        name: str,
        body: Obj,
        memory: RunMemory,
        spec: DAGRunSpec,
        clear: tuple[str, tuple[str, ...]] | None,
        now: datetime,
    ) -> float | None:
        """One pass over a started run: observe, decide, act (the module docstring's steps)."""
        assert memory.spec is not None
        config = await self.namespace_config.get(namespace)
        facts = launch.RunFacts(
            namespace=namespace,
            run_name=name,
            run_uid=memory.uid,
            dag_name=spec.dag_name,
            spec=memory.spec,
            interval=Schedule.from_spec(memory.spec).interval_for(spec.logical_date),
            run_type=spec.run_type.value,
            conf=spec.conf,
            variables={**self.settings.variables, **config.variables},
            connections=config.connections,
            connection_secrets=config.secrets,
            secrets_listed=config.secrets_listed,
        )
        work = _Pass(facts=facts, memory=memory, clear=clear, now=now)
        try:
            return await self._pass(body, spec, work)
        finally:
            self.in_hand -= work.in_hand  # manifests the pass prepared and did not create

    async def _pass(self, body: Obj, spec: DAGRunSpec, work: _Pass) -> float | None:
        """_advance's pass once its facts are gathered; the manifests it holds are released after it."""
        memory, facts, clear, now = work.memory, work.facts, work.clear, work.now
        namespace, name = facts.namespace, facts.run_name
        assert memory.spec is not None
        previous = None
        if any(_depends_on_past(memory.spec, t) for t in memory.spec.tasks):
            previous = rules.previous_run_states(
                self.current(body), self.runs_of_dag(namespace, spec.dag_name)
            )
        outcome = await loop.run_pass_async(
            loop.Ask(
                dag=facts.spec,
                status=memory.status,
                now=now,
                previous_run=previous,
                clear=clear,
                # The status passed in is the one written (decorated with Pod names and
                # conditions), never the engine's own, so the engine's memory could not be used.
                remember=False,
            ),
            _PodTries(self, work),
        )
        decision = outcome.decision
        work.clock.lap("observe, decide")
        old_status = memory.status
        await self._act(work, decision)
        metrics.record_transition(
            namespace,
            spec.dag_name,
            outcomes.transition(
                old_status,
                memory.status,
                due=_due(body, spec, facts),
                pods_created=_pods_created(work.pods),
            ),
            run=name,
            logical_date=format_time(spec.logical_date),
        )
        await self._after_write(namespace, body, spec, old_status, memory.status, memory.spec)
        work.clock.lap("after")
        logger.debug("reconciled run %s/%s: %s", namespace, name, work.clock)
        if work.more:
            return workqueue.CONTINUE  # launches left over from MAX_CREATES: the next pass at once
        due = [moment for moment in (*work.wakes, decision.wake_at) if moment is not None]
        if memory.status.state.finished or not due:
            return None
        return max(_SOON, (min(due) - self.clock()).total_seconds())

    async def _observe(self, work: _Pass) -> None:
        """Attempts from the run's Pods, refused launches and in-flight inline tasks; the stored XComs."""
        facts, memory, now = work.facts, work.memory, work.now
        if self.pods is not None:
            await self.pods.seed(facts.namespace, facts.run_name)
        work.pods = self.view.pods_of_run(facts.namespace, facts.run_name)
        work.wakes.append(rules.pending_deadline(work.pods, self.settings.pending_timeout))
        work.attempts = rules.attempts_from_pods(
            work.pods,
            status=memory.status,
            now=now,
            pending_timeout=self.settings.pending_timeout,
            pod_tasks=work.pod_tasks,
            run_name=facts.run_name,
            fold=self._folder(memory, work.pods, now),
        )
        self._add_launch_failures(memory, work.attempts)
        work.stored = await self.xcoms.load(facts.namespace, facts.run_name)
        work.values = dict(work.stored)
        for task_name, task in work.inline.items():
            instance = memory.status.tasks.get(task_name)
            if instance is not None and instance.state in IN_FLIGHT and instance.try_number >= 1:
                started = inline_tasks.try_started(instance, now)
                outcome = await self._inline(facts, task, instance.try_number, started, work.values, now)
                work.attempts[task_name] = outcome.attempt
                work.wakes.append(outcome.wake_at)
        work.attempts = xcom_store.checked_attempts(work.attempts)
        work.values.update(xcom_store.values_to_store(work.attempts, work.stored))

    async def _act(self, work: _Pass, decision: engine.Decision) -> None:
        """XCom first; then Pods and the status patch concurrently; then podCleanup."""
        facts, memory, now = work.facts, work.memory, work.now
        namespace, name = facts.namespace, facts.run_name
        await self.xcoms.store(
            namespace=namespace,
            run_name=name,
            run_uid=memory.uid,
            dag_name=facts.dag_name,
            values=xcom_store.values_to_store(work.attempts, work.stored),
        )
        work.clock.lap("xcom")

        new_status = runstatus.decorated(
            decision.status,
            spec=facts.spec,
            interval=facts.interval,
            now=now,
            pod_name=rules.pod_namer(name, work.pod_tasks),
            admitted=True,
        )
        creates = collections.deque(
            item
            for start in decision.start
            if isinstance(item := work.prepared.get((start.task, start.try_number)), dict)
            and not self._recently_launched(memory, item["metadata"]["name"])
        )
        work.prepared.clear()  # a manifest is let go once created (_create_all)
        source = facts.spec.python_source
        if source is not None and any(pysource.is_python_pod(manifest) for manifest in creates):
            await pysource.ensure_configmap(
                self.client,
                pysource.configmap_manifest(
                    run_name=name,
                    run_uid=memory.uid,
                    namespace=namespace,
                    dag_name=facts.dag_name,
                    source=source,
                ),
            )
        stops = [
            names.pod_name(name, stop.task, stop.try_number)
            for stop in work.stops
            if stop.task in work.pod_tasks
        ]
        count = len(creates)
        failures: dict[str, Attempt] = {}
        results = await asyncio.gather(
            self._create_all(work, creates, failures),
            *(self.client.delete(kube.PODS, namespace, pod) for pod in stops),
            self._write_status(namespace, name, memory, new_status, launching=work.more),
            return_exceptions=True,
        )
        work.clock.lap(f"act ({count} creates, {len(stops)} deletes)")
        if failures:
            memory.launch_failures.update(failures)
            self.enqueue(run_key(namespace, name))
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        doomed = rules.pods_to_clean(facts.spec.pod_cleanup, work.pods, memory.status)
        if doomed:
            await asyncio.gather(*(self.client.delete(kube.PODS, namespace, pod) for pod in doomed))

    # -- acting -----------------------------------------------------------------------------------

    def _folder(self, memory: RunMemory, pods: list[Obj], now: datetime) -> Callable[[Obj], Attempt]:
        """observe.attempt_from_pod, memoized per Pod version (a Pending Pod's only until its pending timeout)."""
        seen = {str((pod.get("metadata") or {}).get("name")) for pod in pods}
        for name in [n for n in memory.launched if n in seen]:
            del memory.launched[name]
        for name in [n for n in memory.folded if n not in seen]:
            del memory.folded[name]

        def fold(pod: Obj) -> Attempt:
            metadata = pod.get("metadata") or {}
            name, version = str(metadata.get("name")), str(metadata.get("resourceVersion"))
            cached = memory.folded.get(name)
            if cached is not None and cached[0] == version and (cached[2] is None or now <= cached[2]):
                return cached[1]
            timeout = self.settings.pending_timeout
            attempt = observe.attempt_from_pod(pod, now=now, pending_timeout=timeout)
            until = None
            if attempt.phase is AttemptPhase.pending:
                created = metadata.get("creationTimestamp")
                until = parse_time(str(created)) + timeout if created else now
            memory.folded[name] = (version, attempt, until)
            return attempt

        return fold

    def _recently_launched(self, memory: RunMemory, pod: str) -> bool:
        launched = memory.launched.get(pod)
        return launched is not None and self.monotonic() - launched < LAUNCH_GRACE

    async def _create_all(
        self, work: _Pass, creates: collections.deque[dict[str, Any]], failures: dict[str, Attempt]
    ) -> None:
        """Create the Pods, CREATES_IN_FLIGHT at a time; refused ones go to `failures`.

        Each manifest is dropped, and given back to the budget (MAX_CREATES), once its
        create is answered. The first error is raised after the others were tried.
        """
        errors: list[BaseException] = []

        async def worker() -> None:
            while creates:
                manifest = creates.popleft()
                try:
                    failure = await self._create_pod(work.memory, manifest)
                except Exception as error:
                    errors.append(error)
                    continue
                finally:
                    work.in_hand -= 1
                    self.in_hand -= 1
                if failure is not None:
                    failures[failure.task] = failure

        await asyncio.gather(*(worker() for _ in range(min(CREATES_IN_FLIGHT, len(creates)))))
        if errors:
            raise errors[0]

    async def _create_pod(self, memory: RunMemory, manifest: dict[str, Any]) -> Attempt | None:
        """Create one task Pod; AlreadyExists is success; a refused manifest is a failed try."""
        metadata = manifest["metadata"]
        try:
            await self.client.create(kube.PODS, metadata["namespace"], manifest, metadata_only=True)
            memory.launched[metadata["name"]] = self.monotonic()
        except kube.ApiError as error:
            if error.conflict:
                memory.launched[metadata["name"]] = self.monotonic()
                return None
            if error.status in _PERMANENT_CREATE_ERRORS and "exceeded quota" not in error.message:
                labels = metadata.get("labels") or {}
                return launch.failed_at_once(
                    metadata["annotations"][names.ANNOTATION_TASK_ID],
                    int(labels.get(names.LABEL_TRY, "1")),
                    f"pod {metadata['name']} could not be created: {error.message}",
                    self.clock(),
                )
            raise
        return None

    def _add_launch_failures(self, memory: RunMemory, attempts: dict[str, Attempt]) -> None:
        for task, failure in list(memory.launch_failures.items()):
            instance = memory.status.tasks.get(task)
            if instance is not None and instance.try_number > failure.try_number:
                del memory.launch_failures[task]  # the engine has moved on
                continue
            seen = attempts.get(task)
            if seen is None or seen.try_number <= failure.try_number:
                attempts[task] = failure

    async def _write_status(
        self, namespace: str, name: str, memory: RunMemory, status: DAGRunStatus, *, launching: bool = False
    ) -> None:
        """Patch the status if it changed (the duration alone is not a change); updates the memory.

        `launching`: the pass stopped at MAX_CREATES with Pods left to create. Its write waits
        for a later pass (STATUS_WRITES_WHILE_LAUNCHING) unless the state changed.
        """
        if (
            launching
            and status.state is memory.wire_of.state
            and self.monotonic() - memory.written_at < STATUS_WRITES_WHILE_LAUNCHING
        ):
            memory.status = status  # written with a later pass's; the Pods say the same meanwhile
            return
        wire = status.to_wire(previous=(memory.wire_of, memory.wire), stored_spec=memory.spec_stored)
        if _without_duration(wire) == _without_duration(memory.wire):
            memory.status = memory.wire_of = status
            return
        await self._patch_status(namespace, name, memory, status, wire)

    async def _patch_status(
        self, namespace: str, name: str, memory: RunMemory, status: DAGRunStatus, wire: dict[str, Any]
    ) -> None:
        diff = patches.merge_patch(memory.wire, wire)
        if not diff:
            memory.status = memory.wire_of = status
            return
        try:
            result = await self.client.patch(
                kube.DAGRUNS, namespace, name, {"status": diff}, subresource="status", metadata_only=True
            )
        except kube.ApiError as error:
            if error.not_found:
                self.forget(namespace, name)
                return
            raise
        memory.status = memory.wire_of = status
        if wire.pop("dagSpec", None) is not None:
            memory.spec_stored = status.dag_spec  # and its stored form is let go
        memory.wire = wire
        memory.written_at = self.monotonic()
        memory.resource_version = (result.get("metadata") or {}).get("resourceVersion")

    async def _hold(
        self,
        namespace: str,
        name: str,
        body: Obj,
        memory: RunMemory,
        hold: runstatus.Hold | None,
        now: datetime,
    ) -> None:
        """A run that may not start yet: say why (once), and wait for the event that changes it."""
        status = engine.held(
            memory.status, hold or runstatus.Hold("InvalidDAG", "the DAG is invalid"), now=now
        )
        if status is None:
            return
        first = not any(c.type == runstatus.CONDITION_ADMITTED for c in memory.status.conditions)
        await self._patch_status(
            namespace,
            name,
            memory,
            status,
            status.to_wire(previous=(memory.wire_of, memory.wire), stored_spec=memory.spec_stored),
        )
        if first:
            self.enqueue(dag_key(namespace, (body.get("spec") or {}).get("dagName", "")))

    async def _after_write(
        self,
        namespace: str,
        body: Obj,
        spec: DAGRunSpec,
        old: DAGRunStatus,
        new: DAGRunStatus,
        dag_spec: DAGSpec,
    ) -> None:
        """An Event when the run ends, and wake-ups for the DAG and later runs."""
        if old.state is not new.state or old.start_time is None:
            self.enqueue(dag_key(namespace, spec.dag_name))
            if new.state.finished:
                failed = [t for t, i in new.tasks.items() if i.state.value in ("failed", "upstream_failed")]
                message = f"run {new.state.value} after {new.duration or '?'} ({new.tasks_summary} tasks)"
                if failed:
                    message += f"; failed: {', '.join(failed[:10])}"
                try:
                    await self.client.create_event(
                        body,
                        reason="RunSucceeded" if new.state is RunState.success else "RunFailed",
                        message=message,
                        warning=new.state is RunState.failed,
                    )
                except kube.ApiError as error:
                    logger.warning("could not post an event: %s", error)
        if new is not old and any(_depends_on_past(dag_spec, t) for t in dag_spec.tasks):
            for later in rules.runs_after(self.current(body), self.runs_of_dag(namespace, spec.dag_name)):
                self.enqueue(run_key(namespace, later))

    async def _after_end(self, namespace: str, name: str, body: Obj, memory: RunMemory) -> None:
        """A finished run: its podCleanup, and let go of its memory once the watch has caught up."""
        if memory.spec is not None and memory.spec.pod_cleanup != "keep":
            if self.pods is not None:
                await self.pods.seed(namespace, name)
            pods = self.view.pods_of_run(namespace, name)
            doomed = rules.pods_to_clean(memory.spec.pod_cleanup, pods, memory.status)
            if doomed:
                await asyncio.gather(*(self.client.delete(kube.PODS, namespace, pod) for pod in doomed))
        if memory.resource_version == (body.get("metadata") or {}).get("resourceVersion"):
            self.forget(namespace, name)

    # -- inline tasks -------------------------------------------------------------------------------

    async def _inline(
        self,
        facts: launch.RunFacts,
        task: Task,
        try_number: int,
        started: datetime,
        xcoms: Mapping[str, str],
        now: datetime,
    ) -> inline_tasks.Outcome:
        """Evaluate (or start) one try of a sensor or triggerDag task."""
        return await inline_tasks.execute(
            facts.task(task.name),
            facts=facts,
            try_number=try_number,
            started=started,
            xcoms=xcoms,
            now=now,
            lookup=self,
            client=self.client,
        )

    def dag(self, namespace: str, name: str) -> Obj | None:
        """A DAG from the view (a triggerDag task's run is owned by the DAG it triggers)."""
        return self.view.dag(namespace, name)

    def current_run(self, namespace: str, name: str) -> Obj | None:
        """A DAGRun from the view, with the status this controller last wrote."""
        run = self.view.run(namespace, name)
        return None if run is None else self.current(run)


@dataclass
class _Pass:
    """The working state of one reconcile of one started run."""

    facts: launch.RunFacts
    memory: RunMemory
    clear: tuple[str, tuple[str, ...]] | None
    now: datetime
    pods: list[Obj] = field(default_factory=list)
    attempts: dict[str, Attempt] = field(default_factory=dict)
    stored: dict[str, str] = field(default_factory=dict)
    """XCom values as stored in the ConfigMap."""
    values: dict[str, str] = field(default_factory=dict)
    """Stored values plus those observed in this pass (what templates render with)."""
    prepared: dict[tuple[str, int], dict[str, Any] | Attempt] = field(default_factory=dict)
    """Each try launched in this pass: its Pod manifest (created with the status write), or its outcome."""
    stops: list[engine.StopTry] = field(default_factory=list)
    """Tries to stop: their Pods are deleted with the status write."""
    pods_prepared: int = 0
    in_hand: int = 0
    """Manifests prepared and not yet created: this pass's part of RunController.in_hand."""
    more: bool = False
    """Tries left for the next pass (MAX_CREATES reached)."""
    wakes: list[datetime | None] = field(default_factory=list)
    clock: _Stopwatch = field(default_factory=lambda: _Stopwatch())

    @property
    def pod_tasks(self) -> frozenset[str]:
        return rules.pod_task_names(self.facts.spec)

    @functools.cached_property
    def inline(self) -> dict[str, Task]:
        return {task.name: task for task in self.facts.spec.tasks if inline_tasks.is_inline(task)}


class _PodTries:
    """The operator's implementation of the execution port (core.loop.AsyncLauncher) for one pass.

    observe: the run's Pods (from the view), refused creates, and the in-flight sensor
    and triggerDag tries evaluated now. launch: a Pod manifest per try (created with
    the status write, step 2 of the module docstring), or for inline tasks and tries
    that fail before they run, the outcome at once. stop: the Pods deleted with the
    status write.
    """

    def __init__(self, controller: RunController, work: _Pass) -> None:
        self.controller = controller
        self.work = work

    async def observe(self) -> dict[str, Attempt]:
        await self.controller._observe(self.work)
        return self.work.attempts

    async def launch(self, starts: Sequence[engine.StartTry]) -> dict[str, Attempt]:
        work, facts, now = self.work, self.work.facts, self.work.now
        immediate: dict[str, Attempt] = {}
        for start in starts:
            key = (start.task, start.try_number)
            if start.task in work.inline:
                task = work.inline[start.task]
                outcome = await self.controller._inline(facts, task, start.try_number, now, work.values, now)
                work.prepared[key] = immediate[start.task] = outcome.attempt
                work.wakes.append(outcome.wake_at)
                continue
            if self.controller._recently_launched(
                work.memory, names.pod_name(facts.run_name, start.task, start.try_number)
            ):
                continue  # created, not seen yet: nothing to build
            if work.pods_prepared >= MIN_PASS_CREATES and self.controller.in_hand >= MAX_CREATES:
                work.more = True  # the rest in the next pass, so this one's status is written first
                continue
            prepared = launch.pod_for_try(facts, start.task, start.try_number, xcoms=work.values, now=now)
            work.prepared[key] = prepared
            if isinstance(prepared, dict):
                work.pods_prepared += 1
                work.in_hand += 1
                self.controller.in_hand += 1
            if len(work.prepared) % 100 == 0:
                await asyncio.sleep(0)  # hundreds of Pods to build: let other runs' reconciles in between
            if isinstance(prepared, Attempt):
                immediate[start.task] = prepared
        checked = xcom_store.checked_attempts(immediate)
        work.attempts.update(checked)
        work.values.update(xcom_store.values_to_store(work.attempts, work.values))
        return checked

    async def stop(self, stops: Sequence[engine.StopTry]) -> None:
        self.work.stops.extend(stops)


class _Stopwatch:
    """Phase timings of one reconcile, for the debug log."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self._laps: list[str] = []

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self._laps.append(f"{name} {(now - self._last) * 1000:.1f}ms")
        self._last = now

    def __str__(self) -> str:
        return ", ".join(self._laps)


def _due(body: Obj, spec: DAGRunSpec, facts: launch.RunFacts) -> datetime | None:
    """When the run was due: a scheduled run at the end of its data interval, any other at its creation."""
    if spec.run_type is RunType.scheduled and facts.interval is not None:
        return facts.interval.data_interval_end
    try:
        return parse_time(str((body.get("metadata") or {}).get("creationTimestamp") or ""))
    except ValueError:
        return None


def _pods_created(pods: list[Obj]) -> Mapping[str, datetime]:
    """Pod name -> creation time, parsed only for the Pods asked about (the tries that started)."""
    return _CreationTimes({str((p.get("metadata") or {}).get("name")): p for p in pods})


class _CreationTimes(Mapping[str, datetime]):
    def __init__(self, pods: dict[str, Obj]) -> None:
        self._pods = pods

    def __getitem__(self, name: str) -> datetime:
        metadata = self._pods[name].get("metadata") or {}
        try:
            return parse_time(str(metadata.get("creationTimestamp") or ""))
        except ValueError:
            raise KeyError(name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._pods)

    def __len__(self) -> int:
        return len(self._pods)


def _without_duration(wire: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in wire.items() if k != "duration"}


def _depends_on_past(spec: DAGSpec, task: Task) -> bool:
    return bool(effective_field(spec, task, "depends_on_past"))
