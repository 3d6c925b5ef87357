"""Training outcomes of the ci profile that hold on every processor, and the measurement of
how far they move between kernel settings, thread counts and seeds.

Training is chaotic: a rounding difference of 1e-16 grows into another accuracy after a few
hundred steps, so the notebooks do not compare trained numbers digit for digit. These
invariants are checked instead (tests/test_trained_outcomes.py), each with a margin that
`python -m tests.trained_outcomes` measured across ATen's default and AVX2 kernels, one and
two threads and three seeds; the record is tests/trained_outcomes.json."""
from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from cadm_utils.experiment.products import expert, synthetic_set

ROOT = Path(__file__).resolve().parents[1]
RECORD = Path(__file__).with_suffix(".json")
KINDS = {"plain": "mmd", "domain": "cadm"}  # expert kind: a method that trains it


def ci_runner(seed: int, folder: Path):
    from cadm_utils.experiment.runner import Runner
    from cadm_utils.profiles import load_profile

    profile = load_profile("ci").with_overrides({"seed": seed})
    return Runner(profile, results_dir=folder / "results", run_dir=folder / "runs",
                  progress=False)


def outcomes(seed: int, folder: Path) -> dict[str, float]:
    """For each expert kind, on the ci profile's ACS→P split: the trained expert's
    source-val accuracy, and for its method the class-mean distance (Eq. 2) between the
    whole source training set and the synthetic set on that expert, before and after the
    distillation."""
    import torch

    from cadm_utils.experiment.cells import Cell
    from cadm_utils.method.losses import mmd_loss
    from cadm_utils.method.methods import get_method
    from cadm_utils.method.synthetic import decode
    from cadm_utils.runtime import to_float

    runner = ci_runner(seed, folder)
    task, ipc = runner.task("embedded", "P"), 1
    found = {}
    for kind, name in KINDS.items():
        method = get_method(name)
        model, info = expert(runner, "embedded", task, method)
        synthetic, _ = synthetic_set(runner, Cell("check", "embedded", "P", method, ipc), task)
        initial, _ = synthetic_set(runner, Cell("check", "embedded", "P", get_method("random"),
                                               ipc), task)
        with torch.no_grad():
            real = model.embed(to_float(task.train.images, torch.device("cpu")))

            def distance(images):
                factor = runner.sections.distill.factor
                syn = model.embed(decode(images, factor))
                labels = synthetic.labels.repeat_interleave(factor ** 2)
                return float(mmd_loss(real, task.train.labels, syn, labels, task.n_classes))

            found[f"{kind}_source_val"] = info["source_val_acc"]
            found[f"{name}_distance_before"] = distance(initial.images)
            found[f"{name}_distance_after"] = distance(synthetic.images)
    return found


def measure(seeds=(0, 1, 2), capabilities=("default", "avx2"), threads=("1", "2")) -> list[dict]:
    """Each setting in its own process (the kernel choice is fixed when torch loads)."""
    rows = []
    for capability, thread_count, seed in itertools.product(capabilities, threads, seeds):
        env = {**os.environ, "ATEN_CPU_CAPABILITY": capability, "OMP_NUM_THREADS": thread_count}
        code = f"import json; from tests.trained_outcomes import one; print(json.dumps(one({seed})))"
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, text=True,
                              capture_output=True, check=True)
        row = {"capability": capability, "threads": thread_count, "seed": seed,
               **json.loads(done.stdout.splitlines()[-1])}
        print(row, flush=True)
        rows.append(row)
    return rows


def one(seed: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        return outcomes(seed, Path(folder))


if __name__ == "__main__":
    RECORD.write_text(json.dumps(measure(), indent=1) + "\n")
