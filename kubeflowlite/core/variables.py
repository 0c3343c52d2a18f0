"""Airflow Variables outside a cluster, and the ones a DAG file sees while it is imported.

Locally Variables are KFL_VAR_<name> environment variables over the JSON object in
the file named by KFL_VARIABLES_FILE (`local`). Templates get them from the shell
(on a cluster: labelled ConfigMaps, k8s.runtime_config); Airflow's `Variable.get`
at a DAG file's module level reads `lookup`: in a task's process the bootstrap
(kubeflowlite.pytask) installs the run's Variables with `use`, anywhere else the
local ones apply. Standard library only (the bootstrap imports it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

VARIABLE_ENV_PREFIX = "KFL_VAR_"
VARIABLES_FILE_ENV = "KFL_VARIABLES_FILE"

_installed: dict[str, str] | None = None


def use(values: Mapping[str, str]) -> None:
    """Make `values` the Variables of this process (the bootstrap does, from its context)."""
    global _installed
    _installed = dict(values)


def local(environ: Mapping[str, str]) -> dict[str, str]:
    """Variables of a local process: KFL_VAR_<name> over the JSON object of KFL_VARIABLES_FILE.

    ValueError if the file cannot be read or is not a JSON object; non-string values
    are kept as JSON text (so var.json reads them back).
    """
    return {**texts_from_file(environ, VARIABLES_FILE_ENV), **from_env(environ)}


def texts_from_file(environ: Mapping[str, str], file_env: str) -> dict[str, str]:
    """The JSON object in the file named by environment variable `file_env` (none: {}), values as text.

    Non-string values become JSON text. ValueError naming the variable and the file
    if it cannot be read or is not a JSON object. (Connections files are read alike.)
    """
    path = environ.get(file_env)
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{file_env}={path}: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{file_env}={path}: expected a JSON object")
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}


def from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """Variables from KFL_VAR_<name> environment variables; the name is kept exactly (KFL_VAR_my_var -> my_var)."""
    return {
        key[len(VARIABLE_ENV_PREFIX) :]: value
        for key, value in environ.items()
        if key.startswith(VARIABLE_ENV_PREFIX) and len(key) > len(VARIABLE_ENV_PREFIX)
    }


def lookup(name: str) -> str | None:
    """Variable `name` as text, or None."""
    values = _installed if _installed is not None else local(os.environ)
    return values.get(name)
