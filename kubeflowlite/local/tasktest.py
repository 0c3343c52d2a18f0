"""`kubeflowlite test`: run one task once, as Airflow's `tasks test` does.

Dependencies are ignored and nothing is recorded: no run directory, no run
record, no state. The task's output streams to the caller (stdout), and the exit
code is the task's. Upstream XComs do not exist in this mode, so `ti.xcom_pull`
returns None and says so on the warning stream. The XCom value the task would
push is parsed and shown, so a too-large or invalid value is caught here too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from kubeflowlite.api.dag import DAG
from kubeflowlite.core import durations, templating, xcom
from kubeflowlite.core.schedule import Schedule
from kubeflowlite.local import runtime_config
from kubeflowlite.local.launcher import ImmediateResult, exit_message
from kubeflowlite.local.prepare import RunContext, find_task, prepare_try
from kubeflowlite.local.rundir import RunDir

Write = Callable[[str], None]

EXIT_INTERRUPTED = 130


def test_task(
    dag: DAG,
    task_name: str,
    logical_date: datetime,
    *,
    out: Write,
    warn: Write,
    dag_file: Path | None = None,
    runs_dir: Path = Path("kfl-runs"),
    conf: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run try 1 of `task_name` at `logical_date`; return its exit code (0 for an empty task)."""
    task = find_task(dag, task_name)
    interval = Schedule.from_spec(dag.spec).interval_for(logical_date)
    base_env = dict(os.environ if environ is None else environ)

    def xcom_pull(task_ids: Any = None, key: str | None = None, **_: Any) -> None:
        warn(
            f"warning: ti.xcom_pull(task_ids={task_ids!r}) returns None: `kubeflowlite test` runs no upstream task"
        )
        return None

    with tempfile.TemporaryDirectory(prefix="kfl-test-") as scratch:
        context = RunContext(
            dag=dag,
            dag_file=dag_file,
            run_id=templating.run_id_for("manual", logical_date),
            interval=interval,
            conf=dict(conf or {}),
            variables=runtime_config.local_variables(base_env),
            connections=runtime_config.local_connections(base_env),
            run_dir=RunDir(Path(scratch)),
            runs_dir=runs_dir,
            xcom_pull=xcom_pull,
            base_env=base_env,
        )
        request = prepare_try(context, task.name, 1)
        if isinstance(request, ImmediateResult):
            if request.message:
                warn(request.message)
            return 0 if request.phase.value == "succeeded" else 1
        timeout = (
            durations.parse_duration(task.execution_timeout).total_seconds()
            if task.execution_timeout
            else None
        )
        code, output_tail = _stream(
            list(request.argv), env=dict(request.env), out=out, warn=warn, timeout=timeout
        )
        if code != 0:
            if code != EXIT_INTERRUPTED:
                warn(f"task {task.name} failed: {exit_message(code)}")
            return code if code > 0 else 1
        try:
            data = request.xcom_path.read_bytes() if request.xcom_path.exists() else b""
            value = xcom.parse_xcom_file(data)
            if value is xcom.NO_XCOM and request.last_line_xcom:
                value = xcom.last_line_xcom(output_tail)
        except xcom.XComError as error:
            warn(f"task {task.name} failed: XCom: {error}")
            return 1
        if value is not xcom.NO_XCOM:
            warn(f"XCom return value: {xcom.encode_xcom(value)}")
        return 0


def _stream(
    argv: list[str], *, env: dict[str, str], out: Write, warn: Write, timeout: float | None
) -> tuple[int, str]:
    """Run `argv` in its own session, copying its output to `out`; Ctrl-C stops it (exit 130).

    Returns the exit code and the end of the output (for the last-line XCom).
    """
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    timer: threading.Timer | None = None
    timed_out = threading.Event()
    if timeout is not None:

        def expire() -> None:
            timed_out.set()
            _kill_group(process.pid)

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()
    tail = ""
    stdout = process.stdout
    assert stdout is not None
    try:
        for raw in iter(lambda: os.read(stdout.fileno(), 65536), b""):
            text = raw.decode("utf-8", errors="replace")
            out(text)
            tail = (tail + text)[-65536:]
        code = process.wait()
    except KeyboardInterrupt:
        _kill_group(process.pid)
        process.wait()
        warn("interrupted")
        return EXIT_INTERRUPTED, tail
    finally:
        if timer is not None:
            timer.cancel()
        _kill_group(process.pid)
    if timed_out.is_set():
        warn(f"execution timeout after {timeout:g}s")
        return 1, tail
    return code, tail


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
