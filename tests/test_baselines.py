import pytest
import torch
import torch.nn.functional as F
import yaml

from cadm_utils.errors import ConfigError
from cadm_utils.experiment.pipeline import run_pipeline
from cadm_utils.method.augment import amplitude_mix, random_amplitude_mix
from cadm_utils.method.losses import irm_penalty
from cadm_utils.method.pretraining import irm_loss
from cadm_utils.method.train import TrainConfig

from .test_pipeline import TINY


def test_amplitude_mix_with_zero_lambda_returns_input():
    x = torch.rand(4, 3, 16, 16)
    out = amplitude_mix(x, torch.zeros(4), torch.tensor([1, 2, 3, 0]))
    assert torch.allclose(out, x, atol=1e-5)


def test_amplitude_mix_keeps_phase_and_mixes_amplitude():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 16, 16, generator=g)
    lam = torch.tensor([0.3, 0.7, 1.0])
    partner = torch.tensor([1, 2, 0])
    out = amplitude_mix(x, lam, partner)
    spectrum_in, spectrum_out = torch.fft.fft2(x), torch.fft.fft2(out)
    amplitude = spectrum_in.abs()
    expected = (1 - lam.view(-1, 1, 1, 1)) * amplitude + lam.view(-1, 1, 1, 1) * amplitude[partner]
    assert torch.allclose(spectrum_out.abs(), expected, atol=1e-3)
    unit_in = spectrum_in / amplitude.clamp_min(1e-6)
    unit_out = spectrum_out / spectrum_out.abs().clamp_min(1e-6)
    significant = (amplitude > 1e-2) & (expected > 1e-2)
    assert torch.allclose(unit_in[significant], unit_out[significant], atol=1e-3)


def test_amplitude_mix_is_differentiable_and_seeded():
    x = torch.rand(4, 3, 8, 8, requires_grad=True)
    out = random_amplitude_mix(x, torch.Generator().manual_seed(1))
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    again = random_amplitude_mix(x.detach(), torch.Generator().manual_seed(1))
    assert torch.allclose(out.detach(), again)


def test_irm_weight_anneals():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    x, y = torch.randn(8, 3, 2, 2), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    d = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    early, late = irm_loss(model, x, y, d, step=0), irm_loss(model, x, y, d, step=10_000)
    logits = model(x)
    risk = torch.stack([F.cross_entropy(logits[d == e], y[d == e]) for e in (0, 1)]).mean()
    penalty = torch.stack([irm_penalty(logits[d == e], y[d == e]) for e in (0, 1)]).mean()
    assert penalty > 0
    assert torch.allclose(early, risk + penalty)
    # weight 100 after the anneal, and the loss rescaled by it (the IRM authors' code)
    assert torch.allclose(late, (risk + 100 * penalty) / 100)


def test_unknown_augmentation_is_refused():
    with pytest.raises(ConfigError, match="unknown augmentation 'mixup'"):
        TrainConfig(epochs=1, augment="mixup")


def test_each_baseline_pretrains_with_its_own_objective():
    from cadm_utils.method.masking import MaskingConfig
    from cadm_utils.method.methods import METHODS
    from cadm_utils.method.pretraining import PretrainConfig, fact_loss

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 3))
    x, y = torch.rand(8, 3, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    d = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    objective = {name: METHODS[name].pretraining_objective(PretrainConfig(), MaskingConfig())
                 for name in ("mmd", "mmd_dam", "mmd_irm", "mmd_fact")}
    for plain in ("mmd", "mmd_dam"):
        assert torch.allclose(objective[plain](model, x, y, d, 0, None),
                              F.cross_entropy(model(x), y))
    assert torch.allclose(objective["mmd_irm"](model, x, y, d, 600, None),
                          irm_loss(model, x, y, d, 600))
    assert not torch.allclose(objective["mmd_irm"](model, x, y, d, 600, None),
                              F.cross_entropy(model(x), y))
    fact = objective["mmd_fact"](model, x, y, d, 0, torch.Generator().manual_seed(3))
    assert torch.allclose(fact, fact_loss(model, x, y, torch.Generator().manual_seed(3)))
    kinds = {name: METHODS[name].expert_kind for name in objective}
    assert kinds == {"mmd": "plain", "mmd_dam": "plain", "mmd_irm": "irm", "mmd_fact": "fact"}


@pytest.mark.slow
def test_irm_and_fact_baselines_end_to_end(tmp_path):
    profile = dict(TINY, stages={"table1": {"datasets": ["embedded"],
                                            "methods": ["mmd_irm", "mmd_fact", "mmd_dam"],
                                            "ipcs": [1]}})
    path = tmp_path / "baselines.yaml"
    path.write_text(yaml.safe_dump(profile, allow_unicode=True))
    records = run_pipeline(path, progress=False, results_dir=tmp_path / "r",
                           run_dir=tmp_path / "runs")
    assert sorted({r["method"] for r in records}) == ["mmd_dam", "mmd_fact", "mmd_irm"]
    assert len(records) == 9 and all(0 <= r["acc"] <= 100 for r in records)
    experts = sorted(p.name.split("-")[-2] for p in (tmp_path / "runs" / "experts").iterdir())
    assert experts == ["fact", "irm", "plain"]


def test_dam_views_sum_back_to_the_image():
    from cadm_utils.method.dam import N_PSEUDO, domain_views

    x = torch.rand(5, 3, 8, 8)
    logits = torch.randn(5, N_PSEUDO, 8, 8)
    views = domain_views(x, logits).view(N_PSEUDO, 5, 3, 8, 8)
    assert torch.allclose(views.sum(0), x, atol=1e-6)
    assert (views >= 0).all()


def test_pseudo_domains_are_equal_bins_of_low_frequency_energy():
    from cadm_utils.method.dam import low_frequency_energy, pseudo_domains

    g = torch.Generator().manual_seed(0)
    flat = torch.full((20, 3, 16, 16), 128, dtype=torch.uint8)
    busy = torch.randint(0, 256, (20, 3, 16, 16), generator=g, dtype=torch.uint8)
    energy = low_frequency_energy(torch.cat([flat, busy]))
    assert energy[:20].max() < 1e-4 < energy[20:].min()  # a flat image has only DC
    labels = pseudo_domains(torch.cat([flat, busy]))
    assert torch.bincount(labels).tolist() == [10, 10, 10, 10]
    assert labels[:20].max() <= 1 and labels[20:].min() >= 2


def test_dam_matching_skips_absent_pseudo_domains():
    from cadm_utils.method.dam import dam_matching_loss

    real = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    real_y, real_pseudo = torch.tensor([0, 0]), torch.tensor([0, 0])
    views = torch.zeros(4 * 1, 2)  # four pseudo-domains, one synthetic image
    loss = dam_matching_loss(real, real_y, real_pseudo, views, torch.tensor([0]), 1)
    assert torch.allclose(loss, torch.tensor(4.0))  # only pseudo-domain 0: ‖(2, 0)‖²
