"""A budgeted GPU run starts with benchmarks/step_speed.py, unattended: it must run through on the CPU
with tiny sizes and print every timing it promises (the values of one step at these sizes
are noise, even below zero; only their presence is checked)."""
import os
import re
import subprocess
import sys

import pytest

from .conftest import REPO_ROOT


def test_step_speed_prints_both_loops_and_both_evaluations(tmp_path):
    result = subprocess.run(
        [sys.executable, "benchmarks/step_speed.py", "--device", "cpu", "--width", "4",
         "--resolution", "16", "--classes", "3", "--ipc", "1", "--real-per-class", "4",
         "--steps", "1", "--eval-seeds", "2", "--eval-batch", "8",
         "--out", str(tmp_path / "speed.jsonl")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for method in ("mmd", "cadm"):
        for loop in ("all", "per_class"):
            assert re.search(rf"distill +{method} +{loop}: +-?[0-9.]+ ms/step", out), out
    assert re.search(r"cadm / mmd \(per_class\): -?[0-9.]+", out)
    assert re.search(r"one by one -?[0-9.]+ ms/step, stacked -?[0-9.]+ ms/step, ratio -?[0-9.]+", out)
    from cadm_utils.experiment.cost import gpu_timing
    from cadm_utils.experiment.records import load_records

    [line] = load_records(tmp_path / "speed.jsonl")  # what check's estimate reads
    assert line["device_type"] == "cpu" and set(line["distill_s"]) == {
        "mmd/all", "cadm/all", "mmd/per_class", "cadm/per_class"}
    assert gpu_timing(tmp_path / "speed.jsonl") is None  # a CPU line estimates no GPU time


def tune_expert(*args, tmp_path):
    return subprocess.run(
        [sys.executable, "benchmarks/tune_expert.py", "--profile", "ci", "--target", "P",
         "--run-dir", str(tmp_path / "runs"), *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"})


def test_tune_expert_trains_one_expert_per_rate_and_reuses_them(tmp_path):
    import json

    first = tune_expert("--method", "mmd", "--lrs", "0.05,0.01", tmp_path=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    rows = [json.loads(line) for line in first.stdout.splitlines()]
    assert [(r["lr"], r["kind"]) for r in rows] == [(0.05, "plain"), (0.01, "plain")]
    assert rows[0]["expert_id"] != rows[1]["expert_id"]
    assert all(0 <= r["source_val_acc"] <= 100 for r in rows)
    assert len(list((tmp_path / "runs" / "experts").glob("*.pt"))) == 2
    again = tune_expert("--method", "mmd", "--lrs", "0.01", "--protocols", "dm,domaindrop",
                        tmp_path=tmp_path)
    dm, domaindrop = [json.loads(line) for line in again.stdout.splitlines()]
    assert dm["expert_id"] == rows[1]["expert_id"]  # from the cache
    assert dm["wall_s"] == rows[1]["wall_s"]
    assert (dm["protocol"], domaindrop["protocol"]) == ("dm", "domaindrop")
    assert domaindrop["expert_id"] != dm["expert_id"]


def test_tune_expert_reports_cadms_heads_per_reversal_weight(tmp_path):
    import json

    done = tune_expert("--method", "cadm", "--lrs", "0.05", "--grl-weights", "0.25,0",
                       "--refit", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    reversal, refit, detached, _ = [json.loads(line) for line in done.stdout.splitlines()]
    assert (reversal["grl_weight"], detached["grl_weight"]) == (0.25, 0.0)
    assert reversal["expert_id"] == refit["expert_id"] != detached["expert_id"]
    assert (reversal["heads_setting"], refit["heads_setting"]) == ("trained", "refit")
    for row in (reversal, refit, detached):
        assert [b["block"] for b in row["heads"]] == [0, 1, 2, 3]
        assert all(0 <= b[k] <= 100 for b in row["heads"]
                   for k in ("head_acc", "majority", "probe_acc", "top", "middle", "bottom"))
    assert all(abs(b["head_acc"] - b["probe_acc"]) <= 1.0 for b in refit["heads"])  # that fit


@pytest.mark.parametrize("args, message", [
    (["--lrs", "fast"], "--lrs must be numbers"), (["--lrs", "0,0.1"], "--lrs must be positive"),
    (["--lrs", "0.1", "--grl-weights", "-1"], "--grl-weights must be non-negative"),
    (["--lrs", "0.1", "--method", "dm"], "unknown method"),
    (["--lrs", "0.1", "--protocols", "dm,adam"], "--protocols must be among dm, domaindrop"),
    (["--lrs", "0.1", "--target", "Q"], "unknown domain")])
def test_tune_expert_bad_input_exit_2_in_one_line(args, message, tmp_path, monkeypatch,
                                                  capsys):
    """In-process (the script's own file, run as __main__): a subprocess per case cost ~5 s of
    imports; the test above runs it as a process."""
    import runpy

    monkeypatch.setattr(sys, "argv", ["tune_expert.py", "--profile", "ci", "--target", "P",
                                      "--run-dir", str(tmp_path / "runs"), *args])
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(REPO_ROOT / "benchmarks" / "tune_expert.py"), run_name="__main__")
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "runs").exists()
