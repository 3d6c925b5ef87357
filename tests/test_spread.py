"""Fig. 1(b)'s statistic of one distilled set (reporting.features.score_spread) against a
hand computation, and the paired comparison of two rows' sets (`compare --spread`)."""
import numpy as np
import pytest
import torch

from cadm_utils.errors import ConfigError
from cadm_utils.method.models import N_BLOCKS, DomainAwareResNet
from cadm_utils.method.synthetic import SyntheticSet
from cadm_utils.reporting.analysis import spread_units
from cadm_utils.reporting.features import score_spread
from cadm_utils.experiment.products import expert, synthetic_set


def test_score_spread_is_the_mean_over_channels_of_the_variance_across_domains():
    torch.manual_seed(0)
    model = DomainAwareResNet(3, 3, 4, 16).eval()
    images = torch.rand(12, 3, 16, 16)
    domains = torch.tensor([0, 1, 2] * 4)
    synthetic = SyntheticSet(images, torch.arange(12) % 3, domains, 1)
    with torch.no_grad():
        pooled = model.run_blocks(images, 0, N_BLOCKS).mean(dim=(2, 3)).double().numpy()
    weight = model.head_weight(N_BLOCKS - 1).detach().double().numpy()
    rows = []
    for feature, domain in zip(pooled, domains.tolist()):
        raw = weight[domain] * feature
        rows.append((raw - raw.min()) / (raw.max() - raw.min()))
    rows = np.array(rows)
    per_domain = np.stack([rows[domains.numpy() == d].mean(0) for d in range(3)])
    expected = per_domain.var(axis=0).mean()  # population variance over the 3 domains
    assert score_spread(model, synthetic) == pytest.approx(expected, rel=1e-5)
    # one domain only: no spread at all
    alone = SyntheticSet(images, torch.arange(12) % 3, torch.zeros(12, dtype=torch.long), 1)
    assert score_spread(model, alone) == 0.0


def test_spread_units_read_both_sets_with_cadms_heads_and_need_a_cadm_row(tmp_path):
    from cadm_utils.experiment.pipeline import open_run

    runner, cells = open_run("ci", stages="table1", methods="random,mmd,cadm", targets="P",
                             ipcs="1", results_dir=tmp_path / "r", run_dir=tmp_path / "w",
                             progress=False)
    task = runner.task("embedded", "P")
    assert spread_units(runner, ["mmd"], ["cadm"], 1) == []  # nothing on disk: no unit
    sets = {cell.method.name: synthetic_set(runner, cell, task)[0] for cell in cells}
    [(split, first, mmd, second, cadm)] = spread_units(runner, ["mmd"], ["cadm"], 1)
    assert (split, first, second) == (task.name, "mmd", "cadm")
    probe, _ = expert(runner, "embedded", task, cells[-1].method)
    assert mmd == pytest.approx(score_spread(probe, sets["mmd"]))
    assert cadm == pytest.approx(score_spread(probe, sets["cadm"]))
    with pytest.raises(ConfigError, match="has a CADM expert"):
        spread_units(runner, ["mmd"], ["random"], 1)


def test_a_missing_probe_is_trained_only_when_asked_and_must_be_the_sets_own(tmp_path):
    """Sets taken from sets/ come without their experts: `train_probes` trains CADM's again,
    and the unit counts only where it is the expert that made CADM's set."""
    from cadm_utils.errors import DataError
    from cadm_utils.experiment.pipeline import open_run

    runner, cells = open_run("ci", stages="table1", methods="mmd,cadm", targets="P", ipcs="1",
                             results_dir=tmp_path / "r", run_dir=tmp_path / "w", progress=False)
    task = runner.task("embedded", "P")
    for cell in cells:
        synthetic_set(runner, cell, task)
    before = spread_units(runner, ["mmd"], ["cadm"], 1)
    for path in (tmp_path / "w" / "experts").iterdir():
        path.unlink()
    assert spread_units(runner, ["mmd"], ["cadm"], 1) == []
    assert spread_units(runner, ["mmd"], ["cadm"], 1, train_probes=True) == before
    cadm_set = runner.store.synthetic_path(cells[-1])
    state = torch.load(cadm_set, weights_only=False)
    state["info"]["expert_ids"] = ["another"]
    torch.save(state, cadm_set)
    with pytest.raises(DataError, match="is not the one that made the set"):
        spread_units(runner, ["mmd"], ["cadm"], 1)


def test_recorded_units_render_on_a_fresh_clone_without_data_or_products(tmp_path):
    """pacs-dm's committed spread.jsonl holds every unit of its current sets: with no data
    root and an empty run folder, the units come from the file, and nothing is loaded."""
    import shutil

    from cadm_utils.experiment.runner import Runner
    from cadm_utils.profiles import load_profile
    from cadm_utils.reporting.analysis import recorded_spread_units
    from .conftest import REPO_ROOT

    results = tmp_path / "results"
    shutil.copytree(REPO_ROOT / "results" / "pacs-dm", results)
    runner = Runner(load_profile("pacs-dm"), data_root=None, results_dir=results,
                    run_dir=tmp_path / "runs", device="cpu", progress=False)
    units = recorded_spread_units(runner, ["mmd", "mmd{seed1}"], ["cadm", "cadm{seed1}"], 10)
    assert len(units) == 8 and {u[0] for u in units} == {"ACS→P", "APS→C", "CPS→A", "ACP→S"}
    assert (results / "spread.jsonl").read_text() == \
        (REPO_ROOT / "results" / "pacs-dm" / "spread.jsonl").read_text()  # nothing appended


def test_a_recorded_unit_is_read_again_not_measured_and_appended_again(tmp_path, monkeypatch):
    """With the sets on disk, `report --spread` measures a unit once: a second report reads
    the recorded unit (nothing loaded, nothing appended); a remade set is measured again."""
    import json

    from cadm_utils.experiment.pipeline import open_run
    from cadm_utils.reporting import analysis

    runner, cells = open_run("ci", stages="table1", methods="mmd,cadm", targets="P", ipcs="1",
                             results_dir=tmp_path / "r", run_dir=tmp_path / "w", progress=False)
    task = runner.task("embedded", "P")
    for cell in cells:
        synthetic_set(runner, cell, task)
    path = tmp_path / "r" / analysis.SPREAD_FILE
    first = analysis.recorded_spread_units(runner, ["mmd"], ["cadm"], 1)
    assert len(first) == 1 and len(path.read_text().splitlines()) == 1

    measure = analysis._spreads

    def measured_again(*args, **kwargs):  # None: a pair whose sets are not on disk
        if measure(*args, **kwargs) is not None:
            raise AssertionError("a recorded unit was measured again")

    monkeypatch.setattr(analysis, "_spreads", measured_again)
    assert analysis.recorded_spread_units(runner, ["mmd"], ["cadm"], 1) == first
    assert len(path.read_text().splitlines()) == 1
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "second_set": "a remade set"}) + "\n")
    with pytest.raises(AssertionError, match="measured again"):
        analysis.recorded_spread_units(runner, ["mmd"], ["cadm"], 1)
