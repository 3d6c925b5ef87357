"""Each reference behaviour (NCFM, DomainDrop) against an independent computation."""
from dataclasses import dataclass, field, replace

import pytest
import torch
import torch.nn.functional as F

from cadm_utils.data import leave_one_domain_out, load_dataset
from cadm_utils.method.augment import DsaParams, augment_for_distillation
from cadm_utils.method.distill import DistillConfig, ExpertPool, distill, interpolate_into
from cadm_utils.method.losses import temperature_kl
from cadm_utils.method.masking import (MaskingConfig, channel_mask, rescale_mask,
                                       sensitive_channel_mask)
from cadm_utils.method.methods import CADM, METHODS
from cadm_utils.method.models import DomainAwareResNet, MEAN
from cadm_utils.method.pretraining import masked_pretraining_loss, pretraining_loss
from cadm_utils.experiment.products import expert, new_model
from cadm_utils.experiment.evaluation import evaluation_config, run_cell


@pytest.fixture(scope="module")
def task():
    return leave_one_domain_out(load_dataset("embedded"), "S")


def small_model(task, seed=0):
    torch.manual_seed(seed)
    return DomainAwareResNet(task.n_classes, task.n_domains, width=8, resolution=32,
                             stem="strided")


# --------------------------------------------------------------- item 3: rescaled survivors
def test_rescaled_mask_keeps_the_channel_sum():
    scores = torch.rand(6, 24, generator=torch.Generator().manual_seed(0))
    mask = rescale_mask(channel_mask(scores, 0.33, torch.Generator().manual_seed(1)))
    kept = 24 - int(0.33 * 24)
    assert torch.allclose(mask.sum(1), torch.full((6,), 24.0))
    assert torch.allclose(mask[mask > 0], torch.full_like(mask[mask > 0], 24 / kept))


def test_rescaled_masked_map_matches_unmasked_in_expectation():
    generator = torch.Generator().manual_seed(0)
    features = torch.rand(1, 16, 4, 4, generator=generator) + 0.5
    head = torch.ones(2, 16)  # equal weights: scores ∝ pooled features
    domains = torch.zeros(1, dtype=torch.long)
    draws = [(features * sensitive_channel_mask(features, head, domains, 0.25, generator,
                                                rescale=True)).sum() for _ in range(4000)]
    plain = [(features * sensitive_channel_mask(features, head, domains, 0.25, generator)).sum()
             for _ in range(200)]
    total = features.sum()
    assert abs(torch.stack(draws).mean() / total - 1) < 0.05
    assert torch.stack(plain).mean() < 0.85 * total  # without rescaling the mean shrinks


# --------------------------------------------------------------- item 2: DomainDrop's KL
def test_temperature_kl_matches_domaindrop_formula():
    a, b = torch.randn(5, 7), torch.randn(5, 7)
    t = 5.0
    expected = 0.5 * (F.kl_div(F.log_softmax(a / t, 1), F.softmax(b / t, 1), reduction="none").mean()
                      + F.kl_div(F.log_softmax(b / t, 1), F.softmax(a / t, 1),
                                 reduction="none").mean())
    assert torch.allclose(temperature_kl(a, b, t), expected, atol=1e-7)
    assert temperature_kl(a, a, t).abs() < 1e-7


# --------------------------------------------------------------- item 1: separate phases
@pytest.mark.parametrize("class_steps", ["all", "per_class"])
@pytest.mark.parametrize("phases, calib, per_step", [("separate", 1, 2), ("separate", 2, 3),
                                                     ("summed", 1, 1)])
def test_optimizer_steps_per_phase(task, monkeypatch, phases, calib, per_step, class_steps):
    calls = []
    original = torch.optim.Adam.step

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", counting)
    config = DistillConfig(ipc=1, steps=3, real_per_class=4, phases=phases, calib_steps=calib,
                           interpolate=False, class_steps=class_steps)
    _, history = distill(small_model(task), task, METHODS["cadm"], config, MaskingConfig(), 0,
                         torch.device("cpu"), progress=False)
    groups = task.n_classes if class_steps == "per_class" else 1  # NCFM: a step per class
    assert len(calls) == 3 * per_step * groups and len(history) == 3


@dataclass(frozen=True)
class Recording(CADM):
    """CADM that notes the classes and the mask draw of every term it computes."""
    calls: list = field(default_factory=list, compare=False, hash=False)

    def matching_loss(self, model, masking, draw, n_classes, real_x, real_y, real_d, syn_x,
                      syn_y, generator, batch=None):
        self.calls.append(("match", sorted(set(real_y.tolist())), sorted(set(syn_y.tolist())),
                           draw))
        return super().matching_loss(model, masking, draw, n_classes, real_x, real_y, real_d,
                                     syn_x, syn_y, generator, batch)

    def calibration_losses(self, model, masking, draw, syn_x, syn_y, syn_d, generator):
        self.calls.append(("calib", None, sorted(set(syn_y.tolist())), draw))
        return super().calibration_losses(model, masking, draw, syn_x, syn_y, syn_d, generator)


@pytest.mark.parametrize("class_steps", ["all", "per_class"])
def test_ncfm_class_steps_match_then_calibrate_one_class_at_a_time(task, class_steps):
    """NCFM condenser/compute_loss.py: per step, a matching step for each class in turn,
    then a calibration step for each class; every CADM step draws its own block."""
    method = Recording("cadm")
    config = DistillConfig(ipc=1, steps=2, real_per_class=4, interpolate=False,
                           class_steps=class_steps)
    distill(small_model(task), task, method, config, MaskingConfig(), 0, torch.device("cpu"),
            progress=False)
    classes = list(range(task.n_classes))
    if class_steps == "all":
        expected = [("match", classes, classes), ("calib", None, classes)] * 2
    else:
        one_step = [("match", [c], [c]) for c in classes] + \
            [("calib", None, [c]) for c in classes]
        expected = one_step * 2
    assert [call[:3] for call in method.calls] == expected
    draws = [call[3] for call in method.calls]
    if class_steps == "all":  # one draw shared by the step's matching and calibration
        assert draws[0] is draws[1] and draws[2] is draws[3] and draws[0] is not draws[2]
    else:
        assert len({id(d) for d in draws}) == len(draws)


@pytest.mark.parametrize("name", ["mmd", "mmd_irm", "mmd_fact", "mmd_dam", "cadm"])
def test_every_method_distils_one_class_at_a_time(task, name):
    config = DistillConfig(ipc=1, steps=1, real_per_class=4, interpolate=False,
                           class_steps="per_class")
    _, history = distill(small_model(task), task, METHODS[name], config, MaskingConfig(), 0,
                         torch.device("cpu"), progress=False)
    assert len(history) == 1 and all(torch.isfinite(torch.tensor(v)) for v in history[0].values())
    assert history[0]["match"] > 0


# --------------------------------------------------------------- item 4: interpolation, pool
def test_interpolation_ends_are_initial_and_trained(task):
    initial, trained, out = small_model(task, 1), small_model(task, 2), small_model(task, 3)
    interpolate_into(out, initial, trained, 0.0)
    assert all(torch.equal(a, b) for a, b in zip(out.state_dict().values(),
                                                 trained.state_dict().values()))
    interpolate_into(out, initial, trained, 1.0)
    for name, value in out.state_dict().items():
        if value.is_floating_point():
            assert torch.allclose(value, initial.state_dict()[name])
    interpolate_into(out, initial, trained, 0.25)
    w = out.stem[0].weight
    assert torch.allclose(w, 0.25 * initial.stem[0].weight + 0.75 * trained.stem[0].weight)


@pytest.mark.parametrize("interpolation", ["parameters", "all"])
def test_pool_draws_every_expert_and_calibrates_on_the_trained_one(task, interpolation):
    experts = [(small_model(task, 10 + k), small_model(task, 20 + k)) for k in range(3)]
    pool = ExpertPool(experts, torch.device("cpu"), interpolate=True,
                      interpolation=interpolation)
    generator = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(30):
        match, calib = pool.draw(generator)
        k = [m is calib for m in pool.trained].index(True)
        seen.add(k)
        assert match is pool.work and match is not calib
    assert seen == {0, 1, 2}
    with pytest.raises(Exception, match="initial weights"):
        ExpertPool([(small_model(task), None)], torch.device("cpu"), interpolate=True,
                   interpolation=interpolation)


# --------------------------------------------------------------- item 5: normalised DSA
def test_ncfm_augmentation_fills_with_the_mean_colour():
    grey = torch.tensor(MEAN).view(1, 3, 1, 1).expand(2, 3, 16, 16).clone()
    shift = DsaParams("crop", {k: torch.tensor([1.0]) for k in "abcd"})  # largest shift
    cut = DsaParams("cutout", {k: torch.tensor([0.5]) for k in "abcd"})
    normalised = augment_for_distillation(grey, "ncfm", [shift, cut])
    assert torch.allclose(normalised, grey, atol=1e-5)  # padding = the mean colour
    pixels = augment_for_distillation(grey, "dsa", [cut])
    assert (pixels == 0).any()  # on [0, 1] pixels the hole is black


def test_ncfm_brightness_scales_with_the_channel_std():
    x = torch.full((1, 3, 4, 4), 0.5)
    bright = DsaParams("color", {"a": torch.tensor([1.0]), "b": torch.tensor([0.5]),
                                 "c": torch.tensor([0.5]), "d": torch.tensor([0.0])})
    moved = augment_for_distillation(x, "ncfm", [bright]) - x
    raw = augment_for_distillation(x, "dsa", [bright]) - x
    assert moved.abs().max() < 0.5 * raw.abs().max()


# --------------------------------------------------------------- item 7: masked pretraining
def test_masked_pretraining_without_masks_is_eq10(task):
    model = small_model(task).train()
    x = task.train.images[:16].float() / 255
    y, d = task.train.labels[:16], task.train.domains[:16]
    eq10 = pretraining_loss(model, x, y, d)
    off = MaskingConfig(p_mask=0.0, p_active=1.0)
    for kl in (0.0, 1.5):  # identical copies: the KL is zero, the doubled batch changes nothing
        loss = masked_pretraining_loss(model, x, y, d, off, kl, torch.Generator().manual_seed(0))
        assert torch.allclose(loss, eq10, atol=1e-5)
    on = MaskingConfig(p_mask=0.5, p_active=1.0)
    masked = masked_pretraining_loss(model, x, y, d, on, 1.5, torch.Generator().manual_seed(0))
    assert not torch.allclose(masked, eq10, atol=1e-4)


def test_masked_expert_training_changes_the_expert(task):
    from cadm_utils.method.train import TrainConfig, train_classifier

    config = TrainConfig(steps=3, batch_size=16, lr=0.01)
    images, labels, domains = task.train.images[:64], task.train.labels[:64], task.train.domains[:64]
    from cadm_utils.method.pretraining import PretrainConfig

    cadm, masking = METHODS["cadm"], MaskingConfig(p_active=1.0)
    plain = train_classifier(small_model(task), images, labels, config, 0, torch.device("cpu"),
                             domains=domains, progress=False,
                             loss=cadm.pretraining_objective(PretrainConfig(masked=False), masking))
    masked = train_classifier(small_model(task), images, labels, config, 0, torch.device("cpu"),
                              domains=domains, progress=False,
                              loss=cadm.pretraining_objective(
                                  PretrainConfig(masked=True, mask_kl_weight=1.5), masking))
    assert not torch.equal(plain.classifier.weight, masked.classifier.weight)


# --------------------------------------------------------------- item 6: evaluation seeds
def test_evaluation_networks_do_not_start_from_the_experts_weights(tmp_path, monkeypatch):
    from cadm_utils.experiment import evaluation
    from cadm_utils.experiment.pipeline import open_run

    runner, cells = open_run("ci", methods="full", stages="table1",
                             results_dir=tmp_path / "r", run_dir=tmp_path / "w", progress=False)
    started = []

    def untrained(model, *args, **kwargs):  # keep the fresh network as it was built
        started.append({k: v.clone() for k, v in model.state_dict().items()})
        return model

    monkeypatch.setattr(evaluation, "train_classifier", untrained)
    run_cell(runner, cells[0], [0, 1])
    task = runner.task("embedded", "P")
    for seed, state in enumerate(started):
        expert_init = new_model(runner, task, runner.profile.seed + seed).state_dict()
        assert not torch.equal(state["stem.0.weight"], expert_init["stem.0.weight"])
    assert not torch.equal(started[0]["stem.0.weight"], started[1]["stem.0.weight"])


# ---------------------------------------------------- NCFM's evaluation protocol (evaluate.protocol)
def test_mixed_cross_entropy_weights_the_two_labels_by_the_kept_share():
    from cadm_utils.method.train import mixed_cross_entropy

    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])
    labels, partner = torch.tensor([0, 1]), torch.tensor([2, 0])
    log_p = logits - logits.exp().sum(1, keepdim=True).log()
    expected = -(0.7 * log_p[[0, 1], [0, 1]] + 0.3 * log_p[[0, 1], [2, 0]]).mean()
    torch.testing.assert_close(mixed_cross_entropy(logits, labels, partner, 0.7), expected)
    torch.testing.assert_close(mixed_cross_entropy(logits, labels, partner, 1.0),
                               F.cross_entropy(logits, labels))


def test_ncfm_protocol_is_adamw_halving_the_rate_after_each_fifth():
    from cadm_utils.method.train import TrainConfig, optimiser

    weight = torch.nn.Parameter(torch.ones(3))
    optimizer, schedule, epochs = optimiser([weight], TrainConfig(epochs=10, lr=0.001,
                                                                  protocol="ncfm"), 50)
    assert isinstance(optimizer, torch.optim.AdamW) and epochs == 10
    assert optimizer.param_groups[0]["weight_decay"] == 0.01
    rates = []
    for _ in range(epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates == pytest.approx([0.001] * 2 + [0.0005] * 2 + [0.00025] * 2
                                  + [0.000125] * 2 + [0.0000625] * 2)
    sgd, _, _ = optimiser([weight], TrainConfig(epochs=10, lr=0.01), 50)
    assert isinstance(sgd, torch.optim.SGD)  # DM's protocol, the default of TrainConfig


def test_evaluation_protocol_enters_the_records_key_only_when_not_dm(tmp_path):
    from cadm_utils.experiment.pipeline import open_run

    runner, cells = open_run("ci", stages="table1", results_dir=tmp_path / "r",
                             run_dir=tmp_path / "w", progress=False)
    assert runner.sections.evaluate.protocol == "dm"  # the default
    cell = next(c for c in cells if c.method.name == "cadm" and c.ipc == 1)
    ncfm = runner.variant((("evaluate.lr", 0.01), ("evaluate.protocol", "ncfm")))
    assert ncfm.store.config_hash("embedded", 1) != runner.store.config_hash("embedded", 1)
    assert evaluation_config(ncfm).protocol == "ncfm"
    # a row that changes only the evaluation shares its base's synthetic set
    from cadm_utils.experiment.cells import variant_method

    row = variant_method(cell.method, "ncfm_eval", {"evaluate.protocol": "ncfm"})
    assert row.name == "cadm{ncfm_eval}" and row.family == "cadm"
    assert ncfm.store.synthetic_path(replace(cell, method=row)) == runner.store.synthetic_path(cell)
    distilled_otherwise = runner.variant((("distill.lr", 0.5),))
    assert distilled_otherwise.store.synthetic_path(replace(cell, method=row)) \
        != runner.store.synthetic_path(cell)


def _profile_with_variants(tmp_path, variants):
    import yaml

    from cadm_utils.profiles import REPO_ROOT

    raw = yaml.safe_load((REPO_ROOT / "profiles" / "ci.yaml").read_text())
    raw["stages"] = {"replicates": {"datasets": ["embedded"], "methods": ["random", "mmd"],
                                    "ipcs": [1], "variants": variants}}
    path = tmp_path / "replicates.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return path


@pytest.mark.parametrize("row, message", [({"seed": -1}, "seed must be at least 0"),
                                          ({"seed": 1.5}, "seed must be an integer"),
                                          ({"workers": 2}, "unknown setting 'workers'"),
                                          ({"pretrain.protocol": "ncfm"}, "pretrain.protocol")])
def test_a_variant_row_overrides_only_checked_settings(tmp_path, row, message):
    from cadm_utils.errors import ConfigError
    from cadm_utils.profiles import load_profile

    with pytest.raises(ConfigError, match=message):
        load_profile(_profile_with_variants(tmp_path, {"bad": row}))


def test_a_seed_row_reseeds_the_experts_and_the_sets_not_the_evaluation(tmp_path):
    from cadm_utils.experiment.pipeline import open_run

    path = _profile_with_variants(tmp_path, {"reference": {}, "seed1": {"seed": 1}})
    runner, cells = open_run(path, results_dir=tmp_path / "r", run_dir=tmp_path / "w",
                             progress=False)
    by_name = {c.method.name: c for c in cells}
    assert set(by_name) == {"random", "mmd", "random{seed1}", "mmd{seed1}"}
    seeded = runner.variant(by_name["mmd{seed1}"].overrides)
    assert seeded.profile.seed == 1 and runner.profile.seed == 0
    method, task = by_name["mmd"].method, "ACS→P"
    assert seeded.store.expert_path("embedded", task, method) != \
        runner.store.expert_path("embedded", task, method)
    # pool member 1 of seed 0 is member 0 of seed 1: one file, trained once
    assert seeded.store.expert_path("embedded", task, method) == \
        runner.store.expert_path("embedded", task, method, index=1)
    shared = runner.store.expert_path("embedded", task, method, index=1)
    legacy = shared.with_name(shared.name.replace("-plain-", "-plain-1-"))
    legacy.parent.mkdir(parents=True)
    legacy.touch()  # a file named before the suffix was dropped is still found
    assert runner.store.expert_path("embedded", task, method, index=1) == legacy
    for name in ("random", "mmd"):
        assert seeded.store.synthetic_path(by_name[f"{name}{{seed1}}"]) \
            != runner.store.synthetic_path(by_name[name])
    assert seeded.store.config_hash("embedded", 1) != runner.store.config_hash("embedded", 1)
    assert seeded.store.evaluation_values() == runner.store.evaluation_values()


def test_keep_best_returns_the_best_scoring_epoch_the_later_on_a_tie():
    import copy

    from cadm_utils.method.train import TrainConfig, train_classifier

    torch.manual_seed(0)
    images, labels = torch.rand(16, 3, 8, 8), torch.arange(16) % 2
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 2))
    scores, snapshots = iter([1.0, 3.0, 3.0, 2.0]), []

    def score(trained):
        assert not trained.training  # scored in eval mode
        snapshots.append(copy.deepcopy(trained.state_dict()))
        return next(scores)

    kept = train_classifier(model, images, labels, TrainConfig(epochs=4, batch_size=8, lr=0.1,
                                                               augment="none"),
                            seed=0, device=torch.device("cpu"), progress=False, keep_best=score)
    assert len(snapshots) == 4
    assert not torch.equal(snapshots[2]["1.weight"], snapshots[3]["1.weight"])
    assert all(torch.equal(kept.state_dict()[k], snapshots[2][k]) for k in snapshots[2])


def test_a_best_val_expert_keeps_its_curve_and_its_best_epoch(tmp_path):
    from cadm_utils.experiment.runner import Runner
    from cadm_utils.method.methods import get_method
    from cadm_utils.profiles import load_profile

    last = Runner(load_profile("ci"), results_dir=tmp_path / "r", run_dir=tmp_path / "w",
                  progress=False)
    runner = last.variant((("pretrain.keep", "best_val"),))
    task = runner.task("embedded", "P")
    _, info = expert(runner, "embedded", task, get_method("mmd"))
    curve = info["source_val_by_epoch"]
    assert len(curve) == runner.sections.pretrain.epochs
    assert info["source_val_acc"] == pytest.approx(max(curve))
    assert last.store.expert_path("embedded", task.name, get_method("mmd")) \
        != runner.store.expert_path("embedded", task.name, get_method("mmd"))


def test_domaindrop_protocol_is_nesterov_sgd_decaying_once_after_four_fifths():
    from cadm_utils.method.train import TrainConfig, optimiser

    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer, schedule, epochs = optimiser([weight], TrainConfig(epochs=10, lr=0.1,
                                                                  protocol="domaindrop"), 50)
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.param_groups[0]["nesterov"]
    rates = []
    for _ in range(epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates == pytest.approx([0.1] * 8 + [0.01] * 2)  # StepLR(int(0.8 · 10)) in DomainDrop


def test_domaindrop_protocol_steps_like_the_nesterov_formula():
    from cadm_utils.method.train import TrainConfig, optimiser

    lr, mu, decay = 0.1, 0.9, 5e-4
    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer, _, _ = optimiser([weight], TrainConfig(epochs=5, lr=lr, protocol="domaindrop"),
                                10)
    p, buf = [1.0, -2.0], [0.0, 0.0]
    for step in range(3):
        optimizer.zero_grad()
        (weight ** 3).sum().backward()  # gradient 3 p²
        optimizer.step()
        for i in range(2):
            g = 3 * p[i] ** 2 + decay * p[i]
            buf[i] = g if step == 0 else mu * buf[i] + g
            p[i] -= lr * (g + mu * buf[i])
        assert weight.detach().tolist() == pytest.approx(p, rel=1e-5)


def test_pretraining_protocol_changes_the_experts_only_when_not_dm(tmp_path):
    from cadm_utils.experiment.runner import Runner
    from cadm_utils.method.methods import get_method
    from cadm_utils.profiles import load_profile

    base = Runner(load_profile("ci"), results_dir=tmp_path / "r", run_dir=tmp_path / "w",
                  progress=False)
    assert base.sections.pretrain.protocol == "dm"
    assert "protocol" not in base.store.expert_settings("embedded", get_method("cadm"))
    domaindrop = base.variant((("pretrain.protocol", "domaindrop"),))
    for name in ("mmd", "cadm"):
        assert domaindrop.store.expert_path("embedded", "ACS→P", get_method(name)) \
            != base.store.expert_path("embedded", "ACS→P", get_method(name))
    assert domaindrop.store.config_hash("embedded", 1) != base.store.config_hash("embedded", 1)


def test_a_domaindrop_expert_trains_with_nesterov(tmp_path, monkeypatch):
    import cadm_utils.method.train as train
    from cadm_utils.experiment.runner import Runner
    from cadm_utils.method.methods import get_method
    from cadm_utils.profiles import load_profile

    made = []
    original = train.optimiser

    def recording(parameters, config, n_images):
        made.append(config.protocol)
        return original(parameters, config, n_images)

    monkeypatch.setattr(train, "optimiser", recording)
    runner = Runner(load_profile("ci"), results_dir=tmp_path / "r", run_dir=tmp_path / "w",
                    progress=False).variant((("pretrain.protocol", "domaindrop"),))
    expert(runner, "embedded", runner.task("embedded", "P"), get_method("cadm"))
    assert made == ["domaindrop"]
