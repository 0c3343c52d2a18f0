"""The one loader of DAG files, YAML or Python, for every command and the local runner.

YAML files go through core.loading; Python files are imported (kubeflowlite.dsl.files)
and every DAG they define is compiled (kubeflowlite.dsl.compile) into the same DAG
resource. Problems come out as InvalidDAGError either way, Python ones naming the
file and line. It lives outside core because importing a Python file runs user code.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kubeflowlite.api.dag import DAG
from kubeflowlite.core import loading
from kubeflowlite.core.validation import InvalidDAGError, Issue

if TYPE_CHECKING:
    from kubeflowlite.dsl.model import Location

__all__ = ["DAG_FILE_SUFFIXES", "PYTHON_SUFFIX", "load_dag_file", "load_dags", "looks_like_dag_file"]

PYTHON_SUFFIX = ".py"
DAG_FILE_SUFFIXES = (*loading.DAG_FILE_SUFFIXES, PYTHON_SUFFIX)


def looks_like_dag_file(path: Path) -> bool:
    """In a folder, a .py file is a DAG file only if it mentions kubeflowlite and dag (Airflow's safe mode)."""
    if path.suffix != PYTHON_SUFFIX:
        return path.suffix in loading.DAG_FILE_SUFFIXES
    try:
        text = path.read_text(encoding="utf-8", errors="replace").lower()
    except OSError:
        return True
    return "kubeflowlite" in text and "dag" in text


def load_python_file(path: str | Path) -> list[DAG]:
    """The DAGs a Python file defines, compiled; InvalidDAGError naming file and line otherwise."""
    # The DSL is imported for Python files only: a YAML file's commands never pay for it.
    from kubeflowlite.dsl import compile as compiler
    from kubeflowlite.dsl import files

    file = Path(path)
    try:
        imported = files.import_dag_file(file)
    except files.DagFileError as error:
        raise compiler.PythonDAGError(
            [compiler.LocatedIssue("", error.message, error.location)], str(file)
        ) from None
    if not imported.dags:
        raise InvalidDAGError(
            [Issue("", "no DAG in file (no DAG(...) was created when importing it)")], str(file)
        )
    dags: list[DAG] = []
    issues: list[Issue] = []
    first: dict[str, Location] = {}
    for defined in imported.dags:
        if defined.dag_id in first:
            issues.append(
                compiler.LocatedIssue(
                    f"dag_id {defined.dag_id!r}",
                    f"defined twice in this file (also at line {first[defined.dag_id].line})",
                    defined.location,
                )
            )
            continue
        first[defined.dag_id] = defined.location
        try:
            dags.append(compiler.compile_dag(defined, source=imported.source))
        except InvalidDAGError as error:
            issues += error.issues
    if issues:
        raise compiler.PythonDAGError(issues, str(file))
    return dags


def load_dag_file(path: str | Path) -> list[DAG]:
    """Every DAG of one file: YAML (one or more documents) or Python (every DAG it creates)."""
    if Path(path).suffix == PYTHON_SUFFIX:
        return load_python_file(path)
    return loading.load_dag_file(path)


def load_dags(path: str | Path) -> list[DAG]:
    """The DAGs of a file, or of every DAG file under a directory (recursively, sorted).

    Problems of all files are collected into one InvalidDAGError; two DAGs with one
    id in different files are an error naming both.
    """
    root = Path(path)
    if not root.is_dir():
        return load_dag_file(root)
    from kubeflowlite.dsl import compile as compiler

    candidates = sorted(p for p in root.rglob("*") if p.suffix in DAG_FILE_SUFFIXES and p.is_file())
    dags: list[DAG] = []
    issues: list[Issue] = []
    seen: dict[str, Path] = {}
    for file in candidates:
        if not looks_like_dag_file(file):
            continue
        try:
            found = load_dag_file(file)
        except compiler.PythonDAGError as error:
            issues += [
                issue
                if isinstance(issue, compiler.LocatedIssue) and issue.location
                else _prefixed(file, issue)
                for issue in error.issues
            ]
            continue
        except InvalidDAGError as error:
            issues += [_prefixed(file, issue) for issue in error.issues]
            continue
        except (OSError, UnicodeDecodeError) as error:
            issues.append(Issue(str(file), f"cannot read: {error}"))
            continue
        for dag in found:
            if dag.dag_id in seen:
                issues.append(Issue(str(file), f"DAG {dag.dag_id!r} is also defined in {seen[dag.dag_id]}"))
                continue
            seen[dag.dag_id] = file
            dags.append(dag)
    if issues:
        raise compiler.PythonDAGError(issues, str(path))
    return dags


def _prefixed(file: Path, issue: Issue) -> Issue:
    return Issue(f"{file}: {issue.path}" if issue.path else str(file), issue.message)
