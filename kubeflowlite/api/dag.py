"""The DAG custom resource: what a user writes in a DAG file.

These pydantic models are the single source of truth for the API: the CRD YAML in
crds/ is generated from them (`kubeflowlite crds`), `kubectl explain` text comes
from the field descriptions, and both the local runner and the operator load DAG
files through them. Structural checks live here; checks that need the whole DAG
(cycles, unknown upstreams, cron syntax, templates) live in core.validation, which
reports every problem at once with its path.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from pydantic import Field

from kubeflowlite.api import names
from kubeflowlite.api.base import ApiModel, ManyModel
from kubeflowlite.api.times import Time
from kubeflowlite.core.durations import DURATION_PATTERN, SIGNED_DURATION_PATTERN
from kubeflowlite.core.taskenv import SKIP_EXIT_CODE
from kubeflowlite.core.trigger_rule import TriggerRule as TriggerRule  # defined stdlib-only, see there
from kubeflowlite.core.xcom import XCOM_REF_KEY as XCOM_REF_KEY  # the reference form in python.args

API_GROUP = "kubeflowlite.io"
API_VERSION = "v1alpha1"
GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"


class TaskType(str, Enum):
    """What runs for a task. Inferred when omitted: `bash` if bash is set, `container` if command/args are, else an error."""

    bash = "bash"
    container = "container"
    empty = "empty"
    sensor = "sensor"
    trigger_dag = "triggerDag"
    python = "python"


class EnvVar(ApiModel):
    """An environment variable for the task's process or container."""

    name: str = Field(description="Variable name.", min_length=1)
    value: str = Field(default="", description="Value; templated with Jinja like the command.")


class ExternalTaskSensor(ApiModel):
    """Wait until a task, or a whole run, of another DAG reaches an allowed state (Airflow's ExternalTaskSensor)."""

    dag: str = Field(description="The DAG id to watch.")
    task: str | None = Field(
        default=None, description="The task id to watch; omitted means the whole DAG run."
    )
    offset: str = Field(
        default="0s",
        description="Added to this run's logical date to find the watched run (e.g. '-1d' for yesterday's run).",
        pattern=SIGNED_DURATION_PATTERN,
    )
    allowed_states: list[str] = Field(
        default_factory=lambda: ["success"],
        description="States that satisfy the sensor.",
    )
    failed_states: list[str] = Field(
        default_factory=lambda: ["failed"],
        description="States that fail the sensor at once.",
    )
    poke_interval: str = Field(default="30s", description="How often to check.", pattern=DURATION_PATTERN)
    timeout: str = Field(
        default="7d", description="Give up (the try fails) after this long.", pattern=DURATION_PATTERN
    )


class TriggerDag(ApiModel):
    """Start a run of another DAG (Airflow's TriggerDagRunOperator)."""

    dag: str = Field(description="The DAG id to trigger.")
    conf: dict[str, Any] = Field(default_factory=dict, description="Run conf; string values are templated.")
    logical_date: str | None = Field(
        default=None,
        description="Logical date of the triggered run (templated); default: this run's logical date.",
    )
    wait_for_completion: bool = Field(
        default=False, description="Wait until the triggered run finishes; its failure fails this task."
    )
    poke_interval: str = Field(
        default="10s", description="How often to check while waiting.", pattern=DURATION_PATTERN
    )


class PythonCall(ApiModel):
    """A Python function of the DAG's `pythonSource`, called with JSON arguments (Airflow's PythonOperator)."""

    callable: str = Field(
        description="The function's name in the source (informational for lambdas and nested functions: "
        "the task is found by DAG and task id when the source defines this DAG).",
        min_length=1,
    )
    args: list[Any] = Field(
        default_factory=list,
        description='Positional arguments (JSON). An object {"__kfl_xcom__": {"task": T, "key": K}} '
        "is replaced by task T's XCom K at run time.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments (JSON), XCom references as in args.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    templates_dict: dict[str, str] | None = Field(
        default=None,
        description="Jinja-templated strings rendered per try and passed as `templates_dict` in the context.",
    )
    multiple_outputs: bool = Field(
        default=False,
        description="The function returns a dict whose keys are pulled as separate XCom keys.",
    )


class PythonSource(ApiModel):
    """The Python DAG file a DAG was compiled from: shipped to every Python task's process or Pod."""

    filename: str = Field(description="The file's name (for tracebacks), e.g. tutorial.py.", min_length=1)
    code: str = Field(description="The file's source text.")
    modules: dict[str, str] | None = Field(
        default=None,
        description=(
            "Modules beside the DAG file that it imports (helpers.py, a package's files), by path "
            "relative to the file's folder (e.g. helpers.py, lib/__init__.py) -> source text; placed "
            "beside the source wherever a Python task runs."
        ),
    )


class TaskDefaults(ManyModel):
    """Task fields that may be set once for every task of the DAG (Airflow's default_args)."""

    image: str | None = Field(
        default=None, description="Container image of the task's Pod. Ignored by the local runner."
    )
    owner: str | None = Field(default=None, description="Who owns the task; informational.")
    retries: int | None = Field(
        default=None, ge=0, le=100, description="How many times a failed try is retried."
    )
    retry_delay: str | None = Field(
        default=None, pattern=DURATION_PATTERN, description="Wait between tries, e.g. 30s, 5m, 1h30m."
    )
    retry_exponential_backoff: bool | None = Field(
        default=None, description="Double the delay after every failed try (capped by maxRetryDelay)."
    )
    max_retry_delay: str | None = Field(
        default=None, pattern=DURATION_PATTERN, description="Upper bound of the retry delay."
    )
    execution_timeout: str | None = Field(
        default=None, pattern=DURATION_PATTERN, description="A try running longer than this fails."
    )
    depends_on_past: bool | None = Field(
        default=None, description="Run only if this task succeeded (or was skipped) in the previous DAG run."
    )
    trigger_rule: TriggerRule | None = Field(
        default=None,
        description="When the task may run, judged from the states of its direct upstream tasks "
        "(default all_success).",
    )
    env: list[EnvVar] | None = Field(
        default=None,
        description="Environment variables of the task's process or container.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    connections: list[str] | None = Field(
        default=None,
        description="Airflow Connection ids the task receives as environment variables AIRFLOW_CONN_<ID> "
        "(URI or JSON). On a cluster the value comes from the connection's Secret by reference "
        "(secretKeyRef), never copied into the Pod spec; locally from AIRFLOW_CONN_<ID> or the connections file.",
    )
    pod: dict[str, Any] | None = Field(
        default=None,
        description="Overrides merged into the task's Pod; ignored by the local runner. Keys: `metadata` "
        "({labels, annotations}, added to the Pod's; annotation values are Jinja-templated per try), "
        "`container` (a partial container merged into the task's `main` container: resources, "
        "volumeMounts, imagePullPolicy, securityContext, envFrom, env, ...), and any PodSpec field "
        "(nodeSelector, tolerations, affinity, serviceAccountName, volumes, imagePullSecrets, "
        "priorityClassName, extra containers, ...). Merge: maps merge key by key; lists "
        "of objects with a `name` merge by name; other values and lists are replaced. A task's `pod` "
        "replaces `defaults.pod` as a whole. The operator keeps its own labels, ownerReference, "
        "restartPolicy Never, the main container's name and termination message settings, and KFL_* "
        "variables.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class Task(TaskDefaults):
    """One node of the DAG. Each run of it is a task instance; each attempt of an instance is a try."""

    name: str = Field(
        description="The task id, unique within the DAG.",
        pattern=names.TASK_NAME_PATTERN,
        min_length=1,
        max_length=names.TASK_NAME_MAX,
    )
    depends_on: list[str] = Field(
        default_factory=list, description="Task ids that are direct upstream of this task."
    )
    type: TaskType | None = Field(
        default=None, description="What runs; inferred from the other fields when omitted."
    )
    bash: str | None = Field(default=None, description="A shell script run with `sh -c`; Jinja-templated.")
    command: list[str] | None = Field(
        default=None, description="Container entrypoint; each item Jinja-templated."
    )
    args: list[str] | None = Field(
        default=None, description="Arguments to the entrypoint; each item Jinja-templated."
    )
    branch: bool = Field(
        default=False,
        description="The task's XCom return value (a task id or a list of them) names which direct "
        "downstream tasks run; the others are skipped.",
    )
    short_circuit: bool = Field(
        default=False, description="A falsy XCom return value skips every task downstream of this one."
    )
    ignore_downstream_trigger_rules: bool | None = Field(
        default=None,
        description="With shortCircuit: true (the default, as Airflow's) skips every downstream task; "
        "false skips only the direct downstream tasks and lets the others' trigger rules decide.",
    )
    sensor: ExternalTaskSensor | None = Field(
        default=None, description="Makes this task an external-task sensor."
    )
    trigger_dag: TriggerDag | None = Field(
        default=None, description="Makes this task trigger another DAG's run."
    )
    python: PythonCall | None = Field(
        default=None, description="Makes this task call a Python function of spec.pythonSource."
    )
    skip_exit_code: int | None = Field(
        default=None,
        ge=1,
        le=255,
        description="An exit code of the task's process that means it skipped itself: the try ends "
        "skipped, not failed (Airflow's BashOperator skip_on_exit_code; its Airflow layer sets "
        "Airflow's default, 99). A Python task always skips with 99 (AirflowSkipException).",
    )

    def skip_code(self) -> int | None:
        """The exit code that ends a try of this task `skipped`: the one rule both shells apply."""
        if self.effective_type() is TaskType.python:
            return SKIP_EXIT_CODE
        return self.skip_exit_code

    def effective_type(self) -> TaskType | None:
        """The task type, inferred when not given explicitly; None if nothing says what to run."""
        if self.type is not None:
            return self.type
        if self.sensor is not None:
            return TaskType.sensor
        if self.trigger_dag is not None:
            return TaskType.trigger_dag
        if self.python is not None:
            return TaskType.python
        if self.bash is not None:
            return TaskType.bash
        if self.command is not None or self.args is not None:
            return TaskType.container
        return None


class DAGSpec(ApiModel):
    """Desired state of a DAG: its schedule and its tasks."""

    description: str | None = Field(default=None, description="Human-readable description.")
    schedule: str | None = Field(
        default=None,
        description="Cron expression, or one of @once @hourly @daily @weekly @monthly @yearly. Omitted: manual runs only.",
    )
    timezone: str = Field(
        default="UTC", description="IANA time zone the schedule is evaluated in, DST included."
    )
    start_date: Time | None = Field(
        default=None,
        description="RFC 3339 time of the first data interval's start (e.g. 2020-02-09T00:00:00Z).",
    )
    end_date: Time | None = Field(
        default=None, description="No run is scheduled with a logical date after this."
    )
    catchup: bool = Field(
        default=False, description="Create a run for every missed interval since startDate."
    )
    paused: bool = Field(default=False, description="A paused DAG gets no new scheduled runs.")
    max_active_runs: int = Field(
        default=16, ge=1, le=10000, description="Runs of this DAG that may be active at once."
    )
    max_active_tasks: int = Field(
        default=16, ge=1, le=100000, description="Task instances of one run that may be running at once."
    )
    tags: list[str] = Field(default_factory=list, description="Free-form labels for finding DAGs.")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Default template params ({{ params.x }}); a run's conf overrides them.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    defaults: TaskDefaults = Field(
        default_factory=TaskDefaults,
        description="Fields applied to every task that does not set them (default_args).",
    )
    tasks: list[Task] = Field(
        description="The tasks of the DAG.",
        min_length=1,
        # Keyed by task id: the apiserver rejects duplicate ids and server-side apply merges per task.
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    pod_cleanup: Literal["keep", "onSuccess", "onRunEnd"] = Field(
        default="keep",
        description="When task Pods are deleted: keep them, delete each on success, or delete all when the run ends.",
    )
    successful_runs_history_limit: int | None = Field(
        default=None,
        ge=0,
        description="Finished successful DAGRuns kept; older ones are deleted. Unset: keep all.",
    )
    failed_runs_history_limit: int | None = Field(
        default=None,
        ge=0,
        description="Finished failed DAGRuns kept; older ones are deleted. Unset: keep all.",
    )
    python_source: PythonSource | None = Field(
        default=None,
        description="The Python DAG file this DAG was compiled from (`kubeflowlite compile`); "
        "its Python tasks run functions of it.",
    )


class Condition(ApiModel):
    """A Kubernetes status condition."""

    type: str = Field(description="Condition type, e.g. Ready.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="Machine-readable CamelCase reason for the last transition.")
    message: str = Field(default="", description="Human-readable details.")
    last_transition_time: Time | None = Field(
        default=None, description="When status last changed (RFC 3339)."
    )
    observed_generation: int | None = Field(
        default=None, description="The metadata.generation the condition was computed from."
    )


CONDITIONS_LIST_EXTRA: dict[str, Any] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}
"""Conditions are a list keyed by type (so server-side apply merges them per type)."""


class DAGStatus(ApiModel):
    """Observed state of a DAG, written by the operator."""

    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready=True when the DAG validates; Ready=False with the problems otherwise.",
        json_schema_extra=CONDITIONS_LIST_EXTRA,
    )
    observed_generation: int | None = Field(
        default=None, description="The metadata.generation this status was computed from."
    )
    next_run: Time | None = Field(
        default=None, description="Logical date (RFC 3339) of the next scheduled run; unset if none is due."
    )
    last_run: str | None = Field(default=None, description="Name of the most recently created DAGRun.")
    last_run_state: str | None = Field(
        default=None, description="State of the most recent DAGRun: queued, running, success or failed."
    )


class ObjectMeta(ApiModel):
    """The parts of Kubernetes object metadata that a DAG file uses."""

    model_config = ApiModel.model_config | {"extra": "allow"}

    name: str = Field(
        description="The DAG id.", pattern=names.DAG_NAME_PATTERN, max_length=names.DAG_NAME_MAX
    )
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class DAG(ApiModel):
    """A DAG file: a Kubernetes-style object of kind DAG."""

    api_version: Literal["kubeflowlite.io/v1alpha1"] = Field(
        default="kubeflowlite.io/v1alpha1", alias="apiVersion"
    )
    kind: Literal["DAG"] = "DAG"
    metadata: ObjectMeta
    spec: DAGSpec
    status: DAGStatus | None = Field(default=None, description="Observed state, written by the operator.")

    @property
    def dag_id(self) -> str:
        return self.metadata.name


def effective_field(spec: DAGSpec, task: Task, name: str) -> Any:
    """One task field with the DAG's `defaults` applied: the task's own value, else the default's.

    The one place defaults are applied (effective_task, the engine and the operator use it).
    """
    value = getattr(task, name)
    return getattr(spec.defaults, name) if value is None else value


def effective_task(spec: DAGSpec, task: Task) -> Task:
    """The task with the DAG's `defaults` filled in wherever the task leaves a field unset."""
    overrides = {
        name: value
        for name in TaskDefaults.model_fields
        if getattr(task, name) is None and (value := effective_field(spec, task, name)) is not None
    }
    return task.model_copy(update=overrides) if overrides else task
