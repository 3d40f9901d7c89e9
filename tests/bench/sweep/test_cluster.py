"""A two-node Ray cluster on this machine (ray.cluster_utils.Cluster, 1 CPU per node) and
``python -m bench.sweep --address``: the trials run on both nodes.

Everything runs in a subprocess with its own RAY_TMPDIR: the cluster cannot share a process with the
session's local instance, and no other Ray on the machine can see it. The subprocess shuts the cluster
down; the test then checks that none of its processes survive.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parents[3]

SCRIPT = r"""
import subprocess, sys
from ray.cluster_utils import Cluster

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
try:
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    rc = subprocess.run([sys.executable, "-m", "bench.sweep", sys.argv[1], "--address", cluster.address,
                         "--out", sys.argv[2], "--stack-seeds", "off"]).returncode  # one trial per unit: 2 ETAs
finally:
    cluster.shutdown()
sys.exit(rc)
"""


def test_sweep_on_a_two_node_cluster_uses_both_nodes(sweep_file, tmp_path, ray_helpers):
    QUIET, wait_gone = ray_helpers
    # 2 trials, one per node. Ray Tune reuses actors: a trial whose own actor is still starting is handed to a node
    # whose actor finished its first trial (tune_controller._maybe_reuse_cached_actor), so on a loaded machine both
    # could run on the first node to be up. A trial of ~3.5 s (10 epochs of all of gm6) leaves the second node that
    # long to start its actor: 4 trials of ~1.5 s, as before, left it 1.5 s and once ran all 4 on one node.
    path = sweep_file(budget={"epochs": 10, "n_train": None, "n_test": 120},
                      grid={"router": ["softmax", "topk[k=2]"], "experts": [2], "seed": [0]})
    out = tmp_path / "out"
    ray_tmp = tempfile.mkdtemp(prefix="rbc", dir="/tmp")
    env = {**os.environ, **QUIET, "RAY_TMPDIR": ray_tmp}
    env.pop("RAY_ADDRESS", None)
    try:
        proc = subprocess.run([sys.executable, "-c", SCRIPT, path, str(out)], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        runs = pd.read_csv(out / "runs.csv")
        assert len(runs) == 2 and runs["status"].eq("ok").all()
        assert runs["node_id"].nunique() == 2, runs["node_id"].tolist()
        assert "on 2 slot(s)" in proc.stdout and "overhead ratio" in proc.stdout
        assert proc.stdout.count("ETA") == 2
    finally:
        left = wait_gone(ray_tmp)
        assert not left, f"processes of the two-node cluster survived: {left}"
        subprocess.run(["rm", "-rf", ray_tmp])
