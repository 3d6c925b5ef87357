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
