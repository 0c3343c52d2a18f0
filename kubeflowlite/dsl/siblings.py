"""The modules beside a DAG file that it imports, to ship with it (Airflow's dags folder is on sys.path).

A DAG file may `from helpers import f` where helpers.py (or a package helpers/) sits
in its folder; its Python tasks, run again from the shipped source in a run
directory or a Pod, need those files too. Found statically: every `import x` and
`from x import ...` (anywhere in the file, absolute imports only) whose first name
is a .py file or a package folder beside the DAG file, and again in each module
found, so helpers of helpers travel as well. Nothing is imported or executed here.

The paths are relative to the DAG file's folder, with `/` separators; their rule is
core.validation.PYTHON_MODULE_PATH.
"""

from __future__ import annotations

import ast
from pathlib import Path

__all__ = ["sibling_modules"]


def _imported_names(source: str) -> set[str]:
    """First names of the absolute imports in `source` (empty if it does not parse)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def _files_of(folder: Path, name: str) -> list[Path]:
    """The files module or package `name` is made of in `folder` (none if it is not there)."""
    module = folder / f"{name}.py"
    if module.is_file():
        return [module]
    package = folder / name
    if package.is_dir():
        return sorted(
            path for path in package.rglob("*.py") if path.is_file() and "__pycache__" not in path.parts
        )
    return []


def sibling_modules(dag_file: str | Path, source: str) -> dict[str, str]:
    """Relative path -> text of every module beside `dag_file` that its `source` imports, transitively."""
    dag_path = Path(dag_file).resolve()
    if not dag_path.is_file():  # a DAG made outside a file (an interactive session): no folder
        return {}
    folder = dag_path.parent
    modules: dict[str, str] = {}
    pending = [source]
    seen_names: set[str] = set()
    while pending:
        for name in sorted(_imported_names(pending.pop()) - seen_names):
            seen_names.add(name)
            for path in _files_of(folder, name):
                if path.resolve() == dag_path:
                    continue
                text = path.read_text(encoding="utf-8")
                modules[path.relative_to(folder).as_posix()] = text
                pending.append(text)
    return dict(sorted(modules.items()))
