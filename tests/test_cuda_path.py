"""The GPU path (bf16 autocast, channels_last) forced on the CPU through pretraining,
distillation of every method and evaluation, so that a dtype or memory-format error shows
here and not on GPU time."""
import os
import subprocess
import sys

import pytest
import torch
import yaml

from cadm_utils.experiment.pipeline import evaluate_cells, open_run
from cadm_utils.profiles import load_profile


@pytest.mark.slow
def test_every_method_runs_with_bf16_autocast_and_channels_last(tmp_path, monkeypatch):
    profile = load_profile("ci").values
    profile.update(name="ci_cuda_path", precision="float32", cuda_path=True)
    profile["pretrain"]["epochs"] = 1
    # the experts train with the paper profile's optimiser, as they will on the GPU
    profile["pretrain"]["protocol"] = load_profile("paper").sections.pretrain.protocol
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


SHORTCUT_GRADIENT = """
import torch
from cadm_utils.runtime import use_cuda_path
use_cuda_path(True)
conv = torch.nn.Conv2d(8, 16, 1, stride=2, bias=False).to(memory_format=torch.channels_last)
for _ in range(20):
    x = torch.randn(3, 8, 32, 32).contiguous(memory_format=torch.channels_last)
    conv(x).sum().backward()
print(torch.backends.mkldnn.enabled)
"""


def test_forced_cuda_path_survives_a_strided_shortcut_with_an_odd_batch():
    """oneDNN's channels_last weight gradient of a strided 1x1 convolution crashed the
    process (segfault, 'double free') with 2 threads and batch 3 on an AVX-512 CPU; the
    forced CUDA path turns oneDNN off. In a subprocess, so that a crash fails this test
    only."""
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", SHORTCUT_GRADIENT], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"
