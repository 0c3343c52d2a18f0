"""What a user watching `kubeflowlite run` sees: live progress, then a summary.

The runner reports to an observer (`RunObserver`) and never prints itself, so the
same loop serves a terminal (a rich live table of tasks, `LiveDisplay`), a pipe or
CI log (one timestamped line per task state change, `PlainDisplay`), `-o json`
(either of them on stderr) and tests (`SilentObserver`). Both displays end with
the same summary table and name the log file of every failed try: the lines are
made once (`_Reporting`, as text with a style per segment) and drawn by each. Only
the terminal's display imports rich: a piped run never loads it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TextIO

from kubeflowlite.api.dagrun import DAGRun, DAGRunStatus, RunState, TaskInstanceStatus, TaskState
from kubeflowlite.core import durations

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live
    from rich.table import Table

Line = list[tuple[str, str]]
"""One line of output: (text, rich style) segments."""

STATE_STYLES: dict[str, str] = {
    TaskState.none.value: "dim",
    TaskState.scheduled.value: "cyan",
    TaskState.queued.value: "cyan",
    TaskState.running.value: "bold blue",
    TaskState.success.value: "green",
    TaskState.failed.value: "bold red",
    TaskState.up_for_retry.value: "yellow",
    TaskState.upstream_failed.value: "dark_orange",
    TaskState.skipped.value: "magenta",
    RunState.success.value: "bold green",
}


@dataclass(frozen=True)
class RunInfo:
    """What a display needs to know about a run before it starts."""

    dag_id: str
    run_id: str
    run_dir: Path
    tasks: Sequence[str]
    """Task ids in the order to show them."""
    log_path: Callable[[str, int], Path]
    """(task, try number) -> that try's log file."""


class RunObserver(Protocol):
    """Receives a run's progress from the runner."""

    def start(self, info: RunInfo) -> None: ...

    def update(self, status: DAGRunStatus) -> None: ...

    def note(self, message: str) -> None: ...

    def finish(self, run: DAGRun, *, interrupted: bool) -> None: ...


class SilentObserver:
    """Shows nothing (tests, nested runs that report through their own log)."""

    def start(self, info: RunInfo) -> None:
        pass

    def update(self, status: DAGRunStatus) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def finish(self, run: DAGRun, *, interrupted: bool) -> None:
        pass


def make_display(stream: TextIO, *, terminal: bool | None = None) -> RunObserver:
    """A live display on a terminal (`terminal`, default: `stream` is one), plain lines anywhere else."""
    if terminal is None:
        terminal = stream.isatty()
    if not terminal:
        return PlainDisplay(stream)
    from rich.console import Console

    return LiveDisplay(Console(file=stream, highlight=False, emoji=False))


class _Reporting:
    """What both displays share: failure notices and the final summary, as lines to draw."""

    def __init__(self) -> None:
        self.info: RunInfo | None = None
        self._seen: dict[str, TaskInstanceStatus] = {}

    def _draw(self, line: Line) -> None:
        raise NotImplementedError

    def _transitions(self, status: DAGRunStatus) -> list[tuple[str, TaskInstanceStatus]]:
        """Tasks whose (state, try) changed since the last update."""
        changed = []
        seen = self._seen
        for task, instance in status.tasks.items():
            before = seen.get(task)
            if before is instance:  # unchanged (a new status shares the instances it did not change)
                continue
            seen[task] = instance
            if (
                before is None
                or before.state is not instance.state
                or before.try_number != instance.try_number
            ):
                changed.append((task, instance))
        return changed

    def _failure_line(self, task: str, instance: TaskInstanceStatus) -> Line | None:
        if instance.state not in (TaskState.failed, TaskState.up_for_retry) or self.info is None:
            return None
        if instance.try_number < 1:
            return None
        log = self.info.log_path(task, instance.try_number)
        line = [(f"{task} try {instance.try_number} {instance.state.value}", _style(instance.state.value))]
        if instance.message:
            line.append((f": {instance.message}", ""))
        if log.exists():
            line.append((f"\n    log: {log}", "dim"))
        return line

    def _summary(self, run: DAGRun, *, interrupted: bool) -> None:
        self._summary_table(run)
        for task, instance in run.status.tasks.items():
            if instance.state is TaskState.failed and instance.try_number >= 1 and self.info is not None:
                log = self.info.log_path(task, instance.try_number)
                line = [
                    (f"{task} failed", _style(TaskState.failed.value)),
                    (f": {instance.message or 'no reason given'}", ""),
                ]
                if log.exists():
                    line.append((f"  log: {log}", "dim"))
                self._draw(line)
        state = run.status.state.value
        line = [("run ", ""), (state, _style(state))]
        line.append((f"  {run.spec.dag_name} {self.info.run_id if self.info else run.metadata.name}", ""))
        if run.status.duration:
            line.append((f" in {run.status.duration}", ""))
        if interrupted:
            line.append(("  (interrupted)", "bold yellow"))
        self._draw(line)
        if self.info is not None:
            self._draw([(f"logs: {self.info.run_dir}", "dim")])

    def _summary_table(self, run: DAGRun) -> None:
        raise NotImplementedError


class PlainDisplay(_Reporting):
    """One timestamped line per task state change: for pipes, files and CI logs (no rich)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream

    def start(self, info: RunInfo) -> None:
        self.info = info
        self._line(f"run {info.run_id} of {info.dag_id}: {len(info.tasks)} tasks, logs in {info.run_dir}")

    def update(self, status: DAGRunStatus) -> None:
        for task, instance in self._transitions(status):
            if instance.state is TaskState.none:
                continue
            suffix = f" (try {instance.try_number})" if instance.try_number else ""
            self._line(f"{task} {instance.state.value}{suffix}")
            failure = self._failure_line(task, instance)
            if failure is not None:
                self._draw(failure)

    def note(self, message: str) -> None:
        self._line(message)

    def finish(self, run: DAGRun, *, interrupted: bool) -> None:
        self._summary(run, interrupted=interrupted)
        self.stream.flush()

    def _draw(self, line: Line) -> None:
        self.stream.write("".join(text for text, _ in line) + "\n")

    def _summary_table(self, run: DAGRun) -> None:
        # The terminal table's columns as aligned text.
        tasks = list(self.info.tasks) if self.info is not None else list(run.status.tasks)
        rows = [("task", "state", "tries", "duration")]
        for task in tasks:
            rows.append(_row(task, run.status.tasks.get(task, TaskInstanceStatus()), now=None))
        widths = [max(len(row[column]) for row in rows) for column in range(4)]
        lines = [f"{run.spec.dag_name} {run.metadata.name}"]
        for name, state, tries, duration in rows:
            cells = (
                f"{name:<{widths[0]}}  {state:<{widths[1]}}  {tries:>{widths[2]}}  {duration:>{widths[3]}}"
            )
            lines.append(f" {cells}".rstrip())
        self.stream.write("\n".join(lines) + "\n")

    def _line(self, message: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.stream.write(f"{stamp} {message}\n")


class LiveDisplay(_Reporting):
    """A live table of tasks on a terminal; failures are printed above it as they happen."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console
        self._status = DAGRunStatus()
        self._live: Live | None = None

    def start(self, info: RunInfo) -> None:
        from rich.live import Live

        self.info = info
        # get_renderable: every refresh re-renders, so running durations keep ticking
        # between the runner's updates.
        self._live = Live(
            get_renderable=self._render, console=self.console, refresh_per_second=4, transient=True
        )
        self._live.start()

    def update(self, status: DAGRunStatus) -> None:
        self._status = status
        for task, instance in self._transitions(status):
            failure = self._failure_line(task, instance)
            if failure is not None:
                self._draw(failure)
        if self._live is not None:
            self._live.refresh()

    def note(self, message: str) -> None:
        self.console.print(message, markup=False)

    def finish(self, run: DAGRun, *, interrupted: bool) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        self._summary(run, interrupted=interrupted)

    def _draw(self, line: Line) -> None:
        from rich.text import Text

        self.console.print(Text.assemble(*line), soft_wrap=True)

    def _summary_table(self, run: DAGRun) -> None:
        self.console.print(summary_table(run, order=self.info.tasks if self.info else None))

    def _render(self) -> RenderableType:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        info = self.info
        tasks = list(info.tasks) if info else sorted(self._status.tasks)
        counts: dict[str, int] = {}
        for task in tasks:
            state = self._status.tasks.get(task, TaskInstanceStatus()).state.value
            counts[state] = counts.get(state, 0) + 1
        header = Text(f"{info.dag_id} {info.run_id}  " if info else "")
        for state, count in sorted(counts.items()):
            header.append(f"{state}={count} ", style=_style(state))
        table = Table(show_edge=False, pad_edge=False, box=None)
        table.add_column("task")
        table.add_column("state")
        table.add_column("try", justify="right")
        table.add_column("duration", justify="right")
        now = datetime.now(UTC)
        for task in tasks:
            instance = self._status.tasks.get(task, TaskInstanceStatus())
            name, state, tries, duration = _row(task, instance, now=now)
            table.add_row(name, Text(state, style=_style(state)), tries, duration)
        return Group(header, table)


def summary_table(run: DAGRun, *, order: Sequence[str] | None = None) -> Table:
    """Task, state, tries and duration of every task of a finished run (a rich table)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{run.spec.dag_name} {run.metadata.name}", title_justify="left")
    table.add_column("task")
    table.add_column("state")
    table.add_column("tries", justify="right")
    table.add_column("duration", justify="right")
    tasks = list(order) if order is not None else list(run.status.tasks)
    for task in tasks:
        name, state, tries, duration = _row(task, run.status.tasks.get(task, TaskInstanceStatus()), now=None)
        table.add_row(name, Text(state, style=_style(state)), tries, duration)
    return table


def _row(task: str, instance: TaskInstanceStatus, *, now: datetime | None) -> tuple[str, str, str, str]:
    tries = str(instance.try_number) if instance.try_number else "-"
    return task, instance.state.value, tries, task_duration(instance, now=now)


def task_duration(instance: TaskInstanceStatus, *, now: datetime | None) -> str:
    """How long the current try ran (or has been running, when `now` is given)."""
    if instance.start_time is None or instance.try_number == 0:
        return "-"
    end = instance.end_time or now
    if end is None:
        return "-"
    return durations.format_elapsed((end - instance.start_time).total_seconds())


def _style(state: str) -> str:
    return STATE_STYLES.get(state, "")
