"""Issue 12: a run that fits a time budget, its export, and the merge back on another machine."""
import pytest
import yaml

from cadm_utils.errors import ConfigError
from cadm_utils.experiment.budget import (MAX_PARTS, PART_BYTES, merge_export, parse_duration,
                                          priority)
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


def test_priority_starts_with_pacs_ipc10_mmd_and_cadm_on_acs_to_p():
    profile = load_profile("paper")
    cells = plan_cells(profile, datasets="pacs")
    targets = profile["datasets"]["pacs"]["targets"]
    ordered = sorted(cells, key=lambda c: priority(c, targets))
    entries = {}  # a table entry in two stages runs once, under its first stage
    for c in ordered:
        entries.setdefault((c.target, c.method.name, c.ipc, c.net), c)
    first = [(c.stage, c.target, c.method.name, c.ipc) for c in list(entries.values())[:12]]
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
    profile = load_profile("ci")
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
    records = run_budgeted(runner, cells, budget_s=0.5, export_dir=tmp_path / "export",
                           log=lines.append)
    assert 1 <= len(records) < len(cells) and lines[-1].startswith("budget: stop before")
    parts = sorted((tmp_path / "export").iterdir())
    assert 1 <= len(parts) <= MAX_PARTS and all(p.stat().st_size <= PART_BYTES for p in parts)
    home = Runner(load_profile(path), results_dir=tmp_path / "cpu_results",
                  run_dir=tmp_path / "cpu_runs", progress=False)
    added, products = merge_export(home, tmp_path / "export")
    assert added == len(records) and products >= 1
    assert merge_export(home, tmp_path / "export")[0] == 0  # merging twice adds nothing
    merged = load_records(tmp_path / "cpu_results" / "records.jsonl")
    assert merged == records
    for record in merged:  # every exported set arrives with the id its records name
        if record["set_file"]:
            assert home.stored_set_id(record["set_file"]) == record["set_id"]
