"""Fold what a Pod says into the engine's `Attempt`: Pod phase is task state.

Pure on purpose: the operator hands in the Pod as kopf delivers it (a plain,
camelCase dict), the Pod's recent events and the time, and gets back the one
observation the engine understands. Every judgement about Pods, from when a
Pending Pod has waited too long and which reasons to show a user, to what a
lost node or a missing XCom means, is made here and tested over realistic Pod
dicts without a cluster.

A try only counts as `succeeded` once its XCom value parses (core.xcom's rules,
the same as the local runner's); the shell stores it before it reports the
attempt to the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from kubeflowlite.api.times import parse_time
from kubeflowlite.core import durations, xcom
from kubeflowlite.core.engine import Attempt, AttemptPhase
from kubeflowlite.core.taskenv import ANNOTATION_SKIP_EXIT_CODE
from kubeflowlite.k8s import names, taskscript
from kubeflowlite.k8s.pods import MAIN_CONTAINER

DEFAULT_PENDING_TIMEOUT = timedelta(minutes=10)

WAITING_PROBLEMS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "CrashLoopBackOff",
    }
)
"""Container waiting reasons worth telling a user about (anything but ContainerCreating)."""

MAX_EVENTS = 3
MAX_MESSAGE = 1024
"""Messages end up in DAGRun status; keep each bounded (etcd's object limit)."""


def attempt_from_pod(
    pod: Mapping[str, Any],
    *,
    now: datetime,
    pending_timeout: timedelta = DEFAULT_PENDING_TIMEOUT,
    events: Sequence[Mapping[str, Any]] = (),
) -> Attempt:
    """The engine's view of the try that `pod` runs.

    `now` is an aware datetime; `events` are the Pod's events (any order), whose
    recent warnings are named in the message of a Pod that cannot start.
    """
    metadata: Mapping[str, Any] = pod.get("metadata") or {}
    status: Mapping[str, Any] = pod.get("status") or {}
    labels: Mapping[str, str] = metadata.get("labels") or {}
    annotations: Mapping[str, str] = metadata.get("annotations") or {}
    task = annotations.get(names.ANNOTATION_TASK_ID) or labels.get(names.LABEL_TASK, "")
    try_number = _int(labels.get(names.LABEL_TRY), default=0)

    main = _main_status(status)
    state: Mapping[str, Any] = main.get("state") or {}
    terminated: Mapping[str, Any] | None = state.get("terminated")
    running: Mapping[str, Any] | None = state.get("running")
    phase = status.get("phase") or "Pending"

    start_time = _time((terminated or running or {}).get("startedAt")) or _time(status.get("startTime"))
    exit_code = _int(terminated.get("exitCode"), default=None) if terminated else None
    finished_at = _time(terminated.get("finishedAt")) if terminated else None

    def attempt(phase: AttemptPhase, **fields: Any) -> Attempt:
        """An Attempt for this Pod; `fields` override the defaults read from the main container."""
        values: dict[str, Any] = {"start_time": start_time, "exit_code": exit_code} | fields
        return Attempt(task=task, try_number=try_number, phase=phase, **values)

    lost = _node_lost(status)
    if lost and phase not in ("Succeeded", "Failed"):
        return attempt(AttemptPhase.failed, end_time=finished_at or now, message=lost)

    deleted_at = _deletion_requested_at(metadata)
    # With sidecars from pod overrides the Pod may stay Running after main ended:
    # the main container's own termination is what counts.
    if phase == "Succeeded" or (terminated is not None and exit_code == 0 and phase != "Failed"):
        return _succeeded(attempt, terminated or {}, end_time=finished_at or deleted_at or now)
    skip_code = _skip_code(annotations)
    if terminated is not None and skip_code is not None and exit_code == skip_code:
        return attempt(AttemptPhase.skipped, end_time=finished_at or now, message="skipped by the task")
    # The kubelet reports a main container that exited non-zero while the Pod's phase
    # may still read Pending for a second or two: the container's end is final.
    if phase == "Failed" or terminated is not None:
        return attempt(
            AttemptPhase.failed,
            end_time=finished_at or deleted_at or now,
            message=_failure_message(status, terminated, lost),
        )
    if deleted_at is not None:
        during = "while running" if phase == "Running" else "before it started"
        return attempt(AttemptPhase.failed, end_time=deleted_at, message=f"pod deleted {during}")
    if phase == "Running":
        return attempt(AttemptPhase.running)
    if phase == "Unknown":
        return attempt(AttemptPhase.running, message="pod state unknown: its node is not reporting")

    reasons = _pending_reasons(status, events)
    created = _time(metadata.get("creationTimestamp"))
    if created is not None and now - created > pending_timeout:
        waited = f"pod still pending after {durations.format_duration(pending_timeout)}"
        message = f"{waited}: {reasons}" if reasons else waited
        return attempt(AttemptPhase.failed, end_time=created + pending_timeout, message=_bounded(message))
    return attempt(AttemptPhase.pending, message=_bounded(reasons) if reasons else None)


def _skip_code(annotations: Mapping[str, str]) -> int | None:
    """The exit code that means "skipped" for this Pod (Python tasks, k8s.pysource), if any."""
    code: int | None = _int(annotations.get(ANNOTATION_SKIP_EXIT_CODE), default=None)
    return code


def parse_xcom(text: str) -> Any:
    """The XCom value in a main container's termination message (NO_XCOM if it is empty).

    Raises core.xcom.XComError with the message a user sees as the task's failure
    (k8s.taskscript: a bash task's last output line, or a JSON value).
    """
    return taskscript.decode_termination_message(text)


def _succeeded(make: Callable[..., Attempt], terminated: Mapping[str, Any], *, end_time: datetime) -> Attempt:
    try:
        value = parse_xcom(str(terminated.get("message") or ""))
    except xcom.XComError as error:
        return make(AttemptPhase.failed, end_time=end_time, message=_bounded(str(error)))
    return make(AttemptPhase.succeeded, end_time=end_time, xcom=value)


def _main_status(status: Mapping[str, Any]) -> Mapping[str, Any]:
    statuses = status.get("containerStatuses") or []
    for container in statuses:
        if container.get("name") == MAIN_CONTAINER:
            return dict(container)
    return dict(statuses[0]) if statuses else {}


def _node_lost(status: Mapping[str, Any]) -> str | None:
    if status.get("reason") == "NodeLost":
        return _bounded(f"node lost: {status.get('message') or 'the node running the pod is gone'}")
    for condition in status.get("conditions") or []:
        if condition.get("type") == "DisruptionTarget" and condition.get("status") == "True":
            detail = condition.get("message") or condition.get("reason") or "disrupted"
            return _bounded(f"pod disrupted ({condition.get('reason') or 'DisruptionTarget'}): {detail}")
    return None


def _failure_message(
    status: Mapping[str, Any], terminated: Mapping[str, Any] | None, lost: str | None
) -> str:
    parts: list[str] = []
    reason = status.get("reason")
    if reason == "DeadlineExceeded":
        parts.append("execution timeout")
    elif lost:
        parts.append(lost)
    elif reason:
        parts.append(str(reason))
    if terminated is not None:
        detail = f"exit code {terminated.get('exitCode')}"
        if terminated.get("reason") and terminated.get("reason") not in ("Error", "Completed"):
            detail += f" ({terminated['reason']})"
        parts.append(detail)
    if status.get("message"):
        parts.append(str(status["message"]))
    if terminated is not None and terminated.get("message"):
        parts.append(str(terminated["message"]).strip())
    return _bounded(": ".join(parts) if parts else "pod failed")


def _pending_reasons(status: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> str:
    reasons: list[str] = []
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            reasons.append(f"Unschedulable: {condition.get('message') or 'no node fits'}")
    for container in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in WAITING_PROBLEMS:
            text = f"container {container.get('name')}: {waiting['reason']}"
            reasons.append(f"{text}: {waiting['message']}" if waiting.get("message") else text)
    for line in _recent_warnings(events):
        if not any(line in r or r in line for r in reasons):
            reasons.append(line)
    return "; ".join(reasons)


def _recent_warnings(events: Sequence[Mapping[str, Any]]) -> list[str]:
    warnings = [e for e in events if e.get("type") == "Warning"]
    warnings.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
    lines: list[str] = []
    for event in reversed(warnings):
        line = f"{event.get('reason')}: {event.get('message')}".strip()
        if line not in lines:
            lines.append(line)
        if len(lines) == MAX_EVENTS:
            break
    return list(reversed(lines))


def _deletion_requested_at(metadata: Mapping[str, Any]) -> datetime | None:
    deletion = _time(metadata.get("deletionTimestamp"))
    if deletion is None:
        return None
    grace = _int(metadata.get("deletionGracePeriodSeconds"), default=0) or 0
    return deletion - timedelta(seconds=grace)


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    return parse_time(str(value))


def _int(value: Any, *, default: int | None) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"
