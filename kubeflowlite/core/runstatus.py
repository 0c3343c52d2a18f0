"""What both shells add to the engine's run status: the spec snapshot, the data interval, the duration.

The engine decides states; the operator and the local runner then record the same
facts about the run in the same way, so a DAGRun reads the same wherever it ran
(`status.duration` in particular is written by one formatter, durations.format_elapsed).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kubeflowlite.api.dag import DAGSpec
from kubeflowlite.api.dagrun import DAGRunStatus
from kubeflowlite.core import durations
from kubeflowlite.core.schedule import RunInterval, format_time, parse_time


def with_run_facts(
    status: DAGRunStatus, *, spec: DAGSpec, interval: RunInterval, now: datetime
) -> DAGRunStatus:
    """The snapshot, data interval and duration (until the run's end, else until `now`) added to `status`."""
    update: dict[str, Any] = {
        "dag_spec": spec,
        "data_interval_start": format_time(interval.data_interval_start),
        "data_interval_end": format_time(interval.data_interval_end),
    }
    if status.start_time:
        end = parse_time(status.end_time) if status.end_time else now
        update["duration"] = durations.format_elapsed((end - parse_time(status.start_time)).total_seconds())
    return status.model_copy(update=update)
