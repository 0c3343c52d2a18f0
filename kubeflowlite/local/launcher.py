"""Task tries as local subprocesses: the local counterpart of the operator's Pods.

The processes behind the local runner's implementation of the execution port
(core.loop.Launcher, which the operator implements with Pods): launch a try, poll
what every try is doing, terminate a try, all answered in the engine's own terms
(`Attempt`), so nothing above this module knows that a try is a process.

Rules that make a subprocess behave like a task Pod:
- each try runs in its own session (so its own process group): terminating a try
  signals the whole tree it started, SIGTERM first and SIGKILL after a grace
  period, and when the try's main process ends whatever it left behind in its
  group is killed too, as the kubelet does when a container exits;
- stdout and stderr go to one log file per try;
- a try succeeds only once its XCom value is read: the JSON in its XCOM file, or
  for bash tasks the last line of output (Airflow's BashOperator rule); a value
  that is not JSON or is over 4 KiB fails the try with the reason in its message
  and at the end of its log.

Exits are noticed without polling: each child has a pidfd in a selector, and the
runner's signal handlers wake the same selector through a pipe.

Starting a process waits until the child has exec'd its program (so that a program
that cannot start fails its try with the reason); on a busy machine that wait is most
of a launch. `launch_all` starts the processes of several tries side by side, on up to
SPAWNERS threads that do nothing but the spawning: all the bookkeeping stays on the
caller's thread.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubeflowlite.core import xcom
from kubeflowlite.core.engine import NO_XCOM, Attempt, AttemptPhase

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

DEFAULT_GRACE_PERIOD = 5.0
"""Seconds between SIGTERM and SIGKILL when a try is terminated."""

LOG_TAIL_BYTES = 64 * 1024
"""How much of the end of a log is read to find the last line of output."""

_FALLBACK_POLL = 0.05
"""Seconds between checks for exited children where pidfds are unavailable."""

SPAWNERS = 4
"""Threads that start the processes of tries launched together (the first 16 tries of a
fan-out start in about half the time with 4 as with 1, on 2 busy cores)."""


@dataclass(frozen=True)
class ProcessRequest:
    """One try to run as a process."""

    task: str
    try_number: int
    argv: Sequence[str]
    env: Mapping[str, str]
    log_path: Path
    xcom_path: Path
    last_line_xcom: bool = False
    """Without an XCom file, push the last line of output (bash tasks)."""
    cwd: Path | None = None
    ok_exit_codes: tuple[int, ...] = (0,)
    """Exit codes that count as success."""
    skip_exit_codes: tuple[int, ...] = ()
    """Exit codes that mean the try skipped itself (Python tasks: core.taskenv.SKIP_EXIT_CODE)."""


@dataclass(frozen=True)
class ImmediateResult:
    """A try that needs no process: an empty task, or a try that failed before it could start."""

    task: str
    try_number: int
    phase: AttemptPhase
    message: str | None = None
    xcom: Any = NO_XCOM
    log_path: Path | None = None
    """Where to note the failure message, if any."""


@dataclass
class _Process:
    request: ProcessRequest
    popen: subprocess.Popen[bytes]
    start_time: datetime
    pidfd: int | None
    stop_reason: str | None = None
    kill_at: float | None = None


@dataclass
class _Tries:
    """Latest try of each task: a live process or a finished observation."""

    live: dict[str, _Process] = field(default_factory=dict)
    done: dict[str, Attempt] = field(default_factory=dict)


def now_utc() -> datetime:
    return datetime.now(UTC)


class SubprocessLauncher:
    """Runs task tries as subprocesses and reports them as engine Attempts."""

    def __init__(self, *, grace_period: float = DEFAULT_GRACE_PERIOD) -> None:
        self.grace_period = grace_period
        self._tries = _Tries()
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        self._pidfds = hasattr(os, "pidfd_open")
        self._spawners: ThreadPoolExecutor | None = None

    # -- the port -------------------------------------------------------------------------

    def launch(self, request: ProcessRequest | ImmediateResult) -> Attempt | None:
        """Start a try; its attempt if it ended at once (no process, or one that could not start).

        A try of a task replaces the task's previous try, which must have ended.
        """
        (attempt,) = self.launch_all([request])
        return attempt

    def launch_all(self, requests: Sequence[ProcessRequest | ImmediateResult]) -> list[Attempt | None]:
        """`launch` for each request (of different tasks), their processes started side by side."""
        attempts: list[Attempt | None] = [None] * len(requests)
        spawns: list[tuple[int, ProcessRequest, datetime]] = []
        tasks: set[str] = set()
        for index, request in enumerate(requests):
            previous = self._tries.live.get(request.task)
            if previous is not None:
                raise RuntimeError(
                    f"task {request.task!r} still has try {previous.request.try_number} running"
                )
            if request.task in tasks:
                raise RuntimeError(f"task {request.task!r} is launched twice at once")
            tasks.add(request.task)
            if isinstance(request, ImmediateResult):
                attempts[index] = self._immediate(request)
                continue
            self._tries.done.pop(request.task, None)
            request.log_path.parent.mkdir(parents=True, exist_ok=True)
            request.xcom_path.unlink(missing_ok=True)
            spawns.append((index, request, now_utc()))
        started = self._spawn_all([request for _, request, _ in spawns])
        unexpected: BaseException | None = None
        for (index, request, start), popen in zip(spawns, started, strict=True):
            if isinstance(popen, subprocess.Popen):
                self._tries.live[request.task] = _Process(request, popen, start, self._open_pidfd(popen.pid))
            elif isinstance(popen, OSError):
                attempts[index] = self._could_not_start(request, start, popen)
            else:
                unexpected = unexpected or popen  # raised once every started process is recorded
        if unexpected is not None:
            raise unexpected
        return attempts

    def poll(self) -> dict[str, Attempt]:
        """The latest try of every launched task, reaping the tries whose process has ended."""
        self._reap()
        attempts = dict(self._tries.done)
        for task, process in self._tries.live.items():
            attempts[task] = Attempt(
                task=task,
                try_number=process.request.try_number,
                phase=AttemptPhase.running,
                start_time=process.start_time,
            )
        return attempts

    def terminate(self, task: str, try_number: int, *, reason: str) -> None:
        """Stop a running try: SIGTERM to its process group now, SIGKILL after the grace period."""
        process = self._tries.live.get(task)
        if process is None or process.request.try_number != try_number or process.stop_reason is not None:
            return
        process.stop_reason = reason
        process.kill_at = time.monotonic() + self.grace_period
        _signal_group(process.popen.pid, signal.SIGTERM)

    # -- helpers for the runner -----------------------------------------------------------

    @property
    def running(self) -> int:
        """How many tries have a live process."""
        return len(self._tries.live)

    def running_tries(self) -> list[tuple[str, int]]:
        return [(task, p.request.try_number) for task, p in self._tries.live.items()]

    def terminate_all(self, *, reason: str) -> None:
        for task, try_number in self.running_tries():
            self.terminate(task, try_number, reason=reason)

    def kill_all(self) -> None:
        """SIGKILL every live try's process group now, without waiting for the grace period."""
        for process in self._tries.live.values():
            process.stop_reason = process.stop_reason or "killed"
            process.kill_at = None
            _signal_group(process.popen.pid, signal.SIGKILL)

    def wait(self, timeout: float | None) -> None:
        """Block until a child exits, `interrupt()` is called, a kill is due, or `timeout` passes."""
        deadline = self._next_kill()
        if deadline is not None:
            until_kill = max(0.0, deadline - time.monotonic())
            timeout = until_kill if timeout is None else min(timeout, until_kill)
        if not self._pidfds and self._tries.live:
            timeout = _FALLBACK_POLL if timeout is None else min(timeout, _FALLBACK_POLL)
        if timeout is not None and timeout <= 0:
            return
        for key, _ in self._selector.select(timeout):
            if key.fd == self._wake_read:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._wake_read, 512):
                        pass

    def interrupt(self) -> None:
        """Wake `wait()`; safe to call from a signal handler."""
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_write, b"\0")

    def close(self) -> None:
        """Kill whatever still runs and release the selector (the runner calls terminate first)."""
        for process in self._tries.live.values():
            _signal_group(process.popen.pid, signal.SIGKILL)
            process.popen.wait()
            self._close_pidfd(process)
        self._tries.live.clear()
        if self._spawners is not None:
            self._spawners.shutdown()
            self._spawners = None
        self._selector.close()
        os.close(self._wake_read)
        os.close(self._wake_write)

    # -- internals ------------------------------------------------------------------------

    def _immediate(self, request: ImmediateResult) -> Attempt:
        moment = now_utc()
        attempt = Attempt(
            task=request.task,
            try_number=request.try_number,
            phase=request.phase,
            start_time=moment,
            end_time=moment,
            message=request.message,
            xcom=request.xcom,
        )
        self._tries.done[request.task] = attempt
        if request.phase is AttemptPhase.failed and request.message:
            _note(request.log_path, request.message)
        return attempt

    def _could_not_start(self, request: ProcessRequest, start: datetime, error: OSError) -> Attempt:
        message = f"could not start {request.argv[0]!r}: {error.strerror or error}"
        _note(request.log_path, message)
        attempt = Attempt(
            task=request.task,
            try_number=request.try_number,
            phase=AttemptPhase.failed,
            start_time=start,
            end_time=now_utc(),
            message=message,
        )
        self._tries.done[request.task] = attempt
        return attempt

    def _spawn_all(self, requests: Sequence[ProcessRequest]) -> list[_Spawned]:
        if len(requests) < 2:
            return [_spawn(request) for request in requests]
        if self._spawners is None:
            from concurrent.futures import (
                ThreadPoolExecutor,
            )  # (a run that starts one try at a time never needs it)

            self._spawners = ThreadPoolExecutor(SPAWNERS, thread_name_prefix="kfl-spawn")
        return list(self._spawners.map(_spawn, requests))

    def _open_pidfd(self, pid: int) -> int | None:
        if not self._pidfds:
            return None
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            self._pidfds = False
            return None
        self._selector.register(fd, selectors.EVENT_READ)
        return fd

    def _close_pidfd(self, process: _Process) -> None:
        if process.pidfd is not None:
            self._selector.unregister(process.pidfd)
            os.close(process.pidfd)
            process.pidfd = None

    def _next_kill(self) -> float | None:
        due = [p.kill_at for p in self._tries.live.values() if p.kill_at is not None]
        return min(due) if due else None

    def _reap(self) -> None:
        now = time.monotonic()
        for task, process in list(self._tries.live.items()):
            pid = process.popen.pid
            if process.kill_at is not None and now >= process.kill_at:
                _signal_group(pid, signal.SIGKILL)
                process.kill_at = None
            try:
                exited = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                exited = None
                if process.popen.returncode is None:
                    continue
            if exited is None and process.popen.returncode is None:
                continue
            # The leader is a zombie, so its pid (the group id) cannot be reused yet:
            # sweep what it left in its group, then reap it.
            _signal_group(pid, signal.SIGKILL)
            returncode = process.popen.wait()
            self._close_pidfd(process)
            del self._tries.live[task]
            self._tries.done[task] = self._finished(process, returncode)

    def _finished(self, process: _Process, returncode: int) -> Attempt:
        request = process.request
        end = now_utc()

        def attempt(phase: AttemptPhase, *, message: str | None = None, value: Any = NO_XCOM) -> Attempt:
            return Attempt(
                task=request.task,
                try_number=request.try_number,
                phase=phase,
                start_time=process.start_time,
                end_time=end,
                exit_code=returncode,
                message=message,
                xcom=value,
            )

        if process.stop_reason is not None:
            _note(request.log_path, f"try stopped: {process.stop_reason}")
            return attempt(AttemptPhase.failed, message=process.stop_reason)
        if returncode in request.skip_exit_codes:
            return attempt(AttemptPhase.skipped, message=f"skipped by the task (exit code {returncode})")
        if returncode not in request.ok_exit_codes:
            return attempt(AttemptPhase.failed, message=exit_message(returncode))
        try:
            value = self._xcom_value(request)
        except xcom.XComError as error:
            message = f"XCom: {error}"
            _note(request.log_path, message)
            return attempt(AttemptPhase.failed, message=message)
        return attempt(AttemptPhase.succeeded, value=value)

    def _xcom_value(self, request: ProcessRequest) -> Any:
        try:
            data = request.xcom_path.read_bytes()
        except FileNotFoundError:
            data = b""
        value = xcom.parse_xcom_file(data)
        if value is xcom.NO_XCOM and request.last_line_xcom:
            value = xcom.last_line_xcom(read_tail(request.log_path))
        return value


_Spawned = subprocess.Popen[bytes] | Exception
"""A started process, or why it did not start (OSError: the try fails; anything else is raised)."""


def _spawn(request: ProcessRequest) -> _Spawned:
    """Start a try's process (on a spawner thread: this touches nothing but its own request)."""
    try:
        with open(request.log_path, "ab") as log:
            return subprocess.Popen(
                list(request.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(request.env),
                cwd=request.cwd,
                start_new_session=True,
                close_fds=True,
            )
    except Exception as error:  # handed to the caller's thread, which raises it
        return error


def read_tail(path: Path, limit: int = LOG_TAIL_BYTES) -> str:
    """The last `limit` bytes of a file as text (invalid UTF-8 replaced)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            return handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def exit_message(returncode: int) -> str:
    """Why a process failed, in words: its exit code, or the signal that killed it."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exit code {returncode}"


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _note(log_path: Path | None, message: str) -> None:
    """Append a runner note to a try's log, so the reason for a failure sits next to the output."""
    if log_path is None:
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"[kubeflowlite] {message}\n")
