"""The paper profile's exact route on the real PACS copy, with tiny step counts (CPU)."""
import copy

import pytest
import yaml

from cadm_utils.experiment.pipeline import open_run
from cadm_utils.experiment.runner import Runner
from cadm_utils.errors import ConfigError
from cadm_utils.profiles import load_profile
from cadm_utils.reporting.tables import stage_tables
from cadm_utils.experiment.products import pretraining_config
from cadm_utils.experiment.evaluation import run_cell


def test_paper_profile_is_complete_and_plans_every_table():
    profile = load_profile("paper")
    assert profile.compare_with_paper is True
    assert profile.datasets["pacs"].resolution == 64
    assert profile.sections.pretrain.epochs == {"default": 60, "officehome": 120,
                                                "domainnet_sub": 120}
    assert set(profile.stages) == {"table1", "table2", "table3", "table4", "loop",
                                   "eval_protocol", "init", "mechanism"}
    assert profile.sections.evaluate.protocol == "dm"  # NCFM's only in the eval_protocol check
    assert profile.sections.pretrain.protocol == "domaindrop"  # every expert, MMD's too
    assert profile.stages["table1"].methods == ["random", "mmd", "mmd_irm", "mmd_fact",
                                                "mmd_dam", "cadm"]
    assert profile.sections.evaluate.stack_seeds is True  # the route below trains them stacked


@pytest.mark.heavy  # about a CPU-minute: .ci/run
def test_paper_route_on_pacs_with_tiny_steps(pacs_root, tmp_path):
    profile = load_profile("paper").values
    profile.update(name="paper_tiny", device="cpu")
    profile["model"]["width"] = 4
    profile["pretrain"].update(epochs=1, experts=1)  # NCFM's pool of 20 is the ci tests' job
    profile["distill"].update(steps=2, real_per_class=8, checkpoint_every=1)
    profile["evaluate"].update(epochs=1, seeds=3)
    path = tmp_path / "paper_tiny.yaml"
    path.write_text(yaml.safe_dump(profile, allow_unicode=True))
    runner, cells = open_run(path, pacs_root, datasets="pacs", targets="P", methods="mmd,cadm",
                             ipcs="10", stages="table1", results_dir=tmp_path / "r",
                             run_dir=tmp_path / "runs", progress=False)
    assert [(c.method.name, c.ipc) for c in cells] == [("mmd", 10), ("cadm", 10)]
    records = [r for cell in cells for r in run_cell(runner, cell)]
    assert len(records) == 6 and {r["split"] for r in records} == {"ACS→P"}
    table = stage_tables(Runner(load_profile(path), results_dir=tmp_path / "r", progress=False))
    row = next(r for r in table["table1_pacs"].rows if r[0] == "cadm")
    assert "(3)" in row[2] and "[paper 48.7]" in row[2]  # column 2: ACS→P IPC 10
    # the evaluation check's NCFM row evaluates Table 1's set again: nothing is distilled
    _, checks = open_run(path, pacs_root, datasets="pacs", targets="P", methods="cadm",
                         ipcs="10", stages="eval_protocol", results_dir=tmp_path / "r",
                         run_dir=tmp_path / "runs", progress=False)
    ncfm_row = next(c for c in checks if c.overrides)
    sets = sorted((tmp_path / "runs" / "synthetic").glob("*.pt"))
    ncfm_records = run_cell(runner.for_cell(ncfm_row), ncfm_row)
    assert sorted((tmp_path / "runs" / "synthetic").glob("*.pt")) == sets
    assert {r["set_id"] for r in ncfm_records} == {r["set_id"] for r in records
                                                 if r["method"] == "cadm"}
    assert ncfm_records[0]["config"] != next(r for r in records if r["method"] == "cadm")["config"]


@pytest.mark.slow
def test_pacs_cpu_route_on_pacs_with_tiny_steps(pacs_root, tmp_path):
    """profiles/pacs-cpu.yaml's exact route (32 px, width from the profile, the reference
    behaviours) on the real PACS copy, with tiny step counts and a narrower network."""
    profile = load_profile("pacs-cpu").values
    assert profile["datasets"]["pacs"]["resolution"] == 32
    assert profile["stages"]["table1"]["methods"] == ["random", "mmd", "cadm"]
    profile.update(name="pacs_cpu_tiny", workers=1)
    profile["model"]["width"] = 4
    profile["pretrain"]["epochs"] = 1
    profile["distill"].update(steps=2, real_per_class=4, checkpoint_every=1)
    profile["evaluate"].update(steps=2, seeds=2)
    path = tmp_path / "pacs_cpu_tiny.yaml"
    path.write_text(yaml.safe_dump(profile, allow_unicode=True))
    runner, cells = open_run(path, pacs_root, targets="P", ipcs="1", stages="table1",
                             results_dir=tmp_path / "r", run_dir=tmp_path / "runs",
                             progress=False)
    from cadm_utils.experiment.pipeline import evaluate_cells

    records = evaluate_cells(runner, cells)
    assert {(r["method"], r["ipc"]) for r in records} == {("random", 1), ("mmd", 1),
                                                           ("cadm", 1), ("full", 0)}
    table = stage_tables(Runner(load_profile(path), results_dir=tmp_path / "r", progress=False))
    full = next(r for r in table["table1_pacs"].rows if r[0] == "Full dataset")
    assert "[paper 61.1]" in full[1] and "[our GPU 53.7]" in full[1]


def test_the_full_data_row_trains_like_the_experts_with_their_optimiser(tmp_path, monkeypatch):
    """The full-data reference takes the pretraining protocol (the paper profile's is
    DomainDrop's), its length, batch and rate: the experts' recipe on all source images."""
    from cadm_utils.experiment.cells import Cell
    from cadm_utils.method.methods import FULL_DATA

    runner, _ = open_run("ci", stages="table1", methods="mmd", targets="P", ipcs="1",
                         results_dir=tmp_path / "r", run_dir=tmp_path / "w", progress=False)
    variant = runner.variant((("pretrain.protocol", "domaindrop"), ("pretrain.lr", 0.03)))
    seen = []
    from cadm_utils.experiment import evaluation

    monkeypatch.setattr(evaluation, "train_eval_nets",
                        lambda runner, cell, task, images, labels, config, seeds:
                        seen.append((len(images), config)) or [])
    run_cell(variant, Cell("table1", "embedded", "P", FULL_DATA, 0), seeds=[0])
    [(n_images, config)] = seen
    assert n_images == len(runner.task("embedded", "P").train.images)
    assert (config.protocol, config.lr, config.augment) == ("domaindrop", 0.03, "crop_flip")
    assert config == pretraining_config(variant, "embedded")
    assert config.epochs == variant.sections.pretrain.epochs


def test_gpu_short_is_the_paper_profile_with_three_cuts(tmp_path):
    full, short = load_profile("paper").values, load_profile("gpu-short").values
    assert (full["distill"]["steps"], full["distill"]["real_per_class"],
            full["pretrain"]["experts"]) == (20000, 1024, 20)  # NCFM's ipc10 configs
    cut = copy.deepcopy(full)
    cut["name"] = "gpu-short"
    cut["distill"].update(steps=1000, real_per_class=128, checkpoint_every=100)
    cut["pretrain"]["experts"] = 1
    assert short == cut
    (tmp_path / "a.yaml").write_text(f"extends: {tmp_path / 'b.yaml'}\nname: a\n")
    (tmp_path / "b.yaml").write_text(f"extends: {tmp_path / 'a.yaml'}\nname: b\n")
    with pytest.raises(ConfigError, match="extends itself"):
        load_profile(tmp_path / "a.yaml")


def test_check_names_each_settings_value_and_source(capsys, pacs_root):
    from cadm_utils.__main__ import main

    assert main(["check", "--profile", "gpu-short", "--datasets", "pacs", "--data-root",
                 str(pacs_root)]) == 0
    out = capsys.readouterr().out
    assert "distill.steps = 1000  (gpu-short.yaml: NCFM: 20,000;" in out
    assert "masking.p_mask = 0.33  (paper.yaml: paper, Implementation Details)" in out
    assert "GPU time: not estimated" in out


def test_the_gpu_time_estimate_follows_the_newest_cuda_timing(tmp_path):
    import json

    from cadm_utils.experiment import cost
    from cadm_utils.experiment.cells import plan_cells

    # one CUDA line: 10 ms a cadm step and 20 ms an mmd step at the measured shape, 1 ms an
    # evaluation step of the measured seeds
    timing = {"kind": "step_speed", "device": "gpu", "device_type": "cuda", "width": 64,
              "resolution": 64, "classes": 7, "ipc": 10, "real_per_class": 128,
              "eval_seeds": 3, "distill_s": {"mmd/per_class": 0.02, "cadm/per_class": 0.01},
              "eval_s": {"stacked": 0.001, "sequential": 0.002}}
    path = tmp_path / "speed.jsonl"
    path.write_text(json.dumps({**timing, "device_type": "cpu"}) + "\n" + json.dumps(timing) + "\n")
    profile = load_profile("gpu-short")
    cells = plan_cells(profile, datasets="pacs", targets="P", methods="mmd,cadm", ipcs="10",
                       stages="table1")
    # distillation: 1000 steps × (0.02 + 0.01) s; evaluation: 1000 epochs × ⌈7·10·4/256⌉ = 2
    # steps × 0.001 s (stacked) per cell
    expected = 1000 * 0.03 + 2 * 1000 * 2 * 0.001
    assert cost.estimate_seconds(profile, cells, cost.gpu_timing(path)) == pytest.approx(expected)
    assert "about 0.0 h" in cost.estimate_line(profile, cells, path)
