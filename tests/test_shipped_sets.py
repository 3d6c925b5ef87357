"""The distilled sets a clone ships (sets/<profile>/, written by `export-sets --form stored`):
at most 24 MiB in all (pacs-dm's 24 sets in float32: float16 does not reproduce a record,
docs/findings/evaluation.md), each file what its manifest says, loadable with
`torch.load(weights_only=True)`, its accuracies those of the committed records, and
`evaluate-set` reproducing one record on the same seed and threads."""
import json

import pytest
import torch

from cadm_utils.experiment.records import load_records
from cadm_utils.experiment.runner import Runner
from cadm_utils.experiment.sets import evaluate_set, read_set_file
from cadm_utils.profiles import load_profile
from cadm_utils.runtime import file_sha256
from .conftest import REPO_ROOT

SETS = REPO_ROOT / "sets"
MAX_BYTES = 24 * 2 ** 20
MANIFESTS = sorted(SETS.glob("*/manifest.json"))


def shipped_entries():
    for manifest_path in MANIFESTS:
        manifest = json.loads(manifest_path.read_text())
        for entry in manifest["sets"]:
            yield manifest["profile"], manifest_path.parent / entry["file"], entry


def own_records(profile: str, entry: dict) -> list[dict]:
    records = load_records(REPO_ROOT / "results" / profile / "records.jsonl")
    return sorted((r for r in records if r.get("kind") == "eval"
                   and r.get("set_id") == entry["set_id"] and r["method"] == entry["method"]),
                  key=lambda r: r["seed"])


def test_a_clone_ships_sets_within_24_mib():
    files = [p for p in SETS.rglob("*") if p.is_file()]
    assert MANIFESTS and any(p.suffix == ".pt" for p in files)
    assert sum(p.stat().st_size for p in files) <= MAX_BYTES
    listed = {path for _, path, _ in shipped_entries()}
    assert {p for p in files if p.suffix == ".pt"} == listed  # no file outside a manifest


@pytest.mark.parametrize("profile, path, entry", list(shipped_entries()),
                         ids=[f"{p}:{e['file']}" for p, _, e in shipped_entries()])
def test_a_shipped_set_loads_and_carries_its_committed_records(profile, path, entry):
    assert file_sha256(path) == entry["sha256"]
    content = torch.load(path, weights_only=True)
    info = content["info"]
    assert info["set_id"] == entry["set_id"] and info["profile"] == profile
    records = own_records(profile, entry)
    assert records, f"no committed record of {entry['file']}"
    assert [(r["seed"], r["acc"]) for r in records] == \
        [(r["seed"], r["acc"]) for r in info["records"]] == \
        [(r["seed"], r["acc"]) for r in entry["records"]]
    images, labels = read_set_file(path, len(info["class_names"]),
                                   load_profile(profile).datasets[entry["dataset"]].resolution)
    assert len(labels) == entry["ipc"] * len(info["class_names"]) * \
        content["stored"]["factor"] ** 2


@pytest.mark.heavy
def test_evaluate_set_reproduces_a_shipped_records_accuracy(pacs_root, tmp_path):
    profile, path, entry = next(e for e in shipped_entries() if e[2]["dataset"] == "pacs")
    record = own_records(profile, entry)[0]
    # records made before they named threads and kernels (pacs-dm's first) come from 2
    # workers on 2 cores of an AVX-512 machine: one thread each
    kernels = record.get("cpu_kernels", "AVX512")
    if kernels != torch.backends.cpu.get_cpu_capability():
        pytest.skip(f"the record was trained with {kernels} kernels, this CPU has "
                    f"{torch.backends.cpu.get_cpu_capability()}")
    runner = Runner(load_profile(profile), data_root=pacs_root, results_dir=tmp_path,
                    progress=False)
    target = entry["split"].split("→")[1]
    [again] = evaluate_set(runner, path, entry["dataset"], target, [record["seed"]],
                           threads=record.get("threads") or 1)
    assert again["acc"] == record["acc"]
    assert again["source_val_acc"] == record["source_val_acc"]
