"""The GPU window runs benchmarks/step_speed.py unattended: it must run through on the CPU
with tiny sizes and print every timing it promises (the values of one step at these sizes
are noise, even below zero; only their presence is checked)."""
import os
import re
import subprocess
import sys

from .conftest import REPO_ROOT


def test_step_speed_prints_both_loops_and_both_evaluations():
    result = subprocess.run(
        [sys.executable, "benchmarks/step_speed.py", "--device", "cpu", "--width", "4",
         "--resolution", "16", "--classes", "3", "--ipc", "1", "--real-per-class", "4",
         "--steps", "1", "--eval-seeds", "2", "--eval-batch", "8"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for method in ("mmd", "cadm"):
        for loop in ("all", "per_class"):
            assert re.search(rf"distill +{method} +{loop}: +-?[0-9.]+ ms/step", out), out
    assert re.search(r"cadm / mmd \(per_class\): -?[0-9.]+", out)
    assert re.search(r"one by one -?[0-9.]+ ms/step, stacked -?[0-9.]+ ms/step, ratio -?[0-9.]+", out)
