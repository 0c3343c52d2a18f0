"""What the CLI costs a user: start-up of each local command, and a 100-task run next to Airflow's.

1. Start-up: wall time of `kubeflowlite --help`, `validate`, `tasks`, `render` (on
   examples/tutorial.yaml) and `run` of a one-task DAG (`true`), each a fresh process,
   best and median of --repeat runs (after one warm-up run), with the CPU time the
   process used. Goal: under 0.3 s each. Processes run with bytecode caches on, as an
   installed CLI does (a PYTHONDONTWRITEBYTECODE from a test harness is dropped).
2. Side by side: a DAG of 100 trivial bash tasks (a chain of 20, then a fan-out of
   80 from its last task), run with `kubeflowlite run` and with `airflow dags test`
   (Airflow's own way to run one DAG run in one process, no scheduler). Airflow is the
   one the differential tests use: hack/airflow-venv's cached venv, every version pinned
   by hack/airflow-requirements.txt (built on first use), with a fresh AIRFLOW_HOME and
   its SQLite database migrated before timing. Goal: kubeflowlite at least 25 times faster
   (wall time). The run's start-up (a 1-task run) is shown apart from the other tasks'
   cost; on a loaded machine compare the cpu column too (wall then includes waiting
   for a core, and spawning 100 processes waits the most). The goal is judged on the
   best runs; medians are shown beside them, and the load average before and after
   each part (figures taken at a load above the core count are inflated).

    .venv/bin/python -m benchmarks.bench_cli [--repeat 5] [--airflow-venv DIR] [--no-airflow] [--breakdown]

--airflow-venv DIR uses the Airflow installed in that venv instead.
--breakdown profiles the 100-task run in this process (CPU time by part: spawning,
preparing tries, the engine, observing, the display, the run records).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "examples" / "tutorial.yaml"
KFL = Path(sys.executable).parent / "kubeflowlite"
STARTUP_GOAL = 0.3
SPEEDUP_GOAL = 25.0
CHAIN, FAN_OUT = 20, 80


@dataclass(frozen=True, order=True)
class Timing:
    """One process's wall time, and the CPU time it and its children used (user + system)."""

    wall: float
    cpu: float


def user_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment as a user's shell has it: bytecode caches written and used.

    (A PYTHONDONTWRITEBYTECODE inherited from a test harness would make every start
    compile the package from source, which no installed CLI does.)
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **(extra or {})}


def timed(argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> Timing:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env or user_env(), cwd=cwd)
    spent = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(spent, cpu)


def kfl_dag(path: Path) -> Path:
    lines = ["apiVersion: kubeflowlite.io/v1alpha1", "kind: DAG", "metadata: {name: bench100}", "spec:"]
    lines += ["  maxActiveTasks: 16", "  tasks:"]
    for i in range(CHAIN):
        upstream = f", dependsOn: [c{i - 1:02d}]" if i else ""
        lines.append(f"  - {{name: c{i:02d}, bash: 'true'{upstream}}}")
    for i in range(FAN_OUT):
        lines.append(f"  - {{name: f{i:02d}, bash: 'true', dependsOn: [c{CHAIN - 1:02d}]}}")
    path.write_text("\n".join(lines) + "\n")
    return path


def airflow_dag(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bench100.py"
    path.write_text(
        f"""
from datetime import datetime
from airflow import DAG
from airflow.operators.bash import BashOperator

with DAG("bench100", start_date=datetime(2020, 1, 1), schedule=None, catchup=False, max_active_tasks=16):
    chain = [BashOperator(task_id=f"c{{i:02d}}", bash_command="true") for i in range({CHAIN})]
    for up, down in zip(chain, chain[1:]):
        up >> down
    for i in range({FAN_OUT}):
        chain[-1] >> BashOperator(task_id=f"f{{i:02d}}", bash_command="true")
"""
    )
    return path


def one_task_dag(work: Path) -> Path:
    one = work / "one.yaml"
    one.write_text(
        "apiVersion: kubeflowlite.io/v1alpha1\nkind: DAG\nmetadata: {name: one}\n"
        "spec: {tasks: [{name: t, bash: 'true'}]}\n"
    )
    return one


def startup(repeat: int, work: Path) -> list[tuple[str, Timing, float]]:
    one = one_task_dag(work)
    commands = {
        "--help": [str(KFL), "--help"],
        "validate": [str(KFL), "validate", str(TUTORIAL)],
        "tasks": [str(KFL), "tasks", str(TUTORIAL)],
        "render": [str(KFL), "render", str(TUTORIAL), "print_date", "--date", "2020-02-09"],
        "run (1 task)": [str(KFL), "run", str(one), "--runs-dir", str(work / "runs"), "--date", "2020-02-09"],
    }
    rows = []
    for name, argv in commands.items():
        timed(argv)  # warm-up: bytecode caches written, files in the page cache
        times = sorted(timed(argv) for _ in range(repeat))
        rows.append((name, times[0], statistics.median(t.wall for t in times)))
    return rows


def median_wall(runs: list[Timing]) -> float:
    return statistics.median(run.wall for run in runs)


def airflow_venv() -> Path:
    """The pinned Airflow venv of hack/airflow-venv (built on first use, then cached)."""
    completed = subprocess.run(
        [str(ROOT / "hack" / "airflow-venv")], check=True, capture_output=True, text=True
    )
    return Path(completed.stdout.strip().splitlines()[-1])


def airflow_version(venv: Path) -> str:
    completed = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('apache-airflow'))"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return completed.stdout.strip()


def load() -> str:
    """The 1, 5 and 15 minute load averages, as `uptime` shows them."""
    return " ".join(f"{average:.2f}" for average in os.getloadavg())


def side_by_side(repeat: int, work: Path, venv: Path) -> tuple[list[Timing], list[Timing], list[Timing]]:
    """Sorted times: kubeflowlite's 100-task runs, its 1-task runs (start-up and one try), Airflow's."""
    dag = kfl_dag(work / "bench100.yaml")
    one = one_task_dag(work)
    runs_dir = str(work / "kfl-runs")
    timed([str(KFL), "run", str(one), "--runs-dir", runs_dir, "--date", "2019-12-31"])  # warm-up
    kfl = sorted(
        timed([str(KFL), "run", str(dag), "--runs-dir", runs_dir, "--date", "2020-01-01"])
        for _ in range(repeat)
    )
    kfl_one = sorted(
        timed([str(KFL), "run", str(one), "--runs-dir", runs_dir, "--date", "2020-01-01"])
        for _ in range(repeat)
    )
    airflow = venv / "bin" / "airflow"
    home = work / "airflow-home"
    env = user_env(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(airflow_dag(home / "dags")),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        }
    )
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(home / "dags")
    subprocess.run([str(airflow), "db", "migrate"], env=env, check=True, capture_output=True)
    runs = []
    for attempt in range(repeat):
        # A new logical date each time: `dags test` refuses to re-run an existing run.
        runs.append(timed([str(airflow), "dags", "test", "bench100", f"2020-01-{attempt + 1:02d}"], env=env))
    return kfl, kfl_one, sorted(runs)


def breakdown(work: Path) -> None:
    """Where the 100-task run's own process spends its CPU once started (cProfile on CPU time)."""
    import cProfile
    import io
    import pstats
    from datetime import UTC, datetime

    from kubeflowlite.dagfiles import load_dag_file
    from kubeflowlite.local.display import make_display
    from kubeflowlite.local.runner import LocalRunner, RunRequest

    (dag,) = load_dag_file(kfl_dag(work / "bench100.yaml"))
    request = RunRequest(
        dag=dag,
        logical_date=datetime(2020, 1, 1, tzinfo=UTC),
        run_name="bench100",
        runs_dir=work / "profiled",
    )
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    LocalRunner(request, observer=make_display(io.StringIO())).run()
    profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]

    def spent(file: str, *functions: str) -> float:
        return float(sum(v[3] for k, v in stats.items() if k[0].endswith(file) and k[2] in functions))

    total = spent("runner.py", "run")
    parts = {
        "spawning (subprocess.Popen)": spent("launcher.py", "_spawn_all"),
        "preparing tries (templates, env)": spent("prepare.py", "prepare_try"),
        "engine (decide)": spent("engine.py", "decide"),
        "observing (reaping, XCom)": spent("launcher.py", "poll"),
        "display": spent("display.py", "start", "update", "finish"),
        "run.json and xcom.json": spent("rundir.py", "write_run", "write_xcoms"),
    }
    print(f"\nthe 100-task run in one process, profiled: {total:.3f} s of CPU after start-up")
    for name, seconds in parts.items():
        print(f"  {name:<34}{seconds:>7.3f} s {seconds / total * 100:>6.1f} %")
    print(f"  {'the rest (the loop, bookkeeping)':<34}{total - sum(parts.values()):>7.3f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--airflow-venv", type=Path, help="a venv with Airflow installed (default: hack/airflow-venv's)"
    )
    parser.add_argument("--no-airflow", action="store_true", help="only the start-up part")
    parser.add_argument(
        "--breakdown", action="store_true", help="also profile where the 100-task run's CPU goes"
    )
    args = parser.parse_args(argv)

    missed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="kfl-bench-cli-") as tmp:
        work = Path(tmp)
        print(
            f"start-up: a fresh process, best of {args.repeat} (wall, its cpu) and median wall; load {load()}"
        )
        for name, best, median in startup(args.repeat, work):
            print(f"  {name:<14}{best.wall:>8.3f} s  cpu {best.cpu:>6.3f} s   median {median:>6.3f} s")
            if best.wall >= STARTUP_GOAL:
                missed.append(name)
        print(
            f"goal: under {STARTUP_GOAL} s -> " + ("met" if not missed else f"MISSED by {', '.join(missed)}")
        )
        if not args.no_airflow:
            venv = args.airflow_venv or airflow_venv()
            repeat = max(1, min(args.repeat, 3))
            before = load()
            kfl_runs, kfl_one_runs, airflow_runs = side_by_side(repeat, work, venv)
            kfl, kfl_one, airflow = kfl_runs[0], kfl_one_runs[0], airflow_runs[0]
            ratio = airflow.wall / kfl.wall
            tasks = CHAIN + FAN_OUT
            print(
                f"\n100 bash tasks (chain of {CHAIN}, fan-out of {FAN_OUT}), best of {repeat}; load {before}:"
            )
            print("                              wall        cpu (with the task processes)   median wall")
            print(
                f"  kubeflowlite run        {kfl.wall:>8.2f} s {kfl.cpu:>8.2f} s {median_wall(kfl_runs):>29.2f} s"
            )
            print(
                f"    start-up (1-task run) {kfl_one.wall:>8.2f} s {kfl_one.cpu:>8.2f} s"
                f" {median_wall(kfl_one_runs):>29.2f} s"
            )
            rest = Timing(kfl.wall - kfl_one.wall, kfl.cpu - kfl_one.cpu)
            print(
                f"    the other {tasks - 1} tasks   {rest.wall:>8.2f} s {rest.cpu:>8.2f} s"
                f"   ({rest.wall / (tasks - 1) * 1000:.1f} ms a task)"
            )
            print(
                f"  airflow dags test       {airflow.wall:>8.2f} s {airflow.cpu:>8.2f} s {median_wall(airflow_runs):>29.2f} s"
                f"   (apache-airflow {airflow_version(venv)})"
            )
            print(
                f"  ratio                   {ratio:>8.1f}x  {airflow.cpu / kfl.cpu:>7.1f}x"
                f" {median_wall(airflow_runs) / median_wall(kfl_runs):>29.1f}x"
            )
            print(f"  load average after: {load()}")
            met = ratio >= SPEEDUP_GOAL
            print(f"goal: at least {SPEEDUP_GOAL:.0f}x (wall) -> " + ("met" if met else "MISSED"))
            if not met:
                missed.append("airflow ratio")
        if args.breakdown:
            breakdown(work)
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
