"""Importing a Python DAG file and finding the DAGs it defines.

A DAG file is executed in-process as a fresh module (never as `__main__`, so an
`if __name__ == "__main__":` block does not run), with its directory on sys.path
as Airflow's dags folder is. Every DAG created while it runs is found, whether a
module-level `with DAG(...)` or a `@dag` function's call. An exception while
importing becomes a DagFileError naming the file and the line it came from.

Standard library only: a Python task's process (kubeflowlite.pytask) uses
`exec_dag_source` to import its DAG file again.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
import types
from dataclasses import dataclass
from pathlib import Path

from kubeflowlite.dsl import model

__all__ = ["DagFileError", "ImportedFile", "exec_dag_source", "import_dag_file"]


class DagFileError(Exception):
    """A DAG file that could not be imported: `file:line: message`."""

    def __init__(self, location: model.Location, message: str) -> None:
        self.location = location
        self.message = message
        super().__init__(f"{location}: {message}")


@dataclass(frozen=True)
class ImportedFile:
    """A DAG file after import: its DAGs in creation order, its module and its source text."""

    path: Path
    dags: list[model.DAG]
    module: types.ModuleType
    source: str


def _module_name(path: Path) -> str:
    stem = "".join(ch if ch.isalnum() else "_" for ch in path.stem)
    return f"kfl_dagfile_{stem}"


def _error_location(error: BaseException, filename: str) -> model.Location:
    """The deepest traceback line inside the DAG file (else its last line seen)."""
    if isinstance(error, SyntaxError) and error.filename == filename:
        return model.Location(filename, error.lineno or 0)
    line = 0
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename == filename:
            line = frame.lineno or line
    return model.Location(filename, line)


_COMPAT_PACKAGE = "kubeflowlite.airflow"
_CANNOT_IMPORT = re.compile(r"cannot import name '([^']+)' from '([^']+)'")


def _unsupported_import(error: BaseException) -> str | None:
    """An import of an Airflow name or module kubeflowlite.airflow lacks, said as such (else None).

    kubeflowlite.airflow mirrors Airflow's import paths, so a path or name missing
    there is an Airflow feature kubeflowlite does not support.
    """
    if not isinstance(error, ImportError):
        return None
    module, name = error.name or "", None
    match = _CANNOT_IMPORT.search(str(error))
    if match and not isinstance(error, ModuleNotFoundError):
        name, module = match.group(1), match.group(2)
    if module != _COMPAT_PACKAGE and not module.startswith(_COMPAT_PACKAGE + "."):
        return None
    airflow_path = module[len("kubeflowlite.") :] + (f".{name}" if name else "")
    return (
        f"{airflow_path} is not supported by kubeflowlite "
        f"({_COMPAT_PACKAGE} has no such {'name' if name else 'module'})"
    )


def exec_dag_source(source: str, filename: str) -> tuple[types.ModuleType, list[model.DAG]]:
    """Run `source` (a DAG file's text, shown in tracebacks as `filename`) as a new module.

    Returns the module and the DAGs created; DagFileError (with the file's line) if
    the code raises, a DagDefinitionError keeps the line it names.
    """
    module = types.ModuleType(_module_name(Path(filename)))
    module.__file__ = filename
    directory = os.path.dirname(os.path.abspath(filename))
    added = directory not in sys.path
    if added:
        sys.path.insert(0, directory)
    sys.modules[module.__name__] = module
    try:
        code = compile(source, filename, "exec")
        with model.collecting() as dags:
            exec(code, module.__dict__)
    except model.DagDefinitionError as error:
        raise DagFileError(error.location, error.detail) from error
    except SyntaxError as error:
        raise DagFileError(_error_location(error, filename), f"syntax error: {error.msg}") from error
    except Exception as error:
        location = _error_location(error, filename)
        message = _unsupported_import(error)
        raise DagFileError(
            location, message or f"importing the DAG file raised {type(error).__name__}: {error}"
        ) from error
    finally:
        if added:
            sys.path.remove(directory)
    return module, dags


def import_dag_file(path: str | Path) -> ImportedFile:
    """Import the DAG file at `path`; OSError if it cannot be read, DagFileError if it raises."""
    file = Path(path)
    source = file.read_text(encoding="utf-8")
    module, dags = exec_dag_source(source, str(file))
    return ImportedFile(path=file, dags=dags, module=module, source=source)
