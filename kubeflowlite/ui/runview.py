"""What a run's pages show: its details, the tries of a task instance, the Gantt, a Pod's state.

Pure functions over API objects (plain dicts), like `models`; the templates escape
everything they return.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubeflowlite.api.times import parse_time
from kubeflowlite.cli.cluster_plans import human_seconds, seconds_between
from kubeflowlite.k8s import names
from kubeflowlite.ui.models import Obj, logical_date, name_of, namespace_of, run_state, run_states, task_ids


@dataclass(frozen=True)
class RunDetails:
    name: str
    namespace: str
    dag: str
    state: str
    run_type: str
    logical_date: str
    data_interval: tuple[str, str]
    start: str
    end: str
    duration: str
    conf: str
    params: str
    summary: str
    message: str


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def run_details(run: Obj, *, now: datetime) -> RunDetails:
    spec = run.get("spec") or {}
    status = run.get("status") or {}
    snapshot = status.get("dagSpec") or {}
    seconds = seconds_between(status.get("startTime"), status.get("endTime"), now)
    message = next(
        (str(c.get("message") or "") for c in status.get("conditions") or [] if c.get("status") == "False"),
        "",
    )
    return RunDetails(
        name=name_of(run),
        namespace=namespace_of(run),
        dag=str(spec.get("dagName") or ""),
        state=run_state(run),
        run_type=str(spec.get("runType") or "manual"),
        logical_date=logical_date(run),
        data_interval=(
            str(status.get("dataIntervalStart") or "-"),
            str(status.get("dataIntervalEnd") or "-"),
        ),
        start=str(status.get("startTime") or "-"),
        end=str(status.get("endTime") or "-"),
        duration=human_seconds(seconds),
        conf=_pretty(spec.get("conf") or {}),
        params=_pretty(snapshot.get("params") or {}),
        summary=str(status.get("tasksSummary") or "-"),
        message=message,
    )


@dataclass(frozen=True)
class TryRow:
    number: int
    state: str
    start: str
    end: str
    duration: str
    exit_code: str
    message: str
    pod: str


def tries(run: Obj, task: str, *, now: datetime) -> list[TryRow]:
    """Every try of a task instance, first to last (earlier tries, then the current one)."""
    instance = ((run.get("status") or {}).get("tasks") or {}).get(task) or {}
    rows: list[TryRow] = []

    def row(record: Mapping[str, Any], state: str, number: int) -> TryRow:
        exit_code = record.get("exitCode")
        return TryRow(
            number=number,
            state=state,
            start=str(record.get("startTime") or "-"),
            end=str(record.get("endTime") or "-"),
            duration=human_seconds(seconds_between(record.get("startTime"), record.get("endTime"), now)),
            exit_code="-" if exit_code is None else str(exit_code),
            message=str(record.get("message") or ""),
            pod=try_pod(name_of(run), task, number),
        )

    for record in instance.get("tries") or []:
        number = int(record.get("tryNumber") or 0)
        rows.append(row(record, str(record.get("state") or "none"), number))
    current = int(instance.get("tryNumber") or 0)
    if current and all(r.number != current for r in rows):
        rows.append(row(instance, str(instance.get("state") or "none"), current))
    return sorted(rows, key=lambda r: r.number)


@dataclass(frozen=True)
class Bar:
    """One try on the Gantt chart: where its queued and running segments sit, in % of the run's span."""

    task: str
    try_number: int
    state: str
    queued_left: float
    queued_width: float
    running_left: float
    running_width: float
    label: str


def _moment(text: Any) -> datetime | None:
    if not text:
        return None
    try:
        return parse_time(str(text))
    except ValueError:
        return None


def gantt(run: Obj, pods: Iterable[Obj], *, now: datetime) -> tuple[list[Bar], str]:
    """The Gantt of a run: per task and try, queued (Pod created -> started) and running time.

    Pods give the queued time (their creation); a try whose Pod is gone shows its
    running time only. Returns the bars and the run's span as text.
    """
    created: dict[str, datetime] = {}
    for pod in pods:
        moment = _moment((pod.get("metadata") or {}).get("creationTimestamp"))
        if moment is not None:
            created[name_of(pod)] = moment
    spans: list[tuple[str, TryRow, datetime | None, datetime, datetime]] = []
    order = task_ids(None, [run_states(run)])
    for task in order:
        for attempt in tries(run, task, now=now):
            start = _moment(attempt.start if attempt.start != "-" else None)
            if start is None:
                continue
            end = _moment(attempt.end if attempt.end != "-" else None) or now
            queued = created.get(attempt.pod)
            spans.append((task, attempt, queued if queued and queued < start else None, start, end))
    if not spans:
        return [], "-"
    origin = min(q or s for _, _, q, s, _ in spans)
    finish = max(e for *_, e in spans)
    total = max((finish - origin).total_seconds(), 0.001)

    def pct(a: datetime, b: datetime) -> float:
        return round(100.0 * max((b - a).total_seconds(), 0.0) / total, 3)

    bars = [
        Bar(
            task=task,
            try_number=attempt.number,
            state=attempt.state,
            queued_left=pct(origin, queued) if queued else pct(origin, start),
            queued_width=pct(queued, start) if queued else 0.0,
            running_left=pct(origin, start),
            running_width=max(pct(start, end), 0.2),
            label=f"{task} try {attempt.number}: queued "
            f"{human_seconds((start - queued).total_seconds()) if queued else '-'}, running {attempt.duration}",
        )
        for task, attempt, queued, start, end in spans
    ]
    return bars, human_seconds(total)


@dataclass(frozen=True)
class PodInfo:
    name: str
    phase: str
    node: str
    waiting_reason: str
    waiting_message: str


def pod_info(pod: Obj) -> PodInfo:
    """A Pod's phase, node and (when stuck) why it waits."""
    status = pod.get("status") or {}
    reason, message = "", ""
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting:
            reason, message = str(waiting.get("reason") or ""), str(waiting.get("message") or "")
            break
    if not reason:
        for condition in status.get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                reason, message = str(condition.get("reason") or ""), str(condition.get("message") or "")
    return PodInfo(
        name=name_of(pod),
        phase=str(status.get("phase") or "-"),
        node=str((pod.get("spec") or {}).get("nodeName") or "-"),
        waiting_reason=reason,
        waiting_message=message,
    )


def event_rows(events: Iterable[Obj]) -> list[tuple[str, str, str, str]]:
    """(time, type, reason, message) of a Pod's events, oldest first."""
    rows = [
        (
            str(e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp") or ""),
            str(e.get("type") or ""),
            str(e.get("reason") or ""),
            str(e.get("message") or ""),
        )
        for e in events
    ]
    return sorted(rows)


def xcom_text(configmap: Obj | None, task: str) -> str | None:
    """A task's XCom value, pretty-printed JSON (the stored text if it is not JSON); None if it has none."""
    text = ((configmap or {}).get("data") or {}).get(task)
    if text is None:
        return None
    try:
        return _pretty(json.loads(text))
    except ValueError:
        return str(text)


def try_pod(run_name: str, task: str, try_number: int) -> str:
    """The Pod of one try (the operator's naming rule)."""
    return names.pod_name(run_name, task, try_number)


def pod_command(pod: Obj, container: str) -> str:
    """What a try's container runs, as its Pod says (templates already rendered): command, args, env."""
    spec = pod.get("spec") or {}
    main = next((c for c in spec.get("containers") or [] if c.get("name") == container), None)
    if main is None:
        return ""
    lines = [*(str(x) for x in main.get("command") or []), *(str(x) for x in main.get("args") or [])]
    lines += [f"# env {e.get('name')}={e.get('value', '')}" for e in main.get("env") or [] if "value" in e]
    return "\n".join(lines)
