"""The one change made to an Airflow example DAG file before kubeflowlite runs it: its import lines.

A user moving a DAG file over changes `from airflow... import ...` into
`from kubeflowlite.airflow... import ...`; REWRITE does exactly that and nothing else.
"""

from __future__ import annotations

import re

REWRITE = re.compile(r"^(\s*)from\s+airflow(?=[.\s])", re.MULTILINE)
"""An import line `from airflow... import ...` (the only form Airflow's examples use)."""


def rewrite_imports(source: str) -> str:
    """`source` with only its Airflow import lines changed to kubeflowlite.airflow."""
    return REWRITE.sub(r"\1from kubeflowlite.airflow", source)
