import torch

from cadm_utils.data import leave_one_domain_out, load_dataset
from cadm_utils.method.distill import DistillConfig, distill
from cadm_utils.method.masking import MaskingConfig
from cadm_utils.method.methods import METHODS
from cadm_utils.method.models import DomainAwareResNet


def _setup():
    task = leave_one_domain_out(load_dataset("embedded"), "S")
    torch.manual_seed(0)
    model = DomainAwareResNet(task.n_classes, task.n_domains, width=8, resolution=32)
    config = DistillConfig(ipc=1, steps=6, real_per_class=8, checkpoint_every=2, interpolate=False)
    return task, model, config


def test_resume_equals_uninterrupted(tmp_path):
    task, model, config = _setup()
    device = torch.device("cpu")
    full, full_history = distill(model, task, METHODS["cadm"], config, MaskingConfig(), 0, device,
                                 checkpoint=tmp_path / "a.pt", progress=False)
    # interrupted after step 3: the checkpoint of step 2 survives, step 3 is lost
    distill(model, task, METHODS["cadm"], config, MaskingConfig(), 0, device,
            checkpoint=tmp_path / "b.pt", progress=False, stop_after=3)
    assert torch.load(tmp_path / "b.pt", weights_only=False)["step"] == 2
    resumed, resumed_history = distill(model, task, METHODS["cadm"], config, MaskingConfig(), 0,
                                       device, checkpoint=tmp_path / "b.pt", progress=False)
    assert torch.equal(full.images, resumed.images)
    assert full_history == resumed_history and len(full_history) == 6


def test_distillation_moves_pixels_and_keeps_range():
    task, model, config = _setup()
    start, _ = distill(model, task, METHODS["random"], config, MaskingConfig(), 0,
                       torch.device("cpu"), progress=False)
    mmd, history = distill(model, task, METHODS["mmd"], config, MaskingConfig(), 0,
                           torch.device("cpu"), progress=False)
    assert start.images.shape == mmd.images.shape
    assert not torch.equal(start.images, mmd.images)
    assert mmd.images.min() >= 0 and mmd.images.max() <= 1
    assert all(set(h) == {"match", "reg", "cons"} for h in history)


def _two_nets():
    torch.manual_seed(0)
    initial = DomainAwareResNet(3, 2, width=4, resolution=16)
    torch.manual_seed(1)
    trained = DomainAwareResNet(3, 2, width=4, resolution=16)
    with torch.no_grad():
        for module in trained.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.fill_(0.5)
                module.running_var.fill_(2.0)
    return initial, trained


def _mixed_at_one_weight(model, initial, trained, skip="domain_heads."):
    """The weight l with model = l·initial + (1 − l)·trained, the same for every parameter
    not named `skip…` (None when there is no such single l)."""
    pairs = [(m, a, b) for (name, m), a, b in zip(model.named_parameters(), initial.parameters(),
                                                 trained.parameters())
             if not name.startswith(skip)]
    m, a, b = pairs[0]
    weight = float(((b - m).flatten()[0]) / ((b - a).flatten()[0]))
    same = all(torch.allclose(m, weight * a + (1 - weight) * b, atol=1e-6) for m, a, b in pairs)
    return weight if same else None


def test_ncfm_interpolation_mixes_parameters_only_and_matches_in_train_mode():
    """distill.interpolation "parameters" (NCFM utils/utils.py update_feature_extractor):
    parameters interpolated, BatchNorm buffers and domain heads those of the trained
    expert, matching in train mode; "all" interpolates buffers and heads too, in eval mode."""
    from cadm_utils.method.distill import ExpertPool

    initial, trained = _two_nets()
    pool = ExpertPool([(trained, initial)], torch.device("cpu"), True, "parameters")
    match, calib = pool.draw(torch.Generator().manual_seed(0))
    assert match.training and not calib.training
    assert 0 < _mixed_at_one_weight(match, initial, trained) < 1
    for head, trained_head in zip(match.domain_heads, trained.domain_heads):
        assert torch.equal(head.weight, trained_head.weight)
    assert all(torch.equal(b, t) for b, t in zip(match.buffers(), trained.buffers()))

    everything = ExpertPool([(trained, initial)], torch.device("cpu"), True, "all")
    match, _ = everything.draw(torch.Generator().manual_seed(0))
    assert not match.training
    assert 0 < _mixed_at_one_weight(match, initial, trained, skip="none") < 1
    means = [m.running_mean for m in match.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(0 < float(mean[0]) < 0.5 for mean in means)


def test_distillation_runs_with_ncfm_interpolation():
    from dataclasses import replace

    task, model, config = _setup()
    torch.manual_seed(5)
    initial = DomainAwareResNet(task.n_classes, task.n_domains, width=8, resolution=32)
    config = replace(config, interpolate=True, interpolation="parameters", steps=2)
    synthetic, history = distill([(model, initial)], task, METHODS["cadm"], config,
                                 MaskingConfig(p_active=1.0), 0, torch.device("cpu"),
                                 progress=False)
    assert len(history) == 2 and all(torch.isfinite(torch.tensor(list(h.values()))).all()
                                     for h in history)
