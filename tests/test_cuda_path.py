"""The GPU path (bf16 autocast, channels_last) forced on the CPU through pretraining,
distillation of every method and evaluation, so that a dtype or memory-format error shows
here and not in a rare GPU window (issue 12)."""
import pytest
import torch
import yaml

from cadm_utils.experiment.pipeline import evaluate_cells, open_run
from cadm_utils.profiles import load_profile


@pytest.mark.slow
def test_every_method_runs_with_bf16_autocast_and_channels_last(tmp_path, monkeypatch):
    profile = load_profile("ci")
    profile.update(name="ci_cuda_path", precision="float32", cuda_path=True)
    profile["pretrain"]["epochs"] = 1
    # the experts train with the paper profile's optimiser, as they will on the GPU
    profile["pretrain"]["protocol"] = load_profile("paper")["pretrain"]["protocol"]
    profile["distill"].update(steps=2, checkpoint_every=1)
    profile["evaluate"].update(steps=2, seeds=1)
    path = tmp_path / "ci_cuda_path.yaml"
    path.write_text(yaml.safe_dump(profile, allow_unicode=True))
    seen = {"bf16": 0, "channels_last": 0}
    conv = torch.nn.Conv2d.forward

    def watching(self, x):
        seen["bf16"] += torch.is_autocast_enabled("cpu")
        seen["channels_last"] += self.weight.is_contiguous(memory_format=torch.channels_last)
        return conv(self, x)

    monkeypatch.setattr(torch.nn.Conv2d, "forward", watching)
    runner, cells = open_run(path, stages="table1,table3", results_dir=tmp_path / "r",
                             run_dir=tmp_path / "w", progress=False)
    records = evaluate_cells(runner, cells)
    methods = {r["method"] for r in records}
    assert methods == {"random", "mmd", "mmd_irm", "mmd_fact", "mmd_dam", "cadm", "full"}
    assert {r["net"] for r in records} == {"resnet18", "convnet", "alexnet", "vgg11", "resnet50"}
    assert all(0.0 <= r["acc"] <= 100.0 for r in records)
    assert seen["bf16"] > 0 and seen["channels_last"] > 0
