"""Methods as objects: a new method is one class and one registry line, and the
refactoring kept every cache key, so committed records stay current."""
from dataclasses import dataclass

import pytest
import torch
import yaml

from cadm_utils.data import split_name
from cadm_utils.errors import ConfigError
from cadm_utils.experiment.cells import plan_cells
from cadm_utils.experiment.pipeline import run_pipeline
from cadm_utils.experiment.planning import needed_experts
from cadm_utils.experiment.runner import Runner
from cadm_utils.method import methods
from cadm_utils.method.losses import class_means
from cadm_utils.profiles import REPO_ROOT, load_profile
from cadm_utils.reporting.tables import stage_tables
from cadm_utils.experiment.records import current_records, seeds_to_run


@dataclass(frozen=True)
class ClassMeanL1(methods.Method):
    """A toy method: L1 distance between the real and synthetic class means."""

    def traits(self) -> dict:
        return {**super().traits(), "l1": True}

    def matching_loss(self, model, masking, draw, n_classes, real_x, real_y, real_d, syn_x,
                      syn_y, generator, batch=None):
        with torch.no_grad():
            real = class_means(model.embed(real_x), real_y, n_classes)
        return (real - class_means(model.embed(syn_x), syn_y, n_classes)).abs().sum()


@pytest.fixture
def toy_registered(monkeypatch):
    monkeypatch.setattr(methods, "METHODS", dict(methods.METHODS))
    return methods.register(ClassMeanL1("toy"))


def test_registering_a_name_twice_is_refused(toy_registered):
    with pytest.raises(ConfigError, match="'toy' is already registered"):
        methods.register(ClassMeanL1("toy"))


@pytest.mark.slow
def test_a_toy_method_runs_through_the_ci_profile(toy_registered, tmp_path):
    profile = yaml.safe_load((REPO_ROOT / "profiles" / "ci.yaml").read_text())
    profile["stages"] = {"table1": {"datasets": ["embedded"], "methods": ["mmd", "toy"],
                                    "ipcs": [1]}}
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(profile, allow_unicode=True))
    dirs = {"results_dir": tmp_path / "results", "run_dir": tmp_path / "runs"}
    runner = Runner(load_profile(path), **dirs, progress=False)
    cells = plan_cells(runner.profile)
    assert len(needed_experts(runner, cells)) == 1  # toy shares MMD's plain expert
    records = run_pipeline(path, progress=False, **dirs)
    toy = [r for r in records if r["method"] == "toy"]
    mmd = [r for r in records if r["method"] == "mmd"]
    assert len(toy) == len(mmd) == 2
    assert toy[0]["expert_ids"] == mmd[0]["expert_ids"]
    assert toy[0]["set_id"] != mmd[0]["set_id"]  # its own loss moved the pixels elsewhere
    assert toy[0]["loss_first"]["match"] != mmd[0]["loss_first"]["match"]
    table = stage_tables(runner)["table1_embedded"]
    assert [row[0] for row in table.rows] == ["mmd", "toy"]


@pytest.mark.parametrize("profile_name", ["smoke", "bench", "pacs-cpu", "pacs-dm",
                                          "pacs-dm-pixels", "bench-dm", "bench-dm-pixels"])
def test_committed_records_stay_current(profile_name, tmp_path):
    """On a fresh clone (no products on disk) every cell with committed records needs no
    work: a changed cache key (method key, expert kind, settings) would make them stale."""
    profile = load_profile(profile_name)
    runner = Runner(profile, results_dir=REPO_ROOT / "results" / profile_name,
                    run_dir=tmp_path / "runs", device="cpu", progress=False)
    records = current_records(runner)
    recorded = {(r["dataset"], r["split"], r["method"], r["ipc"], r["net"]) for r in records}
    cells = [c for c in plan_cells(profile)
             if (c.dataset, split_name(c.dataset, c.target), c.method.name, c.ipc, c.net)
             in recorded]
    assert len(cells) >= 6
    assert [c.label for c in cells if seeds_to_run(runner.for_cell(c), c)] == []
