"""Helpers for tests that write a DAG file and point at its lines (test_dsl, test_airflow_compat)."""

from __future__ import annotations

import textwrap
from pathlib import Path


def write(tmp_path: Path, text: str, name: str = "dag_file.py") -> Path:
    """`text`, dedented, written to tmp_path/name."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def line_of(path: Path, fragment: str) -> int:
    """The number of the first line of `path` containing `fragment`."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if fragment in line:
            return number
    raise AssertionError(fragment)
