"""Leader election over a coordination.k8s.io Lease, so that `replicaCount: 2` is safe.

Every replica watches (kopf keeps its indices warm), only the holder of the Lease
reconciles. This is client-go's leaderelection, small:

- the holder renews `spec.renewTime` every `retry` seconds with an update that
  carries the Lease's resourceVersion, so two candidates can never both win one
  round (the loser gets 409 Conflict);
- a candidate takes the Lease when its holder is empty (released on shutdown) or
  when the record has not changed for `lease` seconds *by the candidate's own
  monotonic clock* (never by comparing the holder's renewTime with its clock:
  clock skew between nodes does not matter);
- a holder that could not renew for `deadline` seconds (< `lease`) stops at once
  (`on_lost`: the process exits and its Pod restarts as a candidate), so it has
  stopped acting before anyone else may take over. Task Pods have deterministic
  names, so even a write racing the takeover creates nothing twice.

With the defaults (lease 10 s, retry 2 s) a standby takes over at most ~12 s
after the leader died, and at once after a clean shutdown.

`decide` is the pure rule; `LeaderElector` is the loop around it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubeflowlite.k8s import kube

logger = logging.getLogger(__name__)

LEASES = kube.Resource("coordination.k8s.io", "v1", "leases")
DEFAULT_LEASE_NAME = "kubeflowlite-operator"


@dataclass(frozen=True)
class Timing:
    lease: float = 10.0
    """Seconds without a renewal after which a Lease may be taken over."""
    deadline: float = 7.0
    """Seconds a holder keeps acting without a successful renewal (must be < lease)."""
    retry: float = 2.0
    """Seconds between attempts to acquire or renew."""


@dataclass(frozen=True)
class Settings:
    namespace: str
    name: str = DEFAULT_LEASE_NAME
    identity: str = ""
    timing: Timing = Timing()


def default_identity() -> str:
    """The Pod's name (or the host's) plus a per-process suffix: a restarted process is a new candidate."""
    base = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{base}_{uuid.uuid4().hex[:8]}"


class Action(enum.Enum):
    create = "create"
    """No Lease yet: create it, held by us."""
    acquire = "acquire"
    """Free or expired: take it (update, guarded by resourceVersion)."""
    renew = "renew"
    """Ours: renew it."""
    wait = "wait"
    """Someone else holds it and it has not expired."""


def decide(
    lease: dict[str, Any] | None, *, identity: str, unchanged_for: float, default_lease: float
) -> Action:
    """What a candidate does with the Lease it just read; `unchanged_for`: seconds it saw this record unchanged."""
    if lease is None:
        return Action.create
    spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity") or ""
    if holder == identity:
        return Action.renew
    if not holder:
        return Action.acquire
    duration = float(spec.get("leaseDurationSeconds") or default_lease)
    return Action.acquire if unchanged_for >= duration else Action.wait


def _micro_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_spec(
    previous: dict[str, Any] | None, *, identity: str | None, lease_seconds: float, now: datetime
) -> dict[str, Any]:
    """The spec a candidate writes: renew keeps acquireTime; a new holder bumps leaseTransitions."""
    old = (previous or {}).get("spec") or {}
    same = identity is not None and old.get("holderIdentity") == identity
    spec: dict[str, Any] = {
        "holderIdentity": identity,
        "leaseDurationSeconds": max(1, round(lease_seconds)) if identity else 1,
        "acquireTime": old.get("acquireTime") if same else _micro_time(now),
        "renewTime": _micro_time(now),
        "leaseTransitions": int(old.get("leaseTransitions") or 0) + (0 if same or identity is None else 1),
    }
    return spec


class LeaderElector:
    """Acquire and keep the Lease; `on_started` once leadership is won, `on_lost` if it cannot be kept."""

    def __init__(
        self,
        client: kube.Kube,
        settings: Settings,
        *,
        on_started: Callable[[], None],
        on_lost: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.settings = settings
        self.identity = settings.identity or default_identity()
        self.on_started = on_started
        self.on_lost = on_lost
        self.clock = clock
        self.leading = False
        self._seen: tuple[str, str] | None = None
        self._seen_at = 0.0
        self._renewed_at = 0.0

    async def run(self) -> None:
        """Forever: try to acquire, then renew; calls on_lost (which should end the process) on loss."""
        timing = self.settings.timing
        logger.info("leader election: %s is a candidate for lease %s/%s", self.identity, *self._where())
        while True:
            try:
                await self._round()
            except (TimeoutError, kube.ApiError, OSError) as error:
                logger.warning("leader election: %s", error)
            if self.leading and self.clock() - self._renewed_at > timing.deadline:
                logger.error(
                    "leader election: could not renew lease for %.0fs; stepping down", timing.deadline
                )
                self.leading = False
                self.on_lost()
                return
            await asyncio.sleep(timing.retry)

    def still_leading(self) -> bool:
        """Whether this process may act now: it leads and renewed within the deadline.

        Checked before every reconcile, so a process that was frozen (SIGSTOP, a stalled VM)
        past its deadline does not act on wake-up before its election loop notices.
        """
        return self.leading and self.clock() - self._renewed_at <= self.settings.timing.deadline

    def _where(self) -> tuple[str, str]:
        return self.settings.namespace, self.settings.name

    async def _round(self) -> None:
        namespace, name = self._where()
        lease = await self.client.get_or_none(LEASES, namespace, name)
        now = self.clock()
        if lease is not None:
            spec = lease.get("spec") or {}
            record = (str(spec.get("holderIdentity") or ""), str(spec.get("renewTime") or ""))
            if record != self._seen:
                self._seen, self._seen_at = record, now
        action = decide(
            lease,
            identity=self.identity,
            unchanged_for=now - self._seen_at,
            default_lease=self.settings.timing.lease,
        )
        if self.leading and action is not Action.renew:
            self._renewed_at = float("-inf")  # taken over: stop at once (run() calls on_lost)
            return
        if action is Action.wait:
            return
        spec = lease_spec(
            lease, identity=self.identity, lease_seconds=self.settings.timing.lease, now=datetime.now(UTC)
        )
        try:
            if action is Action.create:
                body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name}}
                await self.client.create(LEASES, namespace, {**body, "spec": spec})
            else:
                assert lease is not None
                await self._update(lease, spec)
        except kube.ApiError as error:
            if error.conflict:
                return  # someone else won this round
            raise
        self._renewed_at = self.clock()
        if not self.leading:
            self.leading = True
            logger.info("leader election: %s now leads (lease %s/%s)", self.identity, namespace, name)
            self.on_started()

    async def _update(self, lease: dict[str, Any], spec: dict[str, Any]) -> None:
        namespace, name = self._where()
        body = {**lease, "spec": spec}
        await self.client.request(
            "PUT", LEASES.path(namespace, name), verb="update", resource=LEASES.plural, body=body
        )

    async def release(self) -> None:
        """On a clean shutdown: hand the Lease back so a standby takes over at once."""
        if not self.leading:
            return
        self.leading = False
        namespace, name = self._where()
        try:
            lease = await self.client.get_or_none(LEASES, namespace, name)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            spec = lease_spec(lease, identity=None, lease_seconds=1, now=datetime.now(UTC))
            await self._update(lease, spec)
            logger.info("leader election: released lease %s/%s", namespace, name)
        except (TimeoutError, kube.ApiError, OSError) as error:
            logger.warning("leader election: could not release the lease: %s", error)
