"""The expert's domain heads, read and refitted. CADM's premise (paper, "Asymmetric
Distribution Matching") is that after pretraining the per-block heads "can effectively
distinguish image domains", so that Eq. 5 scores single out domain-sensitive channels.
`head_diagnostics` measures that per block on the source validation images: the heads'
domain accuracy, the share of the largest domain (what a head that always names it scores),
and a linear probe fitted on the same frozen pooled features (what a linear head could
read). `refit_heads` replaces each head by such a fit (the `pretrain.heads: refit`
setting). Only source domains are used."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..runtime import to_float
from .models import N_BLOCKS

PROBE_ITERATIONS = 300  # full-batch L-BFGS iterations of a linear fit
PROBE_WEIGHT_DECAY = 1e-4  # on standardised features


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


def head_diagnostics(model, task) -> list[dict]:
    """Per block, in %: the domain head's accuracy on the source validation images, the
    majority domain's share there, and a linear probe fitted on the frozen pooled training
    features, scored on the validation images."""
    train = pooled_block_features(model, task.train.images)
    val = pooled_block_features(model, task.val.images)
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
