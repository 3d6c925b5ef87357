"""The ci profile's cells as independent submitit jobs (its local executor stands
in for Slurm here); every job appends its record to the one records file."""
import json

import pytest
import yaml

from cadm_utils.experiment.pipeline import evaluate_cells, open_run
from cadm_utils.experiment.records import load_records
from cadm_utils.profiles import load_profile


@pytest.mark.heavy  # about a CPU-minute: .ci/run
def test_submitit_local_executor_runs_the_ci_cells(tmp_path):
    profile = load_profile("ci").values
    profile.update(name="ci_submitit", precision="float32", launcher="submitit-local")
    profile["pretrain"]["epochs"] = 1
    profile["distill"].update(steps=2, checkpoint_every=1)
    profile["evaluate"].update(steps=2, seeds=2)
    path = tmp_path / "ci_submitit.yaml"
    path.write_text(yaml.safe_dump(profile, allow_unicode=True))
    runner, cells = open_run(path, stages="table1", methods="random,mmd,full",
                             results_dir=tmp_path / "r", run_dir=tmp_path / "w", progress=False)
    records = evaluate_cells(runner, cells)
    assert sorted((r["method"], r["seed"]) for r in records) == [
        ("full", 0), ("full", 1), ("mmd", 0), ("mmd", 1), ("random", 0), ("random", 1)]
    as_lines = lambda rs: sorted(json.dumps(r, sort_keys=True) for r in rs)  # noqa: E731
    assert as_lines(load_records(tmp_path / "r" / "records.jsonl")) == as_lines(records)
    assert any((tmp_path / "w" / "submitit").glob("*_log.out"))  # the jobs' own logs
    assert evaluate_cells(runner, cells) == []  # finished cells are not submitted again
