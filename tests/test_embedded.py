import torch

from cadm_utils.data import TRAIN, VAL, leave_one_domain_out, load_dataset
from cadm_utils.data.embedded import CLASSES, DOMAINS


def test_generation_is_deterministic():
    a = load_dataset("embedded", seed=0)
    b = load_dataset("embedded", seed=0)
    c = load_dataset("embedded", seed=1)
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.images, c.images)


def test_interface_matches_real_sets():
    data = load_dataset("embedded")
    assert data.images.dtype == torch.uint8 and data.images.shape[1:] == (3, 32, 32)
    assert len(data.domain_names) >= 4 and len(data.class_names) >= 5
    assert data.domain_names == list(DOMAINS) and data.class_names == list(CLASSES)
    assert set(data.split.unique().tolist()) == {TRAIN, VAL}
    task = leave_one_domain_out(data, "S")
    assert task.name == "ACP→S" and (task.test.domains == 3).all()


def test_domains_differ_in_style_not_class_statistics():
    """Per-domain colour statistics differ clearly (style), e.g. sketch is grey."""
    data = load_dataset("embedded")
    x = data.images.float() / 255
    saturation = (x.amax(1) - x.amin(1)).mean(dim=(1, 2))
    per_domain = [saturation[data.domains == d].mean().item() for d in range(4)]
    sketch = data.domain_names.index("sketch")
    assert per_domain[sketch] < 0.02
    assert min(v for d, v in enumerate(per_domain) if d != sketch) > 0.1


def test_other_resolution():
    data = load_dataset("embedded", resolution=16)
    assert data.images.shape[-1] == 16


def test_domain_gap_command_writes_records(tmp_path):
    from cadm_utils.experiment.gap import measure_domain_gap
    from cadm_utils.method.train import DomainGapConfig

    out = tmp_path / "gap.jsonl"
    records = measure_domain_gap(settings=DomainGapConfig(width=4, epochs=1), out=out,
                                 targets=["S"])
    assert len(records) == 1 and records[0]["split"] == "ACP→S"
    assert 0 <= records[0]["target_acc"] <= 100 and records[0]["chance"] == 20.0
    assert out.read_text().count("\n") == 1
