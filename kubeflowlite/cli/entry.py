"""The entry point of the `kubeflowlite` and `kfl` scripts and of `python -m kubeflowlite`.

It is kubeflowlite.cli.main's click group, started without the cyclic garbage
collector's passes over what start-up creates. A command's start-up allocates some
30,000 objects that live as long as the process (modules, click's commands,
pydantic's validators); the collector would walk them about 70 times before the
command runs, finding nothing to free (some 10 ms, 5 % of a local command's start-up).
So the collector is off until the command's module is loaded; then
`main.LazyGroup.resolve_command` calls `startup_finished`, which freezes what exists
(later collections skip it) and turns the collector back on before the command runs,
so a long run or the operator collects as usual.

This module imports nothing until `main` is called; the tests and any other user of
the click group import kubeflowlite.cli.main and keep the collector as it is.
"""

from __future__ import annotations

import gc


def main(prog_name: str | None = None) -> None:
    """Run the command line (the console scripts' target; `prog_name` defaults to the script's name)."""
    gc.disable()
    try:
        from kubeflowlite.cli.main import main as group
    except BaseException:
        gc.enable()
        raise
    group(prog_name=prog_name)


def startup_finished() -> None:
    """What exists now lives as long as the process: freeze it, and collect from here on.

    A no-op unless `main` turned the collector off (tests keep theirs on).
    """
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
