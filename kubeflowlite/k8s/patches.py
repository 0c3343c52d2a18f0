"""The smallest JSON merge patch (RFC 7386) that turns one object into another.

The run controller writes a run's whole status once per reconcile, but most of it
(the DAG spec snapshot, finished tasks) did not change: sending only the
difference keeps each write small however large the run is. Pure and total over
JSON values; lists are replaced whole, as merge patches require.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch that, applied to `old`, gives `new` (empty when they are equal).

    Keys of `old` missing from `new` become null (deleted). `new` must not hold
    None values itself, since a merge patch cannot store a null.
    """
    patch: dict[str, Any] = {}
    for key, value in new.items():
        before = old.get(key, _MISSING)
        if before is value:
            continue  # shared, so equal (an unchanged task's status, the spec snapshot): not walked
        if before is _MISSING:
            patch[key] = value
        elif isinstance(value, Mapping) and isinstance(before, Mapping):
            inner = merge_patch(before, value)
            if inner:
                patch[key] = inner
        elif before != value:
            patch[key] = value
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


def apply_merge_patch(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7386: `patch` applied to a copy of `target` (used to keep caches equal to the server)."""
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping):
            current = result.get(key)
            result[key] = apply_merge_patch(current if isinstance(current, Mapping) else {}, value)
        else:
            result[key] = value
    return result


class _Missing:
    pass


_MISSING = _Missing()
