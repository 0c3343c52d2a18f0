"""Test boundary: kubeflowlite against Apache Airflow itself, on Airflow's own example DAGs.

Airflow comes from hack/airflow-venv (every version pinned in hack/airflow-requirements.txt,
a venv cached outside the repo); its example DAG files are read from that install at
test time, never copied into this repository. Tests here carry the `airflow` marker
(tests/conftest.py) and run no cluster.

The one rewrite applied to an example before kubeflowlite runs it (import_rewrite) is the
one a user makes: import lines `from airflow... import` name `kubeflowlite.airflow...`
instead. The examples' other third-party imports, pendulum and httpx,
come from the Airflow venv (THIRD_PARTY, on PYTHONPATH), as a user's environment
would provide it; nothing else of Airflow is importable by the kubeflowlite side.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

THIRD_PARTY = ("pendulum", "tzdata", "httpx", "httpcore")
"""Packages of the Airflow venv the example DAG files import besides Airflow itself."""


@pytest.fixture(scope="session")
def airflow_venv() -> Path:
    """The pinned Airflow venv (built once by hack/airflow-venv, then cached)."""
    completed = subprocess.run(
        [str(REPO / "hack" / "airflow-venv")], capture_output=True, text=True, check=True, timeout=1800
    )
    return Path(completed.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def site_packages(airflow_venv: Path) -> Path:
    (found,) = airflow_venv.glob("lib/python*/site-packages")
    return found


@pytest.fixture(scope="session")
def example_dags(site_packages: Path) -> Path:
    """Airflow's own example DAG folder, in the installed package."""
    return site_packages / "airflow" / "example_dags"


@pytest.fixture(scope="session")
def third_party(site_packages: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PYTHONPATH folder holding only THIRD_PARTY from the Airflow venv (links)."""
    folder = tmp_path_factory.mktemp("third-party")
    for name in THIRD_PARTY:
        (folder / name).symlink_to(site_packages / name)
    return folder
