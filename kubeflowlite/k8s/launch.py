"""From "start try N of task T" to the Pod that runs it, with no I/O.

The Pod side of the launcher port (the local runner's side is local.prepare): the
task gets the DAG's defaults, its templates are rendered with the run's context
(`ti.xcom_pull` reads the run's stored XCom values), and k8s.pods builds the
manifest. A try whose templates do not render never gets a Pod: it fails at once
with the template error as its message, as it does locally.

Pod override annotations are templated too: every value under the task's
`pod.metadata.annotations` is rendered with the same context as the command, so a
test (or a user) can vary them per try, e.g.
`kwok.kubeflowlite.io/outcome: "{{ 'failure' if ti.try_number < 3 else 'success' }}"`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubeflowlite.api.dag import DAG, DAGSpec, ObjectMeta, Task, effective_task
from kubeflowlite.api.times import format_time
from kubeflowlite.core import pytask, templating
from kubeflowlite.core.engine import Attempt, AttemptPhase
from kubeflowlite.core.schedule import RunInterval
from kubeflowlite.k8s import pods, pysource, runtime_config, xcom_store


@dataclass(frozen=True)
class RunFacts:
    """What every try of one run shares, read from its DAGRun object and spec snapshot."""

    namespace: str
    run_name: str
    run_uid: str
    dag_name: str
    spec: DAGSpec
    interval: RunInterval
    run_type: str
    conf: Mapping[str, Any] = field(default_factory=dict)
    variables: Mapping[str, str] = field(default_factory=dict)
    connections: Mapping[str, str] = field(default_factory=dict)
    """Connection texts by id, for `{{ conn.x.host }}` (never rendered into status or Events)."""
    connection_secrets: Mapping[str, str] = field(default_factory=dict)
    """Connection id -> its Secret, for a task's `connections` (secretKeyRef env)."""
    secrets_listed: bool = True
    """False: Secrets could not be listed; a task's connections refer to the Secrets by their CLI names."""

    @property
    def run_id(self) -> str:
        """Airflow's run_id ({{ run_id }}): `<run type>__<logical date>`, as the local runner gives."""
        return templating.run_id_for(self.run_type, self.interval.logical_date)

    @property
    def logical_date_text(self) -> str:
        return format_time(self.interval.logical_date)

    def task(self, name: str) -> Task:
        """The task `name` with the DAG's defaults applied (KeyError if the snapshot has no such task)."""
        return effective_task(self.spec, _tasks_by_name(self.spec)[name])

    def dag(self) -> DAG:
        return DAG(metadata=ObjectMeta(name=self.dag_name), spec=self.spec)


_BY_NAME: dict[int, tuple[DAGSpec, dict[str, Task]]] = {}


def _tasks_by_name(spec: DAGSpec) -> dict[str, Task]:
    """The spec's tasks by name, memoized per spec object (a run's snapshot never changes; a fan-out
    of N tasks looked each one up with a scan, O(N^2))."""
    found = _BY_NAME.get(id(spec))
    if found is None or found[0] is not spec:
        if len(_BY_NAME) > 256:
            _BY_NAME.clear()
        found = (spec, {task.name: task for task in spec.tasks})
        _BY_NAME[id(spec)] = found
    return found[1]


def context_for(facts: RunFacts, task: Task, try_number: int, xcoms: Mapping[str, str]) -> dict[str, Any]:
    """The Jinja context of one try; `ti.xcom_pull` reads `xcoms` (task id -> stored JSON text)."""

    def xcom_pull(task_ids: Any = None, key: str | None = "return_value", **_: Any) -> Any:
        return xcom_store.decode(xcoms, task_ids, key=key)

    return templating.template_context(
        dag=facts.dag(),
        task=task,
        interval=facts.interval,
        run_id=facts.run_id,
        conf=dict(facts.conf),
        try_number=try_number,
        xcom_pull=xcom_pull,
        variables=dict(facts.variables),
        connections=dict(facts.connections),
    )


def failed_at_once(task: str, try_number: int, message: str, now: datetime) -> Attempt:
    """An attempt that failed before anything ran (a template error, a rejected Pod)."""
    return Attempt(
        task=task,
        try_number=try_number,
        phase=AttemptPhase.failed,
        start_time=now,
        end_time=now,
        message=message,
    )


def pod_for_try(
    facts: RunFacts, task_name: str, try_number: int, *, xcoms: Mapping[str, str], now: datetime
) -> dict[str, Any] | Attempt:
    """The Pod manifest of try `try_number` of `task_name`, or a failed Attempt if it cannot be rendered."""
    task = facts.task(task_name)
    if task.python is None and not _templated(task):
        # Nothing to render (a fan-out of `bash: true`): Airflow's context is not built for it.
        rendered = templating.RenderedTask(
            bash=task.bash,
            command=None if task.command is None else list(task.command),
            args=None if task.args is None else list(task.args),
            env={variable.name: variable.value for variable in task.env or []},
        )
    else:
        try:
            context = context_for(facts, task, try_number, xcoms)
            rendered = templating.render_task(task, context)
            task = with_rendered_annotations(task, context)
        except templating.TemplateError as error:
            return failed_at_once(task_name, try_number, f"template error: {error}", now)
    pod = pods.build_pod(
        run_name=facts.run_name,
        run_uid=facts.run_uid,
        namespace=facts.namespace,
        dag_name=facts.dag_name,
        task=task,
        rendered=rendered,
        try_number=try_number,
        logical_date=facts.logical_date_text,
    )
    if task.connections:
        try:
            secret_env = runtime_config.connection_env(
                list(task.connections), facts.connection_secrets, secrets_listed=facts.secrets_listed
            )
        except KeyError as error:
            return failed_at_once(
                task_name, try_number, f"tasks[{task_name}].connections: {error.args[0]}", now
            )
        main = next(c for c in pod["spec"]["containers"] if c.get("name") == pods.MAIN_CONTAINER)
        names_taken = {entry["name"] for entry in secret_env}
        main["env"] = [e for e in main.get("env") or [] if e.get("name") not in names_taken] + secret_env
    if task.python is None or facts.spec.python_source is None:
        return pod
    try:
        python_facts = pytask.payload(
            dag=facts.dag(),
            task=task,
            context=context,
            try_number=try_number,
            xcoms={name: json.loads(text) for name, text in xcoms.items() if text},
            variables=facts.variables,
        )
    except templating.TemplateError as error:
        return failed_at_once(task_name, try_number, f"template error: {error}", now)
    return pysource.python_pod(
        pod, run_name=facts.run_name, source=facts.spec.python_source, facts=python_facts
    )


_TEMPLATE_MARKS = ("{{", "{%", "{#", "\r")
"""Text without these renders as itself (keep_trailing_newline; Jinja would only turn \r\n into \n)."""


def _templated(task: Task) -> bool:
    """Whether any field render_task or with_rendered_annotations renders could come out different."""
    texts = [task.bash or "", *(task.command or ()), *(task.args or ()), *(v.value for v in task.env or [])]
    metadata = (task.pod or {}).get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    if isinstance(annotations, Mapping):
        texts += [value for value in annotations.values() if isinstance(value, str)]
    return any(mark in text for text in texts for mark in _TEMPLATE_MARKS)


def with_rendered_annotations(task: Task, context: Mapping[str, Any]) -> Task:
    """`task` with the values of `pod.metadata.annotations` rendered (TemplateError if one fails)."""
    pod = task.pod or {}
    metadata = pod.get("metadata")
    if not isinstance(metadata, Mapping):
        return task
    annotations = metadata.get("annotations")
    if not isinstance(annotations, Mapping) or not annotations:
        return task
    templated = {k: v for k, v in annotations.items() if isinstance(v, str)}
    rendered = templating.render_mapping(
        templated, context, field=f"tasks[{task.name}].pod.metadata.annotations"
    )
    new_metadata = {**metadata, "annotations": {**annotations, **rendered}}
    return task.model_copy(update={"pod": {**pod, "metadata": new_metadata}})
