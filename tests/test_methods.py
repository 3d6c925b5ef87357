import pytest
import torch

from cadm_utils.data import leave_one_domain_out, load_dataset
from cadm_utils.errors import ConfigError
from cadm_utils.method.masking import MaskDraw, MaskingConfig
from cadm_utils.method.methods import METHODS, ablation_variant, get_method
from cadm_utils.method.models import DomainAwareResNet


@pytest.fixture(scope="module")
def batch():
    task = leave_one_domain_out(load_dataset("embedded"), "P")
    torch.manual_seed(0)
    model = DomainAwareResNet(task.n_classes, task.n_domains, width=8, resolution=32).eval()
    model.requires_grad_(False)
    g = torch.Generator().manual_seed(0)
    real_index = torch.randperm(len(task.train), generator=g)[:40]
    syn_index = torch.randperm(len(task.train), generator=g)[:15]
    real = [task.train.images[real_index].float() / 255, task.train.labels[real_index],
            task.train.domains[real_index]]
    syn = [task.train.images[syn_index].float() / 255, task.train.labels[syn_index],
           task.train.domains[syn_index]]
    return model, task.n_classes, real, syn


def distillation_losses(model, method, masking, n_classes, real_x, real_y, real_d, syn_x,
                        syn_y, syn_d, generator, batch=None):
    """Every term of one summed step (all classes in one batch, one mask draw)."""
    draw = MaskDraw.sample(masking, generator)
    match = method.matching_loss(model, masking, draw, n_classes, real_x, real_y, real_d,
                                 syn_x, syn_y, generator, batch)
    return {"match": match, **method.calibration_losses(model, masking, draw, syn_x, syn_y,
                                                        syn_d, generator)}


def losses(batch, method, masking, seed=0):
    model, n_classes, real, syn = batch
    syn_x = syn[0].clone().requires_grad_(True)
    terms = distillation_losses(model, method, masking, n_classes, *real, syn_x, syn[1], syn[2],
                                torch.Generator().manual_seed(seed))
    return terms, syn_x


def test_adm_equals_mmd_with_masking_off(batch):
    for seed in range(4):  # several blocks
        mmd, _ = losses(batch, METHODS["mmd"], MaskingConfig(), seed)
        adm, _ = losses(batch, ablation_variant(True, False, False), MaskingConfig(p_mask=0.0), seed)
        assert torch.allclose(adm["match"], mmd["match"], rtol=1e-4, atol=1e-6)
        assert torch.allclose(adm["reg"], mmd["reg"], rtol=1e-4)
        cadm, _ = losses(batch, METHODS["cadm"], MaskingConfig(p_mask=0.0), seed)
        assert torch.allclose(cadm["match"], mmd["match"], rtol=1e-4, atol=1e-6)
        assert cadm["cons"].abs().item() < 1e-6  # identical (all-ones) masks


def test_masking_changes_the_terms_and_reaches_pixels(batch):
    changed = 0
    for seed in range(6):
        mmd, _ = losses(batch, METHODS["mmd"], MaskingConfig(), seed)
        cadm, syn_x = losses(batch, METHODS["cadm"], MaskingConfig(p_active=1.0), seed)
        changed += not torch.allclose(cadm["match"], mmd["match"])
        assert cadm["cons"].item() > 0
        (cadm["match"] + cadm["reg"] + 100 * cadm["cons"]).backward()
        assert syn_x.grad.abs().sum() > 0
    assert changed == 6


def test_p_active_zero_never_masks(batch):
    mmd, _ = losses(batch, METHODS["mmd"], MaskingConfig(), 3)
    cadm, _ = losses(batch, METHODS["cadm"], MaskingConfig(p_active=0.0), 3)
    assert torch.allclose(cadm["match"], mmd["match"]) and cadm["cons"].item() == 0


def test_registry_and_invalid_settings():
    assert get_method("cadm").expert_kind == "domain" and get_method("mmd").expert_kind == "plain"
    with pytest.raises(ConfigError, match="unknown method 'dm'"):
        get_method("dm")
    with pytest.raises(ConfigError, match="p_active"):
        MaskingConfig(p_active=1.5)
    with pytest.raises(ConfigError, match="masking.lam"):
        MaskingConfig(lam=-1)
    with pytest.raises(ConfigError, match="needs L_reg masked"):
        ablation_variant(True, False, True)
