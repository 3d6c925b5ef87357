import dataclasses

import pytest
import torch
import yaml

from cadm_utils.errors import ConfigError
from cadm_utils.experiment.cells import plan_cells
from cadm_utils.experiment.pipeline import open_run, run_pipeline
from cadm_utils.experiment.records import load_records
from cadm_utils.experiment.runner import Runner
from cadm_utils.method.methods import get_method
from cadm_utils.profiles import load_profile
from cadm_utils.reporting.tables import stage_tables
from cadm_utils.experiment.products import expert

TINY = {
    "name": "tiny", "seed": 0, "device": "cpu",
    "datasets": {"embedded": {"resolution": 32, "targets": ["P"]}},
    "model": {"width": 8},
    "pretrain": {"epochs": 2, "batch_size": 64, "lr": 0.05},
    "distill": {"steps": 4, "real_per_class": 8, "lr": 0.01, "factor": 2, "checkpoint_every": 2},
    "masking": {"p_mask": 0.33, "p_active": 0.8, "lam": 100.0},
    "evaluate": {"epochs": 3, "batch_size": 64, "lr": 0.01, "seeds": 3},
    "stages": {"table1": {"datasets": ["embedded"], "methods": ["random", "mmd", "cadm"],
                          "ipcs": [1], "full_data": True}},
}


@pytest.fixture
def tiny_profile(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY, allow_unicode=True))
    return path


@pytest.mark.slow
def test_end_to_end_mmd_and_cadm_on_embedded(tiny_profile, tmp_path):
    dirs = {"results_dir": tmp_path / "results", "run_dir": tmp_path / "runs"}
    records = run_pipeline(tiny_profile, progress=False, **dirs)
    methods = sorted({r["method"] for r in records})
    assert methods == ["cadm", "full", "mmd", "random"]
    assert len(records) == 4 * 3  # three seeds per cell
    for record in records:
        assert 0.0 <= record["acc"] <= 100.0
        assert {"dataset", "split", "ipc", "seed", "config", "commit", "device", "eval_s"} <= set(record)
        assert record["split"] == "ACS→P"
    assert all(r["distill_s"] > 0 and r["pretrain_s"] > 0 for r in records
               if r["method"] in ("mmd", "cadm"))
    # a second run reuses everything
    again = run_pipeline(tiny_profile, progress=False, **dirs)
    assert again == []
    assert len(load_records(dirs["results_dir"] / "records.jsonl")) == 12
    runner = Runner(load_profile(tiny_profile), **dirs, progress=False)
    table = stage_tables(runner)["table1_embedded"]
    assert [row[0] for row in table.rows] == ["random", "mmd", "cadm", "Full dataset"]
    assert all("(3)" in row[1] for row in table.rows)


def test_plan_filters_and_rejects_unknown_names(tiny_profile):
    profile = load_profile(tiny_profile)
    cells = plan_cells(profile, methods="cadm,mmd")
    assert [c.method.name for c in cells] == ["mmd", "cadm"]
    with pytest.raises(ConfigError, match="unknown stage 'table9'"):
        plan_cells(profile, stages="table9")
    with pytest.raises(ConfigError, match="data set 'vlcs' is not in the profile"):
        plan_cells(profile, datasets="vlcs")


def test_impossible_ipc_fails_before_training(tiny_profile, tmp_path):
    with pytest.raises(ConfigError, match="impossible IPC 999"):
        run_pipeline(tiny_profile, ipcs="999", progress=False, results_dir=tmp_path / "r",
                     run_dir=tmp_path / "runs")
    assert not (tmp_path / "r").exists() and not (tmp_path / "runs").exists()


def test_expert_does_not_depend_on_global_rng(tiny_profile, tmp_path):
    """torch's start seed differs per process; results must not."""
    profile = load_profile(tiny_profile)
    states = []
    for i, global_seed in enumerate((1, 2)):
        torch.manual_seed(global_seed)
        runner = Runner(profile, results_dir=tmp_path / f"r{i}", run_dir=tmp_path / f"runs{i}",
                        progress=False)
        model, _ = expert(runner, "embedded", runner.task("embedded", "P"),
                                 get_method("cadm"))
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


@pytest.mark.parametrize("args, message", [
    (["--profile", "nonexistent"], "profile not found"),
    (["--profile", "smoke", "--targets", "Q"], "unknown domain 'Q'"),
    (["--profile", "smoke", "--methods", "dm"], "unknown method 'dm'"),
    (["--profile", "smoke", "--ipc", "1000"], "impossible IPC 1000"),
    (["--profile", "smoke", "--stages", "table9"], "unknown stage 'table9'"),
    (["--profile", "paper", "--datasets", "pacs"], "needs a data root"),
])
def test_check_command_one_line_errors(args, message, capsys, monkeypatch, tmp_path):
    """In-process (a subprocess per case cost ~6 s of imports); the process exit status is
    checked once below."""
    from cadm_utils.__main__ import main
    from cadm_utils.profiles import REPO_ROOT

    monkeypatch.chdir(tmp_path)  # any working directory
    assert main(["check", *args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not (REPO_ROOT / "results" / "nonexistent").exists()


def test_check_command_exits_2_as_a_process():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "cadm_utils", "check", "--profile",
                             "nonexistent"], capture_output=True, text=True, cwd="/", timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "profile not found" in lines[0], result.stderr


def test_invalid_hyper_parameter_in_profile(tmp_path):
    bad = dict(TINY, masking={"p_mask": 1.5, "p_active": 0.8, "lam": 100.0})
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad, allow_unicode=True))
    with pytest.raises(ConfigError, match="masking.p_mask must be below 1"):
        run_pipeline(path, progress=False, results_dir=tmp_path / "r", run_dir=tmp_path / "runs")
    assert not (tmp_path / "r").exists()


def test_split_summary_averages_per_split_means():
    from cadm_utils.reporting.paper_numbers import table1
    from cadm_utils.reporting.tables import split_summary_table

    splits = ["ACS→P", "APS→C"]
    records = [{"dataset": "pacs", "split": split, "method": "mmd", "ipc": 10,
                "net": "resnet18", "seed": seed, "acc": acc, "source_val_acc": acc + 10}
               for split, accs in zip(splits, ([30.0, 32.0, 34.0], [50.0, 60.0]))
               for seed, acc in enumerate(accs)]
    table = split_summary_table(records, "t", "pacs", splits, ["mmd", "cadm"], [10],
                                table1("pacs"))
    # per-split means 32 and 55 (not the pooled mean 41.2 of the five runs)
    assert table.rows[0] == ["mmd", "10", "43.5", f"{(40.8 + 32.4) / 2:.1f}", "53.5", "2"]
    assert table.rows[1][2] == "–" and table.rows[1][5] == "0"
    one_split = split_summary_table(records[:3], "t", "pacs", splits, ["mmd"], [10])
    assert one_split.rows[0][2] == "–" and one_split.rows[0][5] == "1"
    assert [r[0] for r in table.rows] == ["mmd", "cadm", "Full dataset"]
    no_full = split_summary_table(records, "t", "pacs", splits, ["mmd"], [10], full_row=False)
    assert [r[0] for r in no_full.rows] == ["mmd"]  # a variant stage's summary


def test_replicate_rows_are_pooled_per_method():
    from cadm_utils.experiment.cells import stage_rows
    from cadm_utils.reporting.tables import replicate_groups, split_summary_table

    from cadm_utils.settings import Stage

    rows = stage_rows(Stage("s", "variants", ["pacs"], [10], methods=["mmd", "cadm"], variants={
        "reference": {}, "seed1": {"seed": 1}, "seed2": {"seed": 2}}), None)
    groups = replicate_groups(rows)
    assert groups == {"mmd, 3 seeds pooled": ["mmd", "mmd{seed1}", "mmd{seed2}"],
                      "cadm, 3 seeds pooled": ["cadm", "cadm{seed1}", "cadm{seed2}"]}
    other = Stage("s", "variants", ["pacs"], [10], methods=["mmd"],
                  variants={"reference": {}, "other": {"distill.lr": 0.1}})
    assert replicate_groups(stage_rows(other, None)) is None
    splits = ["ACS→P", "APS→C"]
    accs = {("mmd", "ACS→P"): [30.0, 32.0], ("mmd{seed1}", "ACS→P"): [40.0],
            ("mmd{seed2}", "ACS→P"): [], ("mmd", "APS→C"): [50.0],
            ("mmd{seed1}", "APS→C"): [60.0, 70.0], ("mmd{seed2}", "APS→C"): [80.0]}
    records = [{"dataset": "pacs", "split": split, "method": name, "ipc": 10,
                "net": "resnet18", "seed": seed, "acc": acc, "source_val_acc": acc / 2}
               for (name, split), values in accs.items() for seed, acc in enumerate(values)]
    table = split_summary_table(records, "t", "pacs", splits, ["mmd", "mmd{seed1}"], [10],
                                full_row=False, pooled={"pooled": list(groups.values())[0]})
    # pooled per split: P (30, 32, 40) -> 34, C (50, 60, 70, 80) -> 65; mean 49.5
    assert table.rows[-1] == ["pooled", "10", "49.5", "–", f"{49.5 / 2:.1f}", "2"]
    assert [r[0] for r in table.rows] == ["mmd", "mmd{seed1}", "pooled"]


def test_variant_stages_on_several_splits_get_a_summary():
    from cadm_utils.reporting.tables import summary_tables

    runner = Runner(load_profile("pacs-cpu"), progress=False)
    tables = summary_tables(runner)
    assert {"table1_pacs_summary", "eval_protocol_pacs_summary",
            "expert_lr_pacs_summary"} <= set(tables)
    assert "loop_pacs_summary" not in tables  # one split: its stage table says it all
    rows = [r[0] for r in tables["eval_protocol_pacs_summary"].rows]
    assert rows == ["mmd"] * 2 + ["mmd{ncfm_eval}"] * 2 + ["cadm"] * 2 + ["cadm{ncfm_eval}"] * 2


def test_tables_show_the_paper_value_beside_ours():
    from cadm_utils.reporting.paper_numbers import TABLE2, table1, table3
    from cadm_utils.reporting.tables import ablation_table, cross_architecture_table, method_table

    records = [{"dataset": "pacs", "split": "ACS→P", "method": m, "ipc": 10, "net": n,
                "seed": s, "acc": 40.0 + s} for m in ("mmd", "cadm", "cadm[adm]")
               for n in ("resnet18", "convnet") for s in range(3)]
    t1 = method_table(records, "t", "pacs", ["ACS→P"], ["mmd", "cadm"], [10], False, table1("pacs"))
    assert t1.rows == [["mmd", "41.0 ± 1.0 (3) [paper 40.8]"], ["cadm", "41.0 ± 1.0 (3) [paper 48.7]"]]
    t2 = ablation_table(records, "t", "pacs", "ACS→P", [10], [("cadm[adm]", True, False, False)], TABLE2)
    assert t2.rows == [["✓", "-", "-", "41.0 ± 1.0 (3) [paper 45.9]"]]
    t3 = cross_architecture_table(records, "t", "pacs", "ACS→P", ["cadm"], [10], ["convnet"],
                                  table3())
    assert t3.rows == [["10", "cadm", "41.0 ± 1.0 (3) [paper 45.7]"]]


@pytest.mark.heavy  # about a CPU-minute: .ci/run
def test_two_worker_processes_give_the_same_cells_as_one(tmp_path):
    """Jobs spread over spawned single-thread processes: every record written once, the
    synthetic sets of a single-thread serial run, and a second run reuses everything.
    (Training is chaotic: 1 and 2 threads sum in another order and drift apart.)"""
    profile = dict(TINY, stages={"table1": {"datasets": ["embedded"], "methods": ["mmd", "cadm"],
                                            "ipcs": [1], "full_data": False}},
                   evaluate=dict(TINY["evaluate"], seeds=2))
    runs = {}
    for workers in (1, 2):
        path = tmp_path / f"w{workers}.yaml"
        path.write_text(yaml.safe_dump(dict(profile, workers=workers), allow_unicode=True))
        dirs = {"results_dir": tmp_path / f"results{workers}", "run_dir": tmp_path / f"runs{workers}"}
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            records = run_pipeline(path, progress=False, **dirs)
        finally:
            torch.set_num_threads(threads)
        assert sorted((r["method"], r["seed"]) for r in records) == \
            [("cadm", 0), ("cadm", 1), ("mmd", 0), ("mmd", 1)]
        assert run_pipeline(path, progress=False, **dirs) == []
        runs[workers] = sorted((dirs["run_dir"] / "synthetic").glob("*.pt"))
    assert len(runs[1]) == 2
    for one, two in zip(runs[1], runs[2]):
        assert one.name == two.name
        a = torch.load(one, weights_only=False)["set"]["images"]
        b = torch.load(two, weights_only=False)["set"]["images"]
        assert torch.equal(a, b)


def test_bad_worker_count_is_refused_before_work(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(dict(TINY, workers="many"), allow_unicode=True))
    with pytest.raises(ConfigError, match="workers must be an integer"):
        run_pipeline(path, progress=False, results_dir=tmp_path / "r", run_dir=tmp_path / "w")
    assert not (tmp_path / "r").exists() and not (tmp_path / "w").exists()


def test_evaluation_settings_key_the_records_but_not_the_synthetic_sets(tmp_path):
    from cadm_utils.settings import resolve_profile as full

    cell = plan_cells(full(TINY), methods="cadm")[0]
    base = Runner(full(TINY), results_dir=tmp_path, run_dir=tmp_path, progress=False)
    longer = Runner(full(dict(TINY, evaluate=dict(TINY["evaluate"], epochs=5))),
                    results_dir=tmp_path, run_dir=tmp_path, progress=False)
    more_seeds = Runner(full(dict(TINY, evaluate=dict(TINY["evaluate"], seeds=5))),
                        results_dir=tmp_path, run_dir=tmp_path, progress=False)
    other_masking = Runner(full(dict(TINY, masking=dict(TINY["masking"], p_mask=0.5))),
                           results_dir=tmp_path, run_dir=tmp_path, progress=False)
    assert longer.store.synthetic_path(cell) == base.store.synthetic_path(cell)
    assert longer.store.config_hash("embedded", 1) != base.store.config_hash("embedded", 1)
    assert more_seeds.store.config_hash("embedded", 1) == base.store.config_hash("embedded", 1)
    assert other_masking.store.synthetic_path(cell) != base.store.synthetic_path(cell)


def test_experts_lists_the_trained_experts_only_with_seed_and_source_val(tmp_path):
    from cadm_utils.experiment.pipeline import open_run, trained_experts

    runner, cells = open_run("ci", stages="table1", methods="mmd", targets="P", ipcs="1",
                             results_dir=tmp_path / "r", run_dir=tmp_path / "w",
                             progress=False)
    assert trained_experts(runner, cells) == []
    assert not (tmp_path / "w").exists()  # listing trains nothing
    task = runner.task("embedded", "P")
    _, info = expert(runner, "embedded", task, cells[0].method)
    rows = trained_experts(runner, cells)
    assert [(r["split"], r["seed"], r["overrides"]) for r in rows] == [(task.name, 0, {})]
    assert rows[0]["source_val_acc"] == info["source_val_acc"]
    seeded = runner.variant((("seed", 3),))
    assert trained_experts(seeded, cells) == []  # another seed's expert is not this one


def test_experts_command_counts_what_is_on_disk(capsys):
    import re

    from cadm_utils.__main__ import main

    assert main(["experts", "--profile", "ci", "--stages", "table1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    count = next(int(m.group(1)) for line in lines
                 if (m := re.fullmatch(r"(\d+) experts on disk", line)))
    assert (lines[-1].startswith("The experts of profile ci are made by its run")
            if count == 0 else lines[-1] == f"{count} experts on disk")
    assert main(["experts", "--profile", "ci", "--stages", "table9"]) == 2
    assert "unknown stage 'table9'" in capsys.readouterr().err


def test_zero_distillation_steps_evaluate_the_initial_set_without_experts(tmp_path):
    """distill.steps 0 is the initialisation row: no expert is trained, the set is the
    decoded real tiles that init_from_real draws, and its records are those of fresh
    networks trained on exactly those images (the same for every distilling method)."""
    from cadm_utils.experiment.evaluation import evaluation_config
    from cadm_utils.method.models import build_eval_net
    from cadm_utils.method.synthetic import init_from_real
    from cadm_utils.method.train import accuracy, train_classifier
    from cadm_utils.settings import EVAL_SEED_OFFSET, resolve_profile

    profile = dict(TINY, distill=dict(TINY["distill"], steps=0),
                   evaluate=dict(TINY["evaluate"], seeds=1),
                   stages={"table1": {"datasets": ["embedded"], "methods": ["mmd", "cadm"],
                                      "ipcs": [1]}})
    dirs = {"results_dir": tmp_path / "results", "run_dir": tmp_path / "runs"}
    path = tmp_path / "init.yaml"
    path.write_text(yaml.safe_dump(profile, allow_unicode=True))
    records = run_pipeline(path, progress=False, **dirs)
    assert not (tmp_path / "runs" / "experts").exists()
    assert {r["method"] for r in records} == {"mmd", "cadm"}
    assert len({r["acc"] for r in records}) == 1 and len({r["set_id"] for r in records}) == 1
    runner = Runner(resolve_profile(profile), progress=False, **dirs)
    task = runner.task("embedded", "P")
    initial = init_from_real(task.train, task.source_domains, 1, 2,
                             torch.Generator().manual_seed(0))
    images, labels, _ = initial.decoded()
    torch.manual_seed(EVAL_SEED_OFFSET)
    model, cpu = runner.sections.model, torch.device("cpu")
    net = build_eval_net("resnet18", task.n_classes, task.n_domains, 32, model.width,
                         model.stem)
    net = train_classifier(net, images, labels, evaluation_config(runner), EVAL_SEED_OFFSET,
                           cpu, progress=False)
    assert records[0]["acc"] == accuracy(net, task.test.images, task.test.labels, cpu)
    assert records[0]["source_val_acc"] == accuracy(net, task.val.images, task.val.labels, cpu)
    stored = torch.load(next((tmp_path / "runs" / "synthetic").glob("*mmd*.pt")),
                        weights_only=False)
    assert torch.equal(stored["set"]["images"], initial.images)


def _products_of_one_run(dirs: dict) -> list:
    """One run of the ci profile's MMD and CADM cells on ACS→P at IPC 1: its experts' and
    sets' stored infos (a module-level function: it runs in a spawned process)."""
    from cadm_utils.experiment.pipeline import distill_cells, pretrain_experts

    runner, cells = open_run("ci", stages="table1", methods="mmd,cadm", targets="P", ipcs="1",
                             progress=False, **dirs)
    runner.profile = dataclasses.replace(runner.profile, workers=1)
    experts = [(row["expert_id"], row["source_val_acc"]) for row in
               pretrain_experts(runner, cells)]
    sets = [row["set_id"] for row in distill_cells(runner, cells)]
    task = runner.task("embedded", "P")
    walls = [expert(runner, "embedded", task, get_method(m))[1]["wall_s"] for m in ("mmd", "cadm")]
    return [experts, sets, walls]


def test_two_overlapping_runs_make_each_product_once(tmp_path):
    """Two runs of one profile at once: the second waits on each product file's lock and
    loads what the first made (the same stored wall time: trained once)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    dirs = {"results_dir": str(tmp_path / "results"), "run_dir": str(tmp_path / "runs")}
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        first, second = pool.map(_products_of_one_run, [dirs, dirs])
    assert first == second
    assert len(first[0]) == 2 and len(first[1]) == 2


def test_a_trained_expert_leaves_its_curves_in_the_results(tmp_path):
    """01_pretrain draws the experts from results/<profile>/experts.jsonl: one train loss
    and one source-val accuracy per epoch, the last equal to the expert's final accuracy."""
    runner = Runner(load_profile("ci"), results_dir=tmp_path / "r", run_dir=tmp_path / "w",
                    progress=False)
    task = runner.task("embedded", "P")
    model, info = expert(runner, "embedded", task, get_method("mmd"))
    (record,) = load_records(tmp_path / "r" / "experts.jsonl")
    epochs = runner.sections.pretrain.epochs
    assert len(record["train_loss_by_epoch"]) == len(record["source_val_by_epoch"]) == epochs
    assert record["source_val_by_epoch"][-1] == record["source_val_acc"] == info["source_val_acc"]
    assert record["expert_id"] == info["expert_id"] and record["expert_kind"] == "plain"
    expert(runner, "embedded", task, get_method("mmd"))  # loaded, not trained: no new record
    assert len(load_records(tmp_path / "r" / "experts.jsonl")) == 1


def test_a_longer_distillation_starts_from_the_shorter_run_and_ends_where_a_fresh_one_does(
        tmp_path):
    """A cell that differs from a finished one only by more distill.steps takes over that
    run's final checkpoint and goes on from there; its set is bit for bit the set of a
    fresh run of the same length (the loop has no length-dependent setting)."""
    import shutil

    from cadm_utils.experiment.products import shorter_run, synthetic_set

    profile = dict(TINY, distill=dict(TINY["distill"], class_steps="all", checkpoint_every=1),
                   stages={"table1": {"datasets": ["embedded"], "methods": ["mmd"],
                                      "ipcs": [1]}})
    path = tmp_path / "extend.yaml"
    path.write_text(yaml.safe_dump(profile, allow_unicode=True))
    runners = {}

    def made(run_dir, steps):
        if run_dir not in runners:
            runners[run_dir] = open_run(path, run_dir=run_dir, results_dir=tmp_path / "r",
                                        progress=False)
        runner, [cell] = runners[run_dir]
        variant = runner.variant((("distill.steps", steps),))
        return variant, cell, synthetic_set(variant, cell, variant.task(cell.dataset,
                                                                       cell.target))

    shared = tmp_path / "shared"
    short, cell, _ = made(shared, 1)
    assert shorter_run(short, cell) is None  # nothing shorter than 1 step exists
    other = short.variant((("distill.lr", 0.02), ("distill.steps", 3)))
    assert shorter_run(other, cell) is None  # another trajectory: not taken over
    extended_runner, _, (extended, info) = made(shared, 3)
    assert info["extended_from_step"] == 1 and info["steps"] == 3
    assert len(info["history"]) == 3
    shutil.copytree(shared / "experts", tmp_path / "alone" / "experts")  # the same experts
    _, _, (fresh, fresh_info) = made(tmp_path / "alone", 3)
    assert fresh_info["extended_from_step"] == 0
    assert torch.equal(extended.images, fresh.images)
    assert info["set_id"] == fresh_info["set_id"]
    # the longest shorter run is the one taken: 3 steps before 1, for 5
    assert shorter_run(extended_runner.variant((("distill.steps", 5),)), cell)[0] == 3
