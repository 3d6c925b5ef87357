"""Does CADM's mechanism work? Its premise (paper, "Asymmetric Distribution Matching") is
that after pretraining the per-block domain heads "can effectively distinguish image
domains", so that Eq. 5 scores single out domain-sensitive channels and Eq. 6 masks mostly
those. Per block of an expert, on the source domains only:

- `head_diagnostics`: the heads' domain accuracy on the validation images, the share of the
  largest domain (what a head that always names it scores), and a linear probe fitted on
  the same frozen pooled features (what a linear head could read); `refit_heads` installs
  that fit as the heads (the `pretrain.heads: refit` setting);
- `mask_diagnostics`: how selective Eq. 6 is (how often channels in the top, middle and
  bottom tenth of each image's Eq. 5 scores are masked; a uniform mask masks each at
  P_mask), and how much the class-mean target of L_adm under Eq. 6 masks damps the
  channels the heads call domain-sensitive, relative to uniform masks of the same P_mask
  (below 1: damped more). Masks act per channel, so pooled features suffice;
- `interpolation_agreement`: whether the channels Eq. 5 ranks highest on the trained expert
  stay the highest on the network that matching actually runs (NCFM's interpolation toward
  the random initialisation, the trained heads kept), and how much of the ranking the head
  weight of the image's domain decides on its own."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from ..runtime import to_float
from .distill import interpolate_parameters
from .losses import class_means
from .masking import activation_scores, channel_mask, masked_count
from .models import N_BLOCKS

PROBE_ITERATIONS = 300  # full-batch L-BFGS iterations of a linear fit
PROBE_WEIGHT_DECAY = 1e-4  # on standardised features
INTERPOLATION_WEIGHTS = (0.25, 0.5, 0.75, 0.95)  # l, the random initialisation's share


@torch.no_grad()
def pooled_block_features(model, images: torch.Tensor, batch_size: int = 500
                          ) -> list[torch.Tensor]:
    """GAP of every block's output in eval mode: one (N, C_l) CPU tensor per block."""
    model.eval()
    device = next(model.parameters()).device
    parts = [[] for _ in range(N_BLOCKS)]
    for start in range(0, len(images), batch_size):
        x = to_float(images[start:start + batch_size], device)
        for block, features in enumerate(model.block_features(x)):
            parts[block].append(model.pool(features).float().cpu())
    return [torch.cat(p) for p in parts]


def percent_correct(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return 100.0 * float((logits.argmax(1) == labels).double().mean())


def majority_share(labels: torch.Tensor) -> float:
    """% of the most frequent label."""
    return 100.0 * float(torch.bincount(labels).max()) / max(len(labels), 1)


def fit_linear(features: torch.Tensor, labels: torch.Tensor, n_out: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression on standardised features (full batch, L-BFGS from
    zeros, float64: deterministic), returned as (weight, bias) acting on the raw features."""
    x = features.double()
    mean, scale = x.mean(0), x.std(0).clamp_min(1e-6)
    z = (x - mean) / scale
    weight = torch.zeros(n_out, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_out, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=PROBE_ITERATIONS,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(z @ weight.t() + bias, labels) + \
            PROBE_WEIGHT_DECAY * (weight ** 2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    raw_weight = weight.detach() / scale
    return raw_weight, bias.detach() - raw_weight @ mean


def head_diagnostics(model, task, val: list[torch.Tensor] | None = None) -> list[dict]:
    """Per block, in %: the domain head's accuracy on the source validation images, the
    majority domain's share there, and a linear probe fitted on the frozen pooled training
    features, scored on the validation images (`val`: their pooled block features, when
    already computed)."""
    train = pooled_block_features(model, task.train.images)
    val = val or pooled_block_features(model, task.val.images)
    rows = []
    for block in range(N_BLOCKS):
        head = model.domain_heads[block]
        with torch.no_grad():
            head_logits = head(val[block].to(head.weight)).cpu()
        weight, bias = fit_linear(train[block], task.train.domains, head.out_features)
        rows.append({"block": block, "head_acc": percent_correct(head_logits, task.val.domains),
                     "majority": majority_share(task.val.domains),
                     "probe_acc": percent_correct(val[block].double() @ weight.t() + bias,
                                                  task.val.domains)})
    return rows


def refit_heads(model, task) -> None:
    """Replace every domain head by a linear fit on the trained, frozen backbone's pooled
    training features (no gradient reversal; the backbone is untouched)."""
    for block, features in enumerate(pooled_block_features(model, task.train.images)):
        head = model.domain_heads[block]
        weight, bias = fit_linear(features, task.train.domains, head.out_features)
        with torch.no_grad():
            head.weight.copy_(weight.to(head.weight))
            head.bias.copy_(bias.to(head.bias))


# ----------------------------------------------------------------------------- masks
def rank_groups(channels: int) -> dict[str, range]:
    """The score ranks (0 lowest) of each image's top, middle and bottom tenth of channels
    (at least one channel each)."""
    tenth = max(1, channels // 10)
    middle = channels // 2 - tenth // 2
    return {"top": range(channels - tenth, channels), "middle": range(middle, middle + tenth),
            "bottom": range(0, tenth)}


def selectivity(scores: torch.Tensor, p_mask: float, draws: int,
                generator: torch.Generator) -> dict[str, float]:
    """% of the channels in each image's top, middle and bottom tenth by Eq. 5 score that
    Eq. 6 masks, over `draws` masks (a uniform mask: P_mask for each)."""
    ranks = scores.argsort(dim=1).argsort(dim=1)
    masked = torch.stack([1 - channel_mask(scores, p_mask, generator) for _ in range(draws)])
    masked = masked.mean(0)
    return {name: 100.0 * float(masked[(ranks >= group.start) & (ranks < group.stop)].mean())
            for name, group in rank_groups(scores.shape[1]).items()}


def sensitive_channels(scores: torch.Tensor, domains: torch.Tensor) -> dict[int, torch.Tensor]:
    """Per source domain, its top tenth of channels (at least one) by mean Eq. 5 score."""
    top = max(1, scores.shape[1] // 10)
    return {int(d): scores[domains == d].mean(0).topk(top).indices for d in domains.unique()}


def target_damping(pooled: torch.Tensor, scores: torch.Tensor, domains: torch.Tensor,
                   labels: torch.Tensor, n_classes: int, p_mask: float, draws: int,
                   generator: torch.Generator) -> float:
    """Mean over domains d, classes and d's sensitive channels of (class-mean target under
    Eq. 6 masks) / (class-mean target under uniform masks of the same P_mask); the
    survivors' rescaling is the same for both and cancels."""
    uniform_scores = torch.ones_like(scores)
    weighted = torch.stack([channel_mask(scores, p_mask, generator) for _ in range(draws)])
    uniform = torch.stack([channel_mask(uniform_scores, p_mask, generator) for _ in range(draws)])
    target_w = class_means(weighted.mean(0) * pooled, labels, n_classes)
    target_u = class_means(uniform.mean(0) * pooled, labels, n_classes)
    present = labels.unique()
    ratios = [target_w[present][:, channels].sum() / target_u[present][:, channels].sum()
              .clamp_min(1e-12) for channels in sensitive_channels(scores, domains).values()]
    return float(torch.stack(ratios).mean())


@torch.no_grad()
def mask_diagnostics(model, task, p_mask: float, draws: int = 5, seed: int = 0,
                     val: list[torch.Tensor] | None = None) -> list[dict]:
    """Per block of an expert with domain heads, on the source validation images: Eq. 6's
    selectivity by score tenth and the target damping of the sensitive channels (`val`:
    their pooled block features, when already computed)."""
    generator = torch.Generator().manual_seed(seed)
    pooled = val or pooled_block_features(model, task.val.images)
    rows = []
    for block in range(N_BLOCKS):
        features = pooled[block].double()
        scores = activation_scores(features[:, :, None, None],
                                   model.head_weight(block).detach().cpu(), task.val.domains)
        rows.append({"block": block, "masked_channels": masked_count(p_mask, features.shape[1]),
                     **selectivity(scores, p_mask, draws, generator),
                     "target_damping": target_damping(features, scores, task.val.domains,
                                                      task.val.labels, task.n_classes,
                                                      p_mask, draws, generator)})
    return rows


# ----------------------------------------------------------------------------- interpolation
def top_overlap(scores: torch.Tensor, other: torch.Tensor, p_mask: float) -> float:
    """Mean over rows of the share of a row's ⌊P_mask·C⌋ highest `scores` that are also
    among its ⌊P_mask·C⌋ highest `other` (1: the same channels are the likeliest masked;
    about P_mask for unrelated rankings)."""
    channels = scores.shape[1]
    count = masked_count(p_mask, channels)
    top = [F.one_hot(s.topk(count, dim=1).indices, channels).sum(1) for s in (scores, other)]
    return float((top[0] * top[1]).sum(1).double().mean() / count)


def _pooled_scores(model, x: torch.Tensor, domains: torch.Tensor) -> list[torch.Tensor]:
    return [activation_scores(model.pool(f)[:, :, None, None], model.head_weight(b), domains)
            for b, f in enumerate(model.block_features(x))]


@torch.no_grad()
def interpolation_agreement(trained, initial, x: torch.Tensor, domains: torch.Tensor,
                            p_mask: float, weights=INTERPOLATION_WEIGHTS) -> list[dict]:
    """Per block, `top_overlap` of each image's Eq. 5 scores on the trained expert (eval
    mode) with (a, "interpolated": {l: share}) its scores on the matching network at each interpolation weight l
    (`interpolate_parameters`: parameters l·initial + (1 − l)·trained, the trained heads
    kept, train mode on the batch's statistics: the network NCFM's loop matches on) and
    (b, "head_weight_only") the head weight of the image's domain alone, W^ŷ (the ranking Eq. 5 would give if
    every channel's pooled activation were equal)."""
    trained.eval()
    reference = _pooled_scores(trained, x, domains)
    rows = [{"block": block, "interpolated": {}, "head_weight_only": top_overlap(
        scores, trained.head_weight(block)[domains].to(scores), p_mask)}
        for block, scores in enumerate(reference)]
    work = copy.deepcopy(trained).train()
    for weight in weights:
        interpolate_parameters(work, initial, trained, weight)
        for row, scores, ref in zip(rows, _pooled_scores(work, x, domains), reference):
            row["interpolated"][weight] = top_overlap(ref, scores, p_mask)
    return rows
