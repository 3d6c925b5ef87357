"""A run that fits a time budget, its export, and the merge back on another machine."""
import json
from types import SimpleNamespace

import pytest
import yaml

from cadm_utils.errors import ConfigError
from cadm_utils.experiment.budget import parse_duration, priority
from cadm_utils.experiment.export import (MIB, ExportLimits, export, export_generations,
                                          merge_export)
from cadm_utils.experiment.cells import plan_cells
from cadm_utils.experiment.pipeline import open_run
from cadm_utils.experiment.records import load_records
from cadm_utils.experiment.runner import Runner
from cadm_utils.profiles import load_profile


@pytest.mark.parametrize("text, seconds", [("11m", 660), ("90s", 90), ("1h30m", 5400), ("45", 45)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "0", "-5m", ""])
def test_bad_durations(text):
    with pytest.raises(ConfigError):
        parse_duration(text)


def test_priority_starts_with_the_initialisation_and_the_whole_mechanism_on_acs_to_p():
    profile = load_profile("gpu-short")
    cells = plan_cells(profile, datasets="pacs")
    targets = profile.datasets["pacs"].targets
    ordered = sorted(cells, key=lambda c: priority(c, targets, profile.budget))
    entries = {}  # a table entry in two stages runs once, under its first stage
    for c in ordered:
        entries.setdefault((c.target, c.method.name, c.ipc, c.net), c)
    first = [(c.stage, c.target, c.method.name, c.ipc) for c in list(entries.values())[:22]]
    # a GPU window's first cells: ACS→P at IPC 10, the initialisation and CADM against MMD
    # with CADM's whole mechanism; then the other splits' initialisations
    assert first[:3] == [("mechanism", "P", "cadm{whole}", 10), ("init", "P", "mmd{init}", 10),
                         ("mechanism", "P", "mmd{whole}", 10)]
    assert {(s, t) for s, t, _, _ in first[3:10]} == {("init", t) for t in "PCAS"}
    first = first[10:]
    assert first[:2] == [("table1", "P", "cadm", 10), ("table1", "P", "mmd", 10)]
    # the loop and evaluation checks' other rows next (their reference rows are Table 1's)
    assert first[2:6] == [("loop", "P", "cadm{all_classes}", 10),
                          ("eval_protocol", "P", "cadm{ncfm_eval}", 10),
                          ("loop", "P", "mmd{all_classes}", 10),
                          ("eval_protocol", "P", "mmd{ncfm_eval}", 10)]
    assert {t for _, t, _, _ in first} == {"P", "C", "A", "S"}
    names = [c.method.name for c in ordered]
    assert names.index("random") > names.index("cadm")
    assert max(i for i, c in enumerate(ordered) if c.stage == "table1") < \
        min(i for i, c in enumerate(ordered) if c.stage == "table2")


@pytest.mark.slow
def test_budgeted_dry_run_exports_and_merges(tmp_path):
    profile = load_profile("ci").values
    profile.update(name="ci_budget", precision="float32")
    profile["pretrain"]["epochs"] = 1
    profile["distill"].update(steps=2, checkpoint_every=1)
    profile["evaluate"].update(steps=2, seeds=1)
    path = tmp_path / "ci_budget.yaml"
    path.write_text(yaml.safe_dump(profile, allow_unicode=True))
    from cadm_utils.experiment.budget import run_budgeted

    runner, cells = open_run(path, stages="table1", results_dir=tmp_path / "gpu_results",
                             run_dir=tmp_path / "gpu_runs", progress=False)
    lines = []
    limits = ExportLimits(part_bytes=16 * MIB, max_bytes=48 * MIB)
    records = run_budgeted(runner, cells, budget_s=0.5, export_dir=tmp_path / "export",
                           limits=limits, log=lines.append)
    assert 1 <= len(records) < len(cells) and lines[-1].startswith("budget: stop before")
    parts = sorted((tmp_path / "export").iterdir())
    assert 1 <= len(parts) <= 3 and all(p.stat().st_size <= limits.part_bytes for p in parts)
    home = Runner(load_profile(path), results_dir=tmp_path / "cpu_results",
                  run_dir=tmp_path / "cpu_runs", progress=False)
    added, products = merge_export(home, tmp_path / "export")
    assert added == len(records) and products >= 1
    assert merge_export(home, tmp_path / "export")[0] == 0  # merging twice adds nothing
    merged = load_records(tmp_path / "cpu_results" / "records.jsonl")
    assert merged == records
    for record in merged:  # every exported set arrives with the id its records name
        if record["set_file"]:
            assert home.store.stored_set_id(record["set_file"]) == record["set_id"]


def fake_runner(tmp_path, name):
    return SimpleNamespace(profile=SimpleNamespace(name=name), records_path=tmp_path / name / "records.jsonl",
                           run_dir=tmp_path / name / "runs")


def product(folder, name, size):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes([len(name) % 256]) * size)
    return path


def test_export_keeps_within_its_limits(tmp_path):
    """Records always, synthetic sets before experts, and what does not fit is named in the
    log instead of failing the export at the end of a budgeted run."""
    made = tmp_path / "made"
    expert = product(made / "experts", "big-expert.pt", 70_000)
    small_expert = product(made / "experts", "small-expert.pt", 20_000)
    sets = [product(made / "synthetic", f"set{i}.pt", 30_000) for i in range(2)]
    lines = []
    paths = export(fake_runner(tmp_path, "gpu"), [{"acc": 50.0}], [expert, small_expert, *sets],
                   tmp_path / "out", ExportLimits(40_000, 100_000), lines.append)
    assert sum(p.stat().st_size for p in paths) <= 100_000
    assert all(p.stat().st_size <= 40_000 for p in paths)
    assert [p.name for p in paths] == ["gpu-export.g0.tar.part0of3", "gpu-export.g0.tar.part1of3",
                                       "gpu-export.g0.tar.part2of3"]
    assert lines == ["export: left out experts/big-expert.pt (0 MiB): no room in 0 MiB"]
    home = fake_runner(tmp_path, "cpu")
    assert merge_export(home, tmp_path / "out") == (1, 3)  # both sets and the small expert
    assert sorted(p.name for p in home.run_dir.rglob("*.pt")) == \
        ["set0.pt", "set1.pt", "small-expert.pt"]


def test_an_export_cut_off_mid_write_leaves_the_previous_one(tmp_path):
    """The export is rewritten after every cell; a kill while a generation is written (a
    part missing) must leave the previous generation readable, and a finished generation
    replaces the previous one."""
    runner = fake_runner(tmp_path, "gpu")
    folder = tmp_path / "out"
    limits = ExportLimits(16 * MIB)
    export(runner, [{"cell": 1}], [], folder, limits)
    export(runner, [{"cell": 1}, {"cell": 2}], [], folder, limits)
    assert list(export_generations(folder)) == [1]  # generation 0 deleted once 1 was whole
    (folder / "gpu-export.g2.tar.part0of2").write_bytes(b"cut off")  # part 1 never came
    home = fake_runner(tmp_path, "cpu")
    assert merge_export(home, folder) == (2, 0)
    export(runner, [{"cell": 1}, {"cell": 2}], [], folder, limits)  # after a cut-off one: a new number
    assert [p.name for p in folder.iterdir()] == ["gpu-export.g3.tar.part0of1"]
    assert [json.loads(line) for line in home.records_path.read_text().splitlines()] == \
        [{"cell": 1}, {"cell": 2}]
    for part in folder.iterdir():
        part.unlink()
    with pytest.raises(ConfigError, match="no complete export"):
        merge_export(home, folder)


@pytest.mark.heavy  # about a CPU-minute: .ci/run
def test_the_gpu_window_script_runs_on_the_cpu(tmp_path):
    """scripts/gpu_window.sh, the one command of a budgeted GPU slice, with the ci profile, tiny step
    timings on the CPU and a budget of one second: the log names the commit and both exit
    codes, and its export merges."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    profile = load_profile("ci").values
    name = f"ci_window_{os.getpid()}"  # its products go to runs/<name>, removed below
    profile.update(name=name, precision="float32")
    profile["pretrain"]["epochs"] = 1
    profile["distill"].update(steps=2, checkpoint_every=1)
    profile["evaluate"].update(steps=2, seeds=1)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(profile, allow_unicode=True))
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "PROFILE": str(path),
           "DATA_ROOT": "", "DATASETS": "embedded", "BUDGET": "1s", "CADM_COMMIT": "abc1234",
           "RESULTS_DIR": str(tmp_path / "gpu_results"),
           "STEP_SPEED_LIMIT": "600",  # the window's own limit, not what this test checks
           "STEP_SPEED_ARGS": "--device cpu --width 8 --resolution 32 --classes 5 "
                              "--real-per-class 8 --steps 1 --eval-seeds 2 --eval-batch 16"}
    try:
        done = subprocess.run(["bash", str(root / "scripts" / "gpu_window.sh")], env=env,
                              capture_output=True, text=True, timeout=600)
    finally:
        shutil.rmtree(root / "runs" / name, ignore_errors=True)
    assert not (root / "results" / name).exists()
    assert done.returncode == 0, done.stderr[-2000:]
    log = (out / "window.log").read_text()
    assert log.startswith("commit abc1234")
    assert "step_speed: exit 0" in log and "budgeted run: exit 0" in log
    assert "distill_s" in (out / "step_speed.jsonl").read_text()  # timings kept for `check`
    home = Runner(load_profile(path), results_dir=tmp_path / "cpu_results",
                  run_dir=tmp_path / "cpu_runs", progress=False)
    added, _ = merge_export(home, out / "export")
    assert added == len(load_records(tmp_path / "cpu_results" / "records.jsonl")) >= 1


def test_estimate_counts_only_the_products_still_missing(tmp_path):
    """A cell whose set is on disk costs its evaluations only; one whose experts are on disk
    but whose set is not adds a distillation, not a second expert training."""
    from cadm_utils.experiment.cost import measured_seconds as estimate
    from cadm_utils.experiment.planning import expert_path, missing_products

    runner, cells = open_run("ci", stages="table1", results_dir=tmp_path / "r",
                             run_dir=tmp_path / "w", progress=False)
    cell = next(c for c in cells if c.method.name == "cadm")
    done = [{"method": "cadm", "ipc": cell.ipc, "net": cell.net, "eval_s": 2.0,
             "distill_s": 30.0, "pretrain_s": 100.0}]
    assert estimate(runner, cell, 3, []) is None
    assert estimate(runner, cell, 3, done) == 3 * 2.0 + 30.0 + 100.0
    experts, sets = missing_products(runner, [cell])
    for key in experts:
        path = expert_path(runner, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    assert estimate(runner, cell, 3, done) == 3 * 2.0 + 30.0
    path = runner.for_cell(cell).store.synthetic_path(cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    assert estimate(runner, cell, 3, done) == 3 * 2.0
