"""The graph view's layout: Graphviz `dot` on the server, cached by a hash of the DAG spec.

JavaScript layout libraries took 7 to 47 s on a 1,000-task DAG and froze the page;
`dot` lays it out in under a second. The layout depends only on the tasks and
their dependencies, so it is computed once per distinct spec and kept (an LRU of
SVG texts); a run's states are then applied by putting a CSS class on each node
(`colour`), which costs one pass over the text and no layout.

Each node is an SVG group with id `g<hash of the task id>` (safe in HTML whatever
the task is called) and class `node task`, linked to the task instance page
(relative `tasks/<id>`, so the run page's URL ends with a slash); the task id
appears as text escaped by Graphviz, and the templates insert the SVG as markup.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import subprocess
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from kubeflowlite.k8s import names

DOT_TIMEOUT = 60.0
CACHE_SIZE = 64


class LayoutError(RuntimeError):
    """Graphviz is missing or failed; the message says which."""


def node_id(task: str) -> str:
    return "g" + names.short_hash(task, 16)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def dot_source(tasks: Sequence[Mapping[str, Any]]) -> str:
    """The DOT text of a DAG spec's tasks (`name`, `dependsOn`): left to right, upstream first."""
    lines = [
        "digraph dag {",
        '  graph [rankdir=LR, nodesep=0.15, ranksep=0.4, bgcolor="transparent"];',
        '  node [shape=box, style="rounded,filled", fontname="sans-serif", fontsize=11, height=0.3, '
        'fillcolor="#ffffff", color="#999999"];',
        '  edge [color="#999999", arrowsize=0.6];',
    ]
    known = {str(task.get("name")) for task in tasks}
    for task in tasks:
        name = str(task.get("name"))
        href = "tasks/" + quote(name, safe="")
        lines.append(f"  {_quote(name)} [id={_quote(node_id(name))}, class=task, href={_quote(href)}];")
    for task in tasks:
        name = str(task.get("name"))
        for upstream in task.get("dependsOn") or []:
            if str(upstream) in known:
                lines.append(f"  {_quote(str(upstream))} -> {_quote(name)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def spec_key(tasks: Sequence[Mapping[str, Any]]) -> str:
    """The cache key: a hash of what the layout depends on (task names and their dependencies)."""
    shape = [[str(t.get("name")), sorted(str(u) for u in t.get("dependsOn") or [])] for t in tasks]
    return hashlib.sha256(json.dumps(shape, separators=(",", ":")).encode()).hexdigest()


_XML_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.DOTALL)


def run_dot(source: str) -> str:
    """`dot -Tsvg` of `source`: the <svg> element alone (no XML prologue or doctype), at its natural size."""
    binary = shutil.which("dot")
    if binary is None:
        raise LayoutError("Graphviz `dot` is not installed (Debian package graphviz)")
    try:
        result = subprocess.run(
            [binary, "-Tsvg"], input=source, capture_output=True, text=True, timeout=DOT_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise LayoutError(f"dot took longer than {DOT_TIMEOUT:g}s") from None
    if result.returncode != 0:
        raise LayoutError(f"dot failed: {result.stderr.strip()[:500]}")
    return _XML_PROLOGUE.sub("", result.stdout, count=1)


class LayoutCache:
    """SVG layouts by spec hash, least recently used dropped first; safe to share between threads.

    A layout being computed is computed once: a second caller for the same spec waits
    for it (the grid page lays its DAG out in the background, and a click on a run
    while that runs must not start `dot` again).
    """

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._svgs: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self._computing: dict[str, threading.Lock] = {}
        self.layouts = 0
        """How many times dot ran (what the cache saves)."""

    def _cached(self, key: str) -> str | None:
        with self._lock:
            if key in self._svgs:
                self._svgs.move_to_end(key)
                return self._svgs[key]
            return None

    def svg(self, tasks: Sequence[Mapping[str, Any]]) -> str:
        key = spec_key(tasks)
        found = self._cached(key)
        if found is not None:
            return found
        with self._lock:
            computing = self._computing.setdefault(key, threading.Lock())
        with computing:
            found = self._cached(key)
            if found is not None:
                return found
            try:
                svg = run_dot(dot_source(tasks))
            finally:
                with self._lock:
                    self._computing.pop(key, None)
            with self._lock:
                self.layouts += 1
                self._svgs[key] = svg
                while len(self._svgs) > self.size:
                    self._svgs.popitem(last=False)
            return svg

    def prepare(self, tasks: Sequence[Mapping[str, Any]]) -> None:
        """Lay `tasks` out ahead of need (a page's background task); a failure shows when the graph is opened."""
        if tasks:
            with contextlib.suppress(LayoutError):
                self.svg(tasks)


_NODE = re.compile(r'<g id="(g[a-z0-9]{16})" class="node task">')


def colour(svg: str, states: Mapping[str, str]) -> str:
    """`svg` with each task node's class extended by `st-<state>` (task id -> state; unknown: none)."""
    by_node = {node_id(task): state for task, state in states.items()}

    def replace(match: re.Match[str]) -> str:
        state = by_node.get(match.group(1), "none")
        state = state if re.fullmatch(r"[a-z_]+", state) else "none"
        return f'<g id="{match.group(1)}" class="node task st-{state}">'

    return _NODE.sub(replace, svg)
