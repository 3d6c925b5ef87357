"""The diagnostics of CADM's mechanism (method/mechanism.py) on tiny cases computed by
hand: the majority share, the linear fit, and refitted heads that read the domain where
the heads as built do not."""
import re

import torch

from cadm_utils.method.mechanism import (fit_linear, head_diagnostics, majority_share,
                                     percent_correct, refit_heads)
from cadm_utils.method.models import N_BLOCKS, DomainAwareResNet
from cadm_utils.experiment.products import expert, expert_heads


def test_majority_share_is_the_largest_label_count():
    assert majority_share(torch.tensor([0, 0, 0, 1, 2, 2])) == 50.0


def test_the_linear_fit_separates_two_blobs_and_acts_on_raw_features():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=generator) * torch.tensor([1, 1, 100, 1, 1])
    labels = torch.arange(200) % 2
    x[:, 0] += 3.0 * labels  # the label lives in column 0; column 2 is large noise
    weight, bias = fit_linear(x, labels, 2)
    assert percent_correct(x.double() @ weight.t() + bias, labels) > 90
    assert weight.abs().argmax(1).tolist() == [0, 0]


class TwoDomainTask:
    """Images whose domain is their colour (red or blue), classes unrelated to it."""

    def __init__(self, n=64):
        generator = torch.Generator().manual_seed(1)
        domains = torch.arange(n) % 2
        images = torch.randint(0, 60, (n, 3, 16, 16), generator=generator, dtype=torch.uint8)
        images[domains == 0, 0] += 150
        images[domains == 1, 2] += 150
        split = type("Split", (), {})
        self.train, self.val = split(), split()
        for part, rows in ((self.train, slice(0, n // 2)), (self.val, slice(n // 2, n))):
            part.images, part.domains = images[rows], domains[rows]
        self.n_domains = 2


def test_refitted_heads_read_the_domain_that_zeroed_heads_do_not():
    torch.manual_seed(0)
    model = DomainAwareResNet(3, 2, width=4, resolution=16)
    task = TwoDomainTask()
    with torch.no_grad():
        for head in model.domain_heads:
            head.weight.zero_()
            head.bias.copy_(torch.tensor([1.0, 0.0]))  # always domain 0: the majority rate
    before = head_diagnostics(model, task)
    assert [row["head_acc"] for row in before] == [50.0] * N_BLOCKS
    assert [row["majority"] for row in before] == [50.0] * N_BLOCKS
    assert min(row["probe_acc"] for row in before) > 90
    refit_heads(model, task)
    after = head_diagnostics(model, task)
    assert min(row["head_acc"] for row in after) > 90


def test_a_reversal_weight_of_zero_trains_the_heads_only():
    """model.grl_weight 0 is the stop-gradient reading of the paper's "truncate the
    gradients": the domain loss reaches the heads, not the backbone."""
    import torch.nn.functional as F

    from cadm_utils.method.pretraining import pretraining_loss

    torch.manual_seed(0)
    task = TwoDomainTask()
    x = task.train.images.float() / 255
    labels = torch.zeros(len(x), dtype=torch.long)
    for weight, backbone_moves in ((0.0, False), (0.25, True)):
        model = DomainAwareResNet(3, 2, width=4, resolution=16, grl_weight=weight)
        class_only = torch.autograd.grad(
            F.cross_entropy(model(x), labels), model.stem[0].weight)[0]
        both = torch.autograd.grad(pretraining_loss(model, x, labels, task.train.domains),
                                   [model.stem[0].weight, model.domain_heads[0].weight])
        assert torch.allclose(both[0], class_only, atol=1e-7) is not backbone_moves
        assert both[1].abs().sum() > 0


def test_the_refit_setting_refits_cadms_heads_and_leaves_other_experts_alone(tmp_path):
    """pretrain.heads: refit gives CADM's expert heads that score what the linear probe
    scores (they are that fit); MMD's expert, which has no use for heads, keeps its key."""
    from cadm_utils.experiment.pipeline import open_run
    from cadm_utils.method.methods import get_method

    runner, _ = open_run("ci", stages="table1", methods="mmd,cadm", targets="P", ipcs="1",
                         results_dir=tmp_path / "r", run_dir=tmp_path / "w", progress=False)
    refit = runner.variant((("pretrain.heads", "refit"),))
    task = runner.task("embedded", "P")
    mmd, cadm = get_method("mmd"), get_method("cadm")
    assert refit.store.expert_path("embedded", task.name, mmd) == \
        runner.store.expert_path("embedded", task.name, mmd)
    assert refit.store.expert_path("embedded", task.name, cadm) != \
        runner.store.expert_path("embedded", task.name, cadm)
    heads = expert_heads(refit, "embedded", task, cadm)
    assert len(heads) == N_BLOCKS
    # the refitted heads are the probe's fit (cast to float32: a borderline image may flip)
    assert all(abs(h["head_acc"] - h["probe_acc"]) <= 1.0 for h in heads)
    assert expert_heads(refit, "embedded", task, mmd) is None


def test_the_experts_command_prints_each_block_of_cadms_expert(tmp_path, monkeypatch, capsys):
    from cadm_utils.__main__ import main
    from cadm_utils.experiment import pipeline

    run = pipeline.open_run("ci", stages="table1", methods="mmd,cadm", targets="P", ipcs="1",
                            results_dir=tmp_path / "r", run_dir=tmp_path / "w", progress=False)
    runner, cells = run
    for cell in cells:
        if cell.method.distills:
            expert(runner, "embedded", runner.task("embedded", "P"), cell.method)
    monkeypatch.setattr(pipeline, "open_run", lambda *args, **kwargs: run)
    assert main(["experts", "--profile", "ci", "--write"]) == 0
    lines = capsys.readouterr().out.splitlines()
    blocks = [line for line in lines if line.strip().startswith("block")]
    assert len(blocks) == N_BLOCKS and "majority" in blocks[0] and "linear probe" in blocks[0]
    assert lines[-2] == "2 experts on disk" and lines[-1].startswith("written: ")
    table = (runner.figures_dir / "experts.md").read_text().splitlines()
    [row] = [line for line in table if line.startswith("| ACS→P")]  # CADM's only: it has heads
    heads = [b for b in expert_heads(runner, "embedded", runner.task("embedded", "P"),
                                            cells[-1].method)]
    assert f"{heads[0]['head_acc']:.1f} / " in row and f"({heads[0]['majority']:.1f})" in row


def test_rank_groups_take_a_tenth_of_the_channels_and_at_least_one():
    from cadm_utils.method.mechanism import rank_groups

    assert rank_groups(20) == {"top": range(18, 20), "middle": range(9, 11),
                               "bottom": range(0, 2)}
    assert rank_groups(4) == {"top": range(3, 4), "middle": range(2, 3), "bottom": range(0, 1)}


def test_selectivity_of_a_peaked_score_and_of_equal_scores():
    """One channel of score 1 and the rest 0 with M = 1: Eq. 6 masks that channel (top
    tenth) every time; with equal scores each tenth is masked at P_mask."""
    from cadm_utils.method.mechanism import selectivity

    generator = torch.Generator().manual_seed(0)
    peaked = torch.zeros(50, 10)
    peaked[:, 3] = 1.0
    assert selectivity(peaked, 0.1, 4, generator)["top"] == 100.0
    equal = selectivity(torch.ones(400, 10) * 0.5, 0.3, 20, generator)
    for share in equal.values():
        assert abs(share - 30.0) < 2.0


def test_target_damping_is_below_one_where_masks_follow_the_scores():
    """Two domains whose sensitive channels differ: Eq. 6 masks them more often than
    uniform masks, so the class-mean target keeps less of them (ratio < 1); with equal
    scores the two targets agree (ratio ≈ 1)."""
    from cadm_utils.method.mechanism import target_damping

    generator = torch.Generator().manual_seed(0)
    n, channels = 400, 20
    domains = torch.arange(n) % 2
    labels = (torch.arange(n) // 2) % 2
    pooled = torch.ones(n, channels, dtype=torch.float64)
    scores = torch.full((n, channels), 0.05, dtype=torch.float64)
    scores[domains == 0, :2] = 1.0
    scores[domains == 1, 2:4] = 1.0
    damped = target_damping(pooled, scores, domains, labels, 2, 0.33, 20, generator)
    neutral = target_damping(pooled, torch.ones_like(scores), domains, labels, 2, 0.33, 20,
                             generator)
    assert damped < 0.8
    assert abs(neutral - 1.0) < 0.05


def test_mask_diagnostics_run_on_an_expert_with_heads():
    from cadm_utils.method.mechanism import mask_diagnostics

    torch.manual_seed(0)
    model = DomainAwareResNet(3, 2, width=4, resolution=16)
    task = TwoDomainTask()
    task.val.labels = torch.arange(len(task.val.domains)) % 3
    task.n_classes = 3
    rows = mask_diagnostics(model, task, 0.33, draws=2)
    assert [r["block"] for r in rows] == list(range(N_BLOCKS))
    assert [r["masked_channels"] for r in rows] == [1, 2, 5, 10]
    assert all(0 <= r[k] <= 100 for r in rows for k in ("top", "middle", "bottom"))


def test_top_overlap_counts_the_shared_top_channels_row_by_row():
    from cadm_utils.method.mechanism import top_overlap

    scores = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0, -1.0], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]])
    other = torch.tensor([[9.0, 0.0, 8.0, 1.0, 2.0, 3.0], [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])
    # p_mask 0.5: the top 3 of each row; row 1 shares {0, 2} of {0, 1, 2} with {0, 2, 5},
    # row 2 shares nothing ({3, 4, 5} against {0, 1, 2})
    assert abs(top_overlap(scores, other, 0.5) - (2 / 3 + 0) / 2) < 1e-12
    assert top_overlap(scores, scores, 0.5) == 1.0


def test_interpolation_agreement_is_whole_without_interpolation_and_reads_the_head_weight():
    from cadm_utils.method.mechanism import interpolation_agreement

    torch.manual_seed(0)
    trained = DomainAwareResNet(3, 2, width=4, resolution=16)
    initial = DomainAwareResNet(3, 2, width=4, resolution=16)
    task = TwoDomainTask()
    x, domains = task.train.images.float() / 255, task.train.domains
    rows = interpolation_agreement(trained, initial, x, domains, 0.5, weights=(0.0, 1.0))
    assert [r["block"] for r in rows] == list(range(N_BLOCKS))
    assert all(0.0 <= share <= 1.0 for r in rows
               for share in [r["head_weight_only"], *r["interpolated"].values()])
    # l = 0 is the trained expert itself, but in train mode (batch statistics): with the
    # running statistics set to the batch's, it is the same network and agrees wholly
    trained.train()
    with torch.no_grad():
        trained.block_features(x)  # momentum 0.1: move the running statistics ...
    for module in trained.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # ... to the batch's exactly (cumulative average of one)
            module.reset_running_stats()
    with torch.no_grad():
        trained.block_features(x)
    rows = interpolation_agreement(trained, initial, x, domains, 0.5, weights=(0.0,))
    assert all(r["interpolated"][0.0] > 0.99 for r in rows)
    # where every channel's pooled activation is equal, the head weight alone ranks them
    constant = DomainAwareResNet(3, 2, width=4, resolution=16)
    with torch.no_grad():
        for module in constant.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.zero_()
                module.bias.fill_(1.0)
    rows = interpolation_agreement(constant, initial, x, domains, 0.5, weights=())
    assert [r["head_weight_only"] for r in rows] == [1.0] * N_BLOCKS


def test_the_experts_command_shows_the_interpolation_agreement_of_cadms_expert(
        tmp_path, monkeypatch, capsys):
    from cadm_utils.__main__ import main
    from cadm_utils.experiment import pipeline

    run = pipeline.open_run("ci", stages="table1", methods="cadm", targets="P", ipcs="1",
                            results_dir=tmp_path / "r", run_dir=tmp_path / "w", progress=False)
    runner, cells = run
    expert(runner, "embedded", runner.task("embedded", "P"), cells[0].method)
    monkeypatch.setattr(pipeline, "open_run", lambda *args, **kwargs: run)
    assert main(["experts", "--profile", "ci", "--interpolation"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("share of each image"))
    assert lines[start + 1].startswith("ACS→P  seed 0")
    blocks = lines[start + 2:]
    assert len(blocks) == N_BLOCKS
    for line in blocks:
        shares = [float(share) for share in re.findall(r": (\d\.\d\d)\b", line)]
        assert len(shares) == 5 and all(0.0 <= share <= 1.0 for share in shares)
