"""A short form of benchmarks/bench_chaos.py in CI: the operator SIGKILLed at random while
runs of every example and e2e DAG are in flight on the real node.

Every run must end as the local runner's run of the same DAG and date does, with one
Pod per try and every XCom value stored. The long form (100 kills over 20 runs) is
run by hand: `python -m benchmarks.bench_chaos`.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from benchmarks.bench_chaos import chaos
from benchmarks.bench_operator import Cluster as BenchCluster


def test_operator_killed_at_random_over_mixed_runs(cluster: Any, crds: None, tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    result = chaos(BenchCluster(cluster.kubeconfig), runs=9, kills=25, seed=seed, log_dir=tmp_path)
    print(f"\nchaos (seed {seed}): {result.summary()}")
    assert result.kills >= 25 and result.runs == 9
    assert result.ok(), "\n".join(result.mismatches)
