"""What the UI's forms may send, and how much of a log a page asks for: checked before any write.

The trigger form gives a logical date and a conf (the CLI's parsing rules), the
clear form a task and the CLI's selection options (`cluster_plans.clear_selection`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from kubeflowlite.api.dag import DAGSpec
from kubeflowlite.api.times import parse_time
from kubeflowlite.cli.cluster_plans import PlanError, clear_selection
from kubeflowlite.core.runconf import parse_conf_json
from kubeflowlite.ui.models import Obj


class FormError(ValueError):
    """A form value the UI refuses to send; the message names the field."""


def parse_trigger(
    conf_text: str, date_text: str, *, now: datetime | None = None
) -> tuple[datetime, dict[str, Any]]:
    """The trigger form: (logical date, conf). Empty date = now (to the second), empty conf = {}."""
    try:
        conf = parse_conf_json(conf_text) if conf_text.strip() else {}
    except ValueError as error:
        raise FormError(str(error).replace("--conf", "conf")) from None
    if not date_text.strip():
        return (now or datetime.now(UTC)).replace(microsecond=0), conf
    try:
        return parse_time(date_text.strip()), conf
    except ValueError as error:
        raise FormError(f"logical date {date_text.strip()!r}: {error}") from None


def clear_tasks(run: Obj, task: str, *, downstream: bool, upstream: bool, only_failed: bool) -> list[str]:
    """Which tasks clearing `task` of `run` resets: the CLI's selection. PlanError when impossible."""
    status = run.get("status") or {}
    snapshot = status.get("dagSpec")
    if not snapshot:
        raise PlanError("the run has not started yet: nothing to clear")
    spec = DAGSpec.model_validate(snapshot)
    if task not in {t.name for t in spec.tasks}:
        raise PlanError(f"the run has no task {task!r}")
    states = {name: (i or {}).get("state") or "none" for name, i in (status.get("tasks") or {}).items()}
    return clear_selection(
        spec,
        states,
        pattern=f"^{re.escape(task)}$",
        downstream=downstream,
        upstream=upstream,
        only_failed=only_failed,
    )


LOG_TAILS = (200, 2000, 20000)
"""How many last lines of a log a page shows: the first, then "show more" steps up (then the whole log)."""
LOG_MAX_BYTES = 8 * 1024 * 1024
"""Never more than this of one log in one page."""


def log_tail(requested: str | None) -> int | None:
    """The tailLines of a log request: one of LOG_TAILS, or None for the whole log ("all")."""
    if requested == "all":
        return None
    try:
        value = int(requested or 0)
    except ValueError:
        value = 0
    return next((tail for tail in LOG_TAILS if tail >= value), None)


def more_log(tail: int | None) -> str | None:
    """The next "show more" step after `tail` lines ("all" last); None when the whole log is shown."""
    if tail is None:
        return None
    return next((str(step) for step in LOG_TAILS if step > tail), "all")


def log_cut(log: bytes, tail: int | None) -> str | None:
    """What a log page leaves out of `log` (read with `tail` lines, at most LOG_MAX_BYTES), or None if nothing."""
    if len(log) >= LOG_MAX_BYTES:
        return f"Cut at {LOG_MAX_BYTES // (1024 * 1024)} MiB: the rest of this log is not shown."
    if tail is not None and log.count(b"\n") >= tail:
        return f"The last {tail} lines: earlier lines are hidden."
    return None
