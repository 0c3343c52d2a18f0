"""A reconcile work queue: what turns watch events and timers into reconciles.

kopf calls handlers per event; a controller wants something else (controller-runtime's
workqueue): "this run needs a look", deduplicated. Ten Pod events of one run that
arrive while its reconcile is busy give one more reconcile, not ten; one key is
never reconciled by two workers at once; a reconcile that asks to be woken later
(a retry delay, a schedule) gets a timer, the earliest one wins; a reconcile that
raises is retried with exponential backoff instead of hot-looping.

A key is not started again sooner than its last reconcile cost in CPU (`spacing`
times that, at most SPACING_MAX) after that one ended: a run whose reconcile is
costly (a 10,000-task status) batches the events that arrive meanwhile into one
reconcile, instead of taking the event loop from every other run on each Pod
update. A reconcile that cost less than SPACING_MIN is not held back at all, and
time spent waiting on the API server does not count. A reconcile that returns 0
(CONTINUE: it stopped at a cap with work left, such as a wide run's Pod launches) is
queued again at once, behind the keys already waiting, and not held back: holding it
would only stretch the launch out, since the events it batches are its own.

No kopf and no Kubernetes here, only asyncio: the queue is tested on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

Handler = Callable[[Hashable], Awaitable[float | None]]
"""Reconcile one key; returns seconds until it must be reconciled again (None: only on events)."""

CONTINUE = 0.0
"""What a handler returns to be queued again at once, not held back by spacing (see the module docstring)."""

BACKOFF_BASE = 0.25
BACKOFF_MAX = 60.0
SPACING_MIN = 0.01
"""Reconciles that cost less CPU than this (a small run's) are never held back."""
SPACING_MAX = 2.0


async def wait_or_timeout(event: asyncio.Event, timeout: float | None) -> None:
    """Until `event` is set or `timeout` seconds (None: no limit) have passed on the loop's clock."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)


@dataclass
class WorkQueue:
    """Deduplicating queue with `workers` concurrent handlers, timers and error backoff."""

    handler: Handler
    workers: int = 4
    clock: Callable[[], float] = time.monotonic
    wait: Callable[[asyncio.Event, float | None], Awaitable[None]] = wait_or_timeout
    """How the timer loop waits for the next timer (a test passes a fake clock's, with `clock`)."""
    on_error: Callable[[Hashable, BaseException], None] | None = None
    spacing: float = 4.0
    """A key starts again no sooner than `spacing` x its last reconcile's cost after it ended (4: a costly run
    takes at most a fifth of the event loop); 0: off."""
    cost_clock: Callable[[], float] = time.thread_time
    """What a reconcile's cost is measured in: the event loop thread's CPU time (a test passes its clock)."""
    _queue: asyncio.Queue[Hashable] = field(default_factory=asyncio.Queue)
    _dirty: set[Hashable] = field(default_factory=set)
    """Keys waiting for a worker (in `_queue`, or re-queued when their current reconcile ends)."""
    _processing: set[Hashable] = field(default_factory=set)
    _timers: dict[Hashable, float] = field(default_factory=dict)
    _heap: list[tuple[float, int, Hashable]] = field(default_factory=list)
    _failures: dict[Hashable, int] = field(default_factory=dict)
    _not_before: dict[Hashable, float] = field(default_factory=dict)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    _timer_changed: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    # -- adding ----------------------------------------------------------------------------------

    def add(self, key: Hashable) -> None:
        """Reconcile `key` soon (once, however often it is added before a worker takes it)."""
        if key in self._dirty:
            return
        if key not in self._processing and key in self._not_before:
            wait = self._not_before[key] - self.clock()
            if wait > 0:
                self.add_after(key, wait)
                return
            del self._not_before[key]
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.put_nowait(key)

    def add_after(self, key: Hashable, delay: float) -> None:
        """Reconcile `key` in `delay` seconds, unless an earlier timer or an add comes first."""
        if delay <= 0:
            self.add(key)
            return
        when = self.clock() + delay
        current = self._timers.get(key)
        if current is not None and current <= when:
            return
        self._timers[key] = when
        heapq.heappush(self._heap, (when, next(self._seq), key))
        self._timer_changed.set()

    def forget(self, key: Hashable) -> None:
        """Drop the key's timer and error history (its object is gone)."""
        self._timers.pop(key, None)
        self._failures.pop(key, None)
        self._not_before.pop(key, None)

    def __len__(self) -> int:
        return self._queue.qsize()

    @property
    def busy(self) -> bool:
        """Work is queued or in progress (timers not counted)."""
        return bool(self._dirty or self._processing)

    def timer(self, key: Hashable) -> float | None:
        """When `key` is due by timer (clock time), if it has one."""
        return self._timers.get(key)

    # -- running ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers and the timer loop in the running event loop."""
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"reconcile-{i}") for i in range(self.workers)
        ]
        self._tasks.append(asyncio.create_task(self._timer_loop(), name="reconcile-timers"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _worker(self) -> None:
        while True:
            key = await self._queue.get()
            self._dirty.discard(key)
            self._processing.add(key)
            started = self.cost_clock()
            delay: float | None = None
            try:
                delay = await self.handler(key)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                if self.on_error is not None:
                    self.on_error(key, error)
                else:
                    logger.exception("reconcile of %s failed (attempt %d)", key, failures)
                self.add_after(key, min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (failures - 1)))
            else:
                self._failures.pop(key, None)
                if delay is not None:
                    self.add_after(key, delay)
            finally:
                cost = self.cost_clock() - started
                if self.spacing and cost >= SPACING_MIN and delay != CONTINUE:
                    self._not_before[key] = self.clock() + min(cost * self.spacing, SPACING_MAX)
                self._processing.discard(key)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.add(key)

    async def _timer_loop(self) -> None:
        while True:
            now = self.clock()
            while self._heap and self._heap[0][0] <= now:
                when, _, key = heapq.heappop(self._heap)
                if self._timers.get(key) == when:
                    del self._timers[key]
                    self.add(key)
            timeout = (self._heap[0][0] - now) if self._heap else None
            self._timer_changed.clear()
            await self.wait(self._timer_changed, timeout)
