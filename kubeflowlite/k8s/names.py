"""Deterministic names and labels for everything the operator creates.

Restart safety rests on these functions: the operator names a DAGRun from its DAG
and logical date and a Pod from its run, task and try, so a controller that died
after a create and retries it gets AlreadyExists instead of a duplicate. They are
pure and total: any input string maps to a valid Kubernetes name or label value.

Mapping rules (one helper, `_shorten`, applies them everywhere):
- an input that already is a valid DNS-1123 label of fitting length is kept as is;
- otherwise it is lowercased, every character outside [a-z0-9-] becomes '-', and a
  short hash of the *exact* input is appended, so `a_b`, `a.b`, `A-b` and `a-b`
  still give four different names;
- a result that would be too long is cut and ends with a hash of the full input.
Names stay readable for the common case and collision-free for the rest (up to a
40-bit hash collision among lossy inputs).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from datetime import UTC, datetime
from enum import Enum

LABEL_DAG = "kubeflowlite.io/dag"
LABEL_RUN = "kubeflowlite.io/run"
LABEL_TASK = "kubeflowlite.io/task"
LABEL_TRY = "kubeflowlite.io/try"

ANNOTATION_TASK_ID = "kubeflowlite.io/task-id"
"""The exact task id (labels may carry a hashed form when the id is long or has odd characters)."""
ANNOTATION_RUN_NAME = "kubeflowlite.io/run-name"
"""The exact DAGRun name, for the same reason."""

LABEL_APP_NAME = "app.kubernetes.io/name"
LABEL_APP_COMPONENT = "app.kubernetes.io/component"
LABEL_APP_PART_OF = "app.kubernetes.io/part-of"
LABEL_APP_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_APP_INSTANCE = "app.kubernetes.io/instance"

APP_NAME = "kubeflowlite"
MANAGED_BY = "kubeflowlite-operator"

MAX_NAME = 63
"""DNS-1123 label length: also the limit of a label value and of a Pod's hostname."""

_HASH_LEN = 8
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def short_hash(text: str, length: int = _HASH_LEN) -> str:
    """A lowercase base32 digest of `text` (DNS-safe), `length` characters long."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:length]


def is_dns_label(text: str) -> bool:
    """True if `text` is a valid DNS-1123 label (Pod names, Service names, ...)."""
    return len(text) <= MAX_NAME and bool(_DNS_LABEL.match(text))


def is_label_value(text: str) -> bool:
    """True if `text` is a valid Kubernetes label value."""
    return len(text) <= MAX_NAME and bool(_LABEL_VALUE.match(text))


def _sanitize(text: str) -> str:
    """Lowercase `text` and replace every character outside [a-z0-9-] by '-'."""
    return re.sub(r"[^a-z0-9-]", "-", text.lower())


def _shorten(readable: str, *, identity: str, suffix: str = "", lossy: bool, limit: int = MAX_NAME) -> str:
    """`readable` + `suffix` as a DNS label of at most `limit` characters.

    `readable` is already sanitized; `identity` is the exact input the name stands
    for. A hash of `identity` is inserted before `suffix` when the mapping was lossy
    or the name has to be cut, which keeps distinct identities apart.
    """
    if not lossy and len(readable) + len(suffix) <= limit:
        name = readable + suffix
    else:
        tag = "-" + short_hash(identity)
        room = limit - len(tag) - len(suffix)
        name = readable[:room].strip("-") + tag + suffix
    return name.strip("-") or short_hash(identity)


def dns_label(text: str, *, limit: int = MAX_NAME) -> str:
    """`text` as a DNS-1123 label: unchanged if it already is one, else sanitized and hashed."""
    if len(text) <= limit and _DNS_LABEL.match(text):
        return text
    return _shorten(_sanitize(text).strip("-"), identity=text, lossy=True, limit=limit)


def label_value(text: str) -> str:
    """`text` as a label value: unchanged if valid, else sanitized, cut and hashed (injective)."""
    if is_label_value(text):
        return text
    tag = "-" + short_hash(text)
    prefix = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[: MAX_NAME - len(tag)].strip("-_.")
    return prefix + tag if prefix else short_hash(text)


def format_logical_date(logical_date: datetime) -> str:
    """The compact, name-safe UTC form of a logical date: 20200209t145500 (microseconds kept if any)."""
    moment = logical_date.replace(tzinfo=UTC) if logical_date.tzinfo is None else logical_date.astimezone(UTC)
    text = moment.strftime("%Y%m%dt%H%M%S")
    if moment.microsecond:
        text += f"-{moment.microsecond:06d}"
    return text


def dagrun_name(dag: str, logical_date: datetime, run_type: str | Enum) -> str:
    """The DAGRun name for one logical date of one DAG: `<dag>-<run type>-<date>`.

    Deterministic, so the scheduler can re-create a due run after a restart and get
    AlreadyExists instead of a duplicate. Naive datetimes are taken as UTC.
    """
    kind = str(run_type.value) if isinstance(run_type, Enum) else run_type
    suffix = f"-{_sanitize(kind)}-{format_logical_date(logical_date)}"
    readable = _sanitize(dag).strip("-")
    lossy = readable != dag
    return _shorten(readable, identity=f"{dag}\0{kind}\0{suffix}", suffix=suffix, lossy=lossy)


@functools.lru_cache(maxsize=1 << 16)
def pod_name(run_name: str, task: str, try_number: int) -> str:
    """The Pod name of one try of one task of a run: `<run>-<task>-<try>`.

    Task ids may contain `_`, `.` and capitals and run names may be DNS subdomains;
    both are mapped to a DNS label, with a hash of the exact (run, task) pair when
    the mapping is lossy or the name too long. The try number always ends the name,
    so (task, try) pairs of one run never collide. Memoized: a reconcile names every
    task's current Pod.
    """
    run_part = _sanitize(run_name).strip("-")
    task_part = _sanitize(task).strip("-")
    lossy = run_part != run_name or task_part != task or not task_part
    return _shorten(
        f"{run_part}-{task_part}".strip("-"),
        identity=f"{run_name}\0{task}",
        suffix=f"-{try_number}",
        lossy=lossy,
    )


def xcom_configmap_name(run_name: str) -> str:
    """The ConfigMap holding a run's XCom values: `<run>-xcom`."""
    readable = _sanitize(run_name).strip("-")
    return _shorten(readable, identity=run_name, suffix="-xcom", lossy=readable != run_name)


def source_configmap_name(run_name: str) -> str:
    """The ConfigMap holding a run's Python DAG file source: `<run>-pysrc`."""
    readable = _sanitize(run_name).strip("-")
    return _shorten(readable, identity=run_name, suffix="-pysrc", lossy=readable != run_name)


def standard_labels(*, component: str, instance: str | None = None) -> dict[str, str]:
    """The app.kubernetes.io/* labels of an object kubeflowlite manages."""
    labels = {
        LABEL_APP_NAME: APP_NAME,
        LABEL_APP_PART_OF: APP_NAME,
        LABEL_APP_MANAGED_BY: MANAGED_BY,
        LABEL_APP_COMPONENT: label_value(component),
    }
    if instance is not None:
        labels[LABEL_APP_INSTANCE] = label_value(instance)
    return labels


def run_labels(*, dag: str, run_name: str, component: str) -> dict[str, str]:
    """Labels of an object that belongs to a whole run (the XCom ConfigMap, for example)."""
    return standard_labels(component=component, instance=run_name) | {
        LABEL_DAG: label_value(dag),
        LABEL_RUN: label_value(run_name),
    }


def task_labels(*, dag: str, run_name: str, task: str, try_number: int) -> dict[str, str]:
    """Labels of one task try's Pod."""
    return run_labels(dag=dag, run_name=run_name, component="task") | {
        LABEL_TASK: label_value(task),
        LABEL_TRY: str(try_number),
    }


def run_selector(run_name: str) -> str:
    """A label selector for every object of a run."""
    return f"{LABEL_RUN}={label_value(run_name)}"
