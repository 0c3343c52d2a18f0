"""`kubeflowlite compile`: Python DAG files to the YAML DAG resources they define.

What `kubectl apply -f` needs, and a way to see exactly what a Python file
means: the DAG resource, Python tasks' source embedded. Every DAG found in the
paths (files or folders, YAML ones pass through) is written once; any problem in
any file stops it with exit 2 and nothing written.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import yaml

from kubeflowlite import dagfiles
from kubeflowlite.api.dag import DAG
from kubeflowlite.core.validation import InvalidDAGError

__all__ = ["compile_cmd", "dag_yaml"]

EXIT_INVALID = 2


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (scripts, the embedded source) as literal blocks, readable in the file."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _represent_str)


def dag_yaml(dag: DAG) -> str:
    """The DAG resource as YAML, as `kubectl apply` takes it (no status)."""
    document: dict[str, Any] = dag.model_dump(
        mode="json", by_alias=True, exclude_none=True, exclude={"status"}
    )
    document["spec"]["tasks"] = [
        {"name": task["name"], **{key: value for key, value in task.items() if key != "name"}}
        for task in document["spec"]["tasks"]
    ]
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


@click.command("compile")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o",
    "--output-dir",
    "output_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write <dag id>.yaml files here instead of printing one YAML stream.",
)
def compile_cmd(paths: Sequence[Path], output_dir: Path | None) -> None:
    """Compile DAG files (Python or YAML, files or folders) into DAG resources in YAML."""
    dags: list[DAG] = []
    failed = False
    for path in paths:
        try:
            dags += dagfiles.load_dags(path)
        except InvalidDAGError as error:
            failed = True
            click.echo(str(error), err=True)
        except (OSError, UnicodeDecodeError) as error:
            failed = True
            click.echo(f"{path}: cannot read: {error}", err=True)
    seen: set[str] = set()
    for dag in dags:
        if dag.dag_id in seen:
            failed = True
            click.echo(
                f"DAG {dag.dag_id!r} is defined more than once in {', '.join(map(str, paths))}", err=True
            )
        seen.add(dag.dag_id)
    if failed:
        sys.exit(EXIT_INVALID)
    if output_dir is None:
        click.echo("---\n".join(dag_yaml(dag) for dag in dags), nl=False)
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    for dag in dags:
        target = output_dir / f"{dag.dag_id}.yaml"
        target.write_text(dag_yaml(dag), encoding="utf-8")
        click.echo(str(target))
