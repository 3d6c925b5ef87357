"""Checked settings, product-bound records, keys that see code constants, bad
command-line input stopped before any work."""
import subprocess
from pathlib import Path

import pytest
import yaml

from cadm_utils.errors import ConfigError
from cadm_utils.experiment.pipeline import open_run
from cadm_utils.experiment.records import current_records, load_records, seeds_to_run
from cadm_utils.experiment.runner import Runner
from cadm_utils.profiles import load_profile
from cadm_utils.experiment.products import synthetic_set

ROOT = Path(__file__).resolve().parents[1]


def profile_file(tmp_path, **changes) -> Path:
    raw = yaml.safe_load((ROOT / "profiles" / "ci.yaml").read_text())
    for path, value in changes.items():
        section, key = path.split("__")
        raw.setdefault(section, {})[key] = value
    out = tmp_path / "bad.yaml"
    out.write_text(yaml.safe_dump(raw))
    return out


@pytest.mark.parametrize("changes, message", [
    ({"model__width": 0}, "model.width must be at least 1"),
    ({"pretrain__epochs": "abc"}, "pretrain.epochs must be an integer"),
    ({"masking__p_mask": 1.0}, "masking.p_mask must be below 1"),
    ({"distill__phases": "both"}, "distill.phases must be one of"),
    ({"distill__stepz": 3}, "distill.stepz is not a known setting"),
])
def test_profile_values_are_checked_with_the_key_named(tmp_path, changes, message):
    with pytest.raises(ConfigError, match=message):
        load_profile(profile_file(tmp_path, **changes))


@pytest.mark.parametrize("args", [["--ipc", "abc"], ["--ipc", "0"], ["--ipc", "-1"],
                                  ["--methods", ""], ["--targets", "P,P"]])
def test_bad_cell_options_exit_2_in_one_line(args, capsys):
    from cadm_utils.__main__ import main

    assert main(["check", "--profile", "ci", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


@pytest.mark.parametrize("case", ["ipc", "width"])
def test_run_all_rejects_bad_input_before_work(tmp_path, case):
    args = ["--ipc", "abc"] if case == "ipc" else \
        ["--profile", str(profile_file(tmp_path, model__width=0))]
    run = subprocess.run(["bash", str(ROOT / "run_all.sh"), *args], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("error: ")
    assert not (ROOT / "runs" / "bad").exists()


def test_code_constants_enter_the_product_keys(monkeypatch):
    from cadm_utils.data import embedded
    from cadm_utils.method import pretraining

    runner = Runner(load_profile("ci"), device="cpu", progress=False)
    before = runner.store.product_hash("embedded", 1)
    monkeypatch.setattr(pretraining, "IRM_LAMBDA", 10.0)
    assert runner.store.product_hash("embedded", 1) != before
    monkeypatch.undo()
    monkeypatch.setitem(embedded.GENERATOR_SETTINGS, "max_rotation", 1.0)
    assert runner.store.product_hash("embedded", 1) != before


@pytest.mark.slow
def test_records_are_bound_to_their_synthetic_set(tmp_path):
    args = dict(methods="random", stages="table1", results_dir=tmp_path / "results",
                run_dir=tmp_path / "runs", progress=False)
    runner, cells = open_run("ci", **args)
    from cadm_utils.experiment.pipeline import evaluate_cells

    records = evaluate_cells(runner, cells)
    assert {r["set_id"] for r in records} == {runner.store.stored_set_id(
        runner.store.synthetic_path(cells[0]).name)}
    assert len(current_records(runner)) == len(records)
    # a fresh clone: records without the products behind them are rendered, nothing is remade
    import shutil
    shutil.rmtree(tmp_path / "runs")
    runner, cells = open_run("ci", **args)
    assert seeds_to_run(runner, cells[0]) == []
    assert evaluate_cells(runner, cells) == []
    # a set remade with other content makes the old records stale: every seed reruns
    path = runner.store.synthetic_path(cells[0])
    synthetic_set(runner, cells[0], runner.task("embedded", "P"))
    import torch
    state = torch.load(path, weights_only=False)
    state["info"]["set_id"] = "remade000000"
    torch.save(state, path)
    runner, cells = open_run("ci", **args)
    assert seeds_to_run(runner, cells[0]) == [0, 1]
    assert current_records(runner) == []
    new = evaluate_cells(runner, cells)
    assert {r["set_id"] for r in new} == {"remade000000"}
    assert len(load_records(tmp_path / "results" / "records.jsonl")) == 2 * len(records)


def test_commit_travels_in_the_environment_where_git_is_missing(monkeypatch):
    """A GPU machine gets the working tree without .git: records then carry CADM_COMMIT."""
    import subprocess

    from cadm_utils import runtime

    monkeypatch.setenv("CADM_COMMIT", "abc1234")
    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(subprocess, "run", no_git)
    assert runtime.git_commit() == "abc1234"
    monkeypatch.delenv("CADM_COMMIT")
    assert runtime.git_commit() == "unknown"


def test_a_torn_record_line_is_skipped_with_one_warning_naming_it(tmp_path):
    """What a crash leaves (a half-written last line) is skipped, and said once."""
    import json
    import warnings

    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps({"acc": 1.0}) + "\n" + '{"acc": 2.')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert load_records(path) == [{"acc": 1.0}]
        assert load_records(path) == [{"acc": 1.0}]
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1
    assert f"{path}: line 2 is not a whole record" in messages[0]
