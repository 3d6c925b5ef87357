"""The one cost model (experiment/cost.py) that the scheduler, the budgeted run and the GPU
estimate share: each job's work against a hand computation, and the estimate scaled by it."""
from dataclasses import replace
from types import SimpleNamespace

import pytest

from cadm_utils.experiment import cost
from cadm_utils.experiment.cells import plan_cells
from cadm_utils.experiment.runner import Runner
from cadm_utils.method.distill import DistillConfig
from cadm_utils.method.methods import get_method
from cadm_utils.method.train import EvaluateConfig
from cadm_utils.profiles import load_profile

DISTILL = DistillConfig(steps=100, real_per_class=8, factor=2)


def test_the_work_of_each_job_kind_by_hand():
    # 100 steps × (8 real + 2 × 2² decoded synthetic images per class) × the method's cost
    assert cost.distill_work(DISTILL, get_method("mmd"), 2) == 100 * 16
    assert cost.distill_work(DISTILL, get_method("mmd_dam"), 2) == 100 * 16 * 2.2
    assert cost.distill_work(replace(DISTILL, steps=0), get_method("cadm"), 2) == 0.0
    assert cost.distill_work(DISTILL, get_method("random"), 2) == 0.0
    evaluate = EvaluateConfig(epochs=10, batch_size=64)
    # 10 epochs × ⌈100 / 64⌉ = 20 steps of 64 images; ResNet-50 counts 4 times
    assert cost.evaluation_work(evaluate, 100) == 20 * 64
    assert cost.evaluation_work(evaluate, 100, "resnet50") == 4 * 20 * 64
    assert cost.evaluation_work(evaluate, 40) == 10 * 40  # one batch of the whole set
    profile = load_profile("ci")
    assert cost.expert_work(profile, "embedded", get_method("cadm")) == \
        profile.sections.pretrain.epochs * get_method("cadm").expert_cost


def test_the_gpu_estimate_scales_the_timed_step_by_the_work():
    timing = {"real_per_class": 8, "ipc": 2, "distill_s": {"mmd/all": 0.5, "cadm/all": 0.8}}
    profile = SimpleNamespace(sections=SimpleNamespace(
        distill=replace(DISTILL, class_steps="all")))
    assert cost.distill_seconds(profile, get_method("mmd"), 2, timing) == pytest.approx(50.0)
    # DAM's views cost 2.2 times MMD's step; twice the IPC adds 8 of 16 images per class
    assert cost.distill_seconds(profile, get_method("mmd_dam"), 2, timing) == pytest.approx(110.0)
    assert cost.distill_seconds(profile, get_method("mmd"), 4, timing) == pytest.approx(75.0)
    assert cost.distill_seconds(profile, get_method("cadm"), 2, timing) == pytest.approx(80.0)


def test_the_scheduler_starts_the_most_work_first(tmp_path):
    profile = load_profile("ci")
    runner = Runner(profile, results_dir=tmp_path, run_dir=tmp_path, progress=False)
    cells = [c for c in plan_cells(profile, stages="table1,table3") if c.target == "P"]
    work = {c: cost.cell_evaluation_work(runner.for_cell(c), c) for c in cells}
    full = next(c for c in cells if c.ipc == 0)
    resnet50 = next(c for c in cells if c.net == "resnet50")
    same_set = next(c for c in cells if c.net == "resnet18" and c.method == resnet50.method)
    assert work[full] == max(work.values())
    assert work[resnet50] == 4 * work[same_set]
