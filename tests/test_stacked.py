"""Evaluation seeds trained together (evaluate.stack_seeds): the stacked networks must end
where the same networks trained one after the other end, so records of either way count."""
import pytest
import torch

from cadm_utils.method.models import build_eval_net
from cadm_utils.method.train import TrainConfig, train_classifier, train_classifiers_stacked
from cadm_utils.experiment.records import current_records

CPU = torch.device("cpu")
SEEDS = [5, 6, 7]


@pytest.fixture
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def tiny_set(n_classes=4, per_class=10, size=32):
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n_classes * per_class, 3, size, size), dtype=torch.uint8,
                           generator=generator)
    return images, torch.arange(n_classes).repeat(per_class)


def fresh(net: str, seed: int):
    torch.manual_seed(seed)
    return build_eval_net(net, 4, 3, 32, 8, "auto")


@pytest.mark.parametrize("net,protocol", [("resnet18", "dm"), ("convnet", "dm"),
                                          ("alexnet", "dm"), ("resnet18", "ncfm")])
def test_stacked_networks_end_where_sequential_ones_end(net, protocol, float64):
    images, labels = tiny_set()
    config = TrainConfig(steps=6, batch_size=16, lr=0.05 if protocol == "dm" else 0.001,
                         augment="dsa", protocol=protocol)
    one_by_one = [train_classifier(fresh(net, s), images, labels, config, s, CPU,
                                   progress=False) for s in SEEDS]
    stacked = train_classifiers_stacked([fresh(net, s) for s in SEEDS], images, labels, config,
                                        SEEDS, CPU, progress=False)
    untrained = fresh(net, SEEDS[0]).state_dict()
    for alone, together in zip(one_by_one, stacked):
        for name, value in alone.state_dict().items():
            torch.testing.assert_close(together.state_dict()[name], value, rtol=1e-9, atol=1e-11)
    moved = [name for name, value in stacked[0].state_dict().items()
             if value.is_floating_point() and not torch.equal(value, untrained[name])]
    assert moved, "training changed nothing"
    assert not torch.equal(stacked[0].state_dict()[moved[0]], stacked[1].state_dict()[moved[0]])
    assert not stacked[0].training


def test_stacked_training_runs_the_cuda_path_on_the_cpu():
    from cadm_utils.runtime import use_cuda_path

    images, labels = tiny_set()
    use_cuda_path(True)
    try:
        nets = train_classifiers_stacked([fresh("resnet18", s) for s in SEEDS[:2]], images,
                                         labels, TrainConfig(steps=2, batch_size=16), SEEDS[:2],
                                         CPU, progress=False)
    finally:
        use_cuda_path(False)
    assert nets[0].stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert all(torch.isfinite(p).all() for p in nets[1].parameters())


def test_a_cell_stacked_gives_the_records_of_a_cell_run_seed_by_seed(tmp_path):
    from cadm_utils.experiment.pipeline import evaluate_cells, open_run
    from cadm_utils.experiment.runner import Runner
    from cadm_utils.runtime import set_precision

    accuracies = {}
    for stacked in (False, True):
        runner, cells = open_run("ci", methods="random", ipcs="10", targets="P",
                                 stages="table1", results_dir=tmp_path / f"r{stacked}",
                                 run_dir=tmp_path / "w", progress=False)
        runner = Runner(runner.profile.with_overrides({"evaluate.stack_seeds": stacked}),
                        results_dir=tmp_path / f"r{stacked}", run_dir=tmp_path / "w",
                        progress=False)
        set_precision("float64")  # the same numbers up to rounding, not up to chaos
        records = evaluate_cells(runner, cells)
        accuracies[stacked] = sorted((r["seed"], r["acc"], r["source_val_acc"]) for r in records)
        assert current_records(runner) and len(records) == runner.sections.evaluate.seeds
    assert [seed for seed, *_ in accuracies[True]] == [0, 1]
    for (_, acc, val), (_, acc_stacked, val_stacked) in zip(accuracies[False], accuracies[True]):
        assert acc == pytest.approx(acc_stacked, abs=1e-6)
        assert val == pytest.approx(val_stacked, abs=1e-6)


def test_stacking_is_not_part_of_the_records_key():
    from cadm_utils.experiment.runner import Runner
    from cadm_utils.profiles import load_profile

    profile = load_profile("ci")
    plain = Runner(profile, progress=False, device="cpu").store.config_hash("embedded", 10)
    stacked = profile.with_overrides({"evaluate.stack_seeds": True})
    assert Runner(stacked, progress=False, device="cpu").store.config_hash("embedded", 10) == plain
