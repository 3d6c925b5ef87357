"""Each section default has one home, the field of its typed section: changed there, it
reaches the code that uses it (here P_mask, down to the mask CADM draws)."""
from dataclasses import fields

import pytest
import torch

from cadm_utils.errors import ConfigError
from cadm_utils.experiment.products import new_model
from cadm_utils.experiment.runner import Runner
from cadm_utils.method import methods
from cadm_utils.method.masking import MaskDraw, MaskingConfig
from cadm_utils.profiles import load_profile
from cadm_utils.settings import SECTIONS, defaults


def test_a_default_changed_in_its_one_home_reaches_the_mask_draw(tmp_path, monkeypatch):
    home = next(spec for spec in fields(MaskingConfig) if spec.name == "p_mask")
    monkeypatch.setattr(home, "default", 0.5)
    profile = load_profile("ci")  # sets no masking value
    assert profile.sections.masking.p_mask == 0.5
    runner = Runner(profile, results_dir=tmp_path, run_dir=tmp_path, device="cpu",
                    progress=False)
    drawn = []
    original = methods.sensitive_channel_mask

    def spy(features, head_weight, domains, p_mask, *rest, **keywords):
        drawn.append(p_mask)
        return original(features, head_weight, domains, p_mask, *rest, **keywords)

    monkeypatch.setattr(methods, "sensitive_channel_mask", spy)
    task = runner.task("embedded", "P")
    model = new_model(runner, task, 0).eval()
    x, d = task.train.images[:8].float() / 255, task.train.domains[:8]
    mask_input = model.run_blocks(x, 0, 2)
    masked = methods.CADM("cadm").real_embedding(model, runner.sections.masking,
                                                 MaskDraw(1, True), x, d,
                                                 torch.Generator().manual_seed(0))
    assert drawn == [0.5] and masked.shape[0] == 8
    channels = mask_input.shape[1]
    mask = original(mask_input, model.head_weight(1), d, 0.5, torch.Generator().manual_seed(0))
    assert int((mask[0] == 0).sum()) == channels // 2  # ⌊0.5·C⌋ channels masked per image


def test_the_defaults_are_read_from_the_sections():
    every = defaults()
    for name, (section_class, leave_out) in SECTIONS.items():
        for spec in fields(section_class):
            if spec.name not in leave_out:
                assert every[name][spec.name] == spec.default, f"{name}.{spec.name}"


def test_a_section_checks_its_fields_once_for_profile_and_direct_use():
    with pytest.raises(ConfigError, match="masking.p_mask must be below 1"):
        MaskingConfig(p_mask=1.0)
    raw = {"name": "x", "datasets": {"embedded": {"targets": ["P"]}},
           "stages": {"t": {"datasets": ["embedded"], "ipcs": [1]}},
           "evaluate": {"steps": 1}, "masking": {"p_mask": 1.0}}
    from cadm_utils.settings import resolve_profile

    with pytest.raises(ConfigError, match="profile 'x': masking.p_mask must be below 1"):
        resolve_profile(raw)


def test_a_pretrain_section_with_epochs_per_data_set_still_checks_its_other_fields():
    from cadm_utils.method.pretraining import PretrainConfig

    assert PretrainConfig(epochs={"default": 5, "pacs": 8}).epochs["pacs"] == 8
    with pytest.raises(ConfigError, match="pretrain.lr must be at least"):
        PretrainConfig(epochs={"default": 5}, lr=-1.0)
