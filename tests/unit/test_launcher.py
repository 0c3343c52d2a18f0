"""Tries launched together (SubprocessLauncher.launch_all): processes started side by side.

Boundary: real processes (sh), the launcher alone (no runner, no engine); the runner's
tests cover the launcher inside a run.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeflowlite.core.engine import Attempt, AttemptPhase
from kubeflowlite.local.launcher import ImmediateResult, ProcessRequest, SubprocessLauncher


@pytest.fixture
def launcher() -> Iterator[SubprocessLauncher]:
    subject = SubprocessLauncher(grace_period=1.0)
    yield subject
    subject.close()


def bash(tmp_path: Path, task: str, script: str, **extra: object) -> ProcessRequest:
    return ProcessRequest(
        task=task,
        try_number=1,
        argv=["sh", "-c", script],
        env=dict(os.environ),
        log_path=tmp_path / task / "try-1.log",
        xcom_path=tmp_path / task / "try-1.xcom.json",
        last_line_xcom=True,
        **extra,  # type: ignore[arg-type]
    )


def finished(launcher: SubprocessLauncher, timeout: float = 20.0) -> dict[str, Attempt]:
    deadline = time.monotonic() + timeout
    while launcher.running and time.monotonic() < deadline:
        launcher.wait(0.5)
        launcher.poll()
    assert not launcher.running, "tries still running"
    return launcher.poll()


def test_tries_launched_together_each_run_with_their_own_log_and_xcom(
    launcher: SubprocessLauncher, tmp_path: Path
) -> None:
    requests = [bash(tmp_path, f"t{n}", f"echo out{n}") for n in range(8)]
    assert launcher.launch_all(requests) == [None] * 8  # all started, none ended at once
    attempts = finished(launcher)
    assert {task: (a.phase, a.xcom) for task, a in attempts.items()} == {
        f"t{n}": (AttemptPhase.succeeded, f"out{n}") for n in range(8)
    }
    for n in range(8):
        assert (tmp_path / f"t{n}" / "try-1.log").read_text() == f"out{n}\n"


def test_a_try_that_cannot_start_fails_alone(launcher: SubprocessLauncher, tmp_path: Path) -> None:
    missing = ProcessRequest(
        task="missing",
        try_number=1,
        argv=[str(tmp_path / "no-such-program")],
        env=dict(os.environ),
        log_path=tmp_path / "missing" / "try-1.log",
        xcom_path=tmp_path / "missing" / "try-1.xcom.json",
    )
    empty = ImmediateResult(task="empty", try_number=1, phase=AttemptPhase.succeeded)
    ok, failed, skipped = launcher.launch_all([bash(tmp_path, "ok", "echo 1"), missing, empty])
    assert ok is None
    assert failed is not None and failed.phase is AttemptPhase.failed
    assert failed.message is not None and failed.message.startswith("could not start")
    assert failed.message in (tmp_path / "missing" / "try-1.log").read_text()  # noted in its log
    assert skipped is not None and skipped.phase is AttemptPhase.succeeded
    attempts = finished(launcher)
    assert attempts["ok"].phase is AttemptPhase.succeeded
    assert attempts["missing"] == failed and attempts["empty"] == skipped


def test_an_unexpected_error_is_raised_once_the_started_tries_are_recorded(
    launcher: SubprocessLauncher, tmp_path: Path
) -> None:
    broken = bash(tmp_path, "broken", "true")
    broken = ProcessRequest(**{**broken.__dict__, "env": {"A=B": "x"}})  # Popen: ValueError
    with pytest.raises(ValueError, match="environment"):
        launcher.launch_all([bash(tmp_path, "ok", "sleep 0.2"), broken])
    assert launcher.running_tries() == [("ok", 1)]  # not left running unseen
    assert finished(launcher)["ok"].phase is AttemptPhase.succeeded


def test_a_task_launched_twice_at_once_is_refused(launcher: SubprocessLauncher, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="launched twice"):
        launcher.launch_all([bash(tmp_path, "t", "true"), bash(tmp_path, "t", "true")])
    assert launcher.running == 0


def test_closing_the_launcher_ends_its_spawner_threads(tmp_path: Path) -> None:
    subject = SubprocessLauncher()
    subject.launch_all([bash(tmp_path, f"t{n}", "true") for n in range(4)])
    finished(subject)
    subject.close()
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("kfl-spawn")]
