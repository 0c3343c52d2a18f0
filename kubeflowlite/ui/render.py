"""A task instance's command as the operator renders it, for when its Pod (which shows it) is gone.

The operator renders a try from the run's DAG spec snapshot, its logical date and
conf, and the XCom values stored for the run (k8s.launch); this does the same with
the same functions, so the UI shows what `kubeflowlite render` would, plus real
XComs. Only `{{ var... }}` differs: the operator's KFL_VAR_* variables are not
known here, so they render empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubeflowlite.api.dag import DAGSpec
from kubeflowlite.api.times import parse_time
from kubeflowlite.core import templating
from kubeflowlite.core.schedule import Schedule
from kubeflowlite.k8s import launch


def rendered_command(run: Mapping[str, Any], task: str, xcoms: Mapping[str, str]) -> str | None:
    """The command, args and env of `task`'s current try; None before the run started."""
    status = run.get("status") or {}
    snapshot = status.get("dagSpec")
    if not snapshot:
        return None
    spec = run.get("spec") or {}
    dag_spec = DAGSpec.model_validate(snapshot)
    metadata = run.get("metadata") or {}
    try:
        interval = Schedule.from_spec(dag_spec).interval_for(parse_time(str(spec.get("logicalDate") or "")))
    except ValueError as error:
        return f"# cannot render: spec.logicalDate: {error}"
    facts = launch.RunFacts(
        namespace=str(metadata.get("namespace") or ""),
        run_name=str(metadata.get("name") or ""),
        run_uid=str(metadata.get("uid") or ""),
        dag_name=str(spec.get("dagName") or ""),
        spec=dag_spec,
        interval=interval,
        run_type=str(spec.get("runType") or "manual"),
        conf=spec.get("conf") or {},
    )
    try:
        effective = facts.task(task)
    except KeyError:
        return None
    instance = (status.get("tasks") or {}).get(task) or {}
    context = launch.context_for(facts, effective, int(instance.get("tryNumber") or 1), xcoms)
    try:
        rendered = templating.render_task(effective, context)
    except templating.TemplateError as error:
        return f"# template error: {error}"
    lines: list[str] = []
    if rendered.bash is not None:
        lines.append(rendered.bash.rstrip("\n"))
    lines += [*(rendered.command or []), *(rendered.args or [])]
    lines += [f"# env {name}={value}" for name, value in rendered.env.items()]
    return "\n".join(lines)
