"""Loss terms of the paper: MMD / asymmetric MMD (Eq. 2, 7), class regularisation
(Eq. 3, 8), dual consistency (Eq. 9); the IRMv1 penalty for the MMD+IRM baseline."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..runtime import upcast


def class_means(features: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(n_classes, D) mean feature of each class, all classes in one matrix product."""
    one_hot = F.one_hot(labels, n_classes).to(features.dtype)
    counts = one_hot.sum(0).clamp_min(1)
    return (one_hot.t() @ features) / counts[:, None]


def mmd_loss(real_features: torch.Tensor, real_labels: torch.Tensor,
             syn_features: torch.Tensor, syn_labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Eq. 2 per class, summed over classes: Σ_c ‖E[F(x_t)|c] − E[F(x_s)|c]‖².

    Eq. 7 (L_adm) is the same function given masked real features F̂(x_t): the asymmetry
    lives in the forward pass (masking real features only), not in the distance. The
    features are the final pooled embedding, unnormalised, as in DM (`main_DM.py`); NCFM's
    multi-layer MMD branch (`NCFM/NCFM.py`) is unreachable in its shipped configs."""
    real = class_means(upcast(real_features), real_labels, n_classes)
    syn = class_means(upcast(syn_features), syn_labels, n_classes)
    return ((real - syn) ** 2).sum()


def regularization_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Eq. 3 on unmasked synthetic features, Eq. 8 on masked ones: CE(F_c(F̂(x_s)), y_s)."""
    return F.cross_entropy(upcast(logits), labels)


def symmetric_kl(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Eq. 9: ½ (KL[σ(a) ‖ σ(b)] + KL[σ(b) ‖ σ(a)]), averaged over the batch."""
    log_p = F.log_softmax(upcast(logits_a), dim=1)
    log_q = F.log_softmax(upcast(logits_b), dim=1)
    p, q = log_p.exp(), log_q.exp()
    kl_pq = (p * (log_p - log_q)).sum(1)
    kl_qp = (q * (log_q - log_p)).sum(1)
    return 0.5 * (kl_pq + kl_qp).mean()


def temperature_kl(logits_a: torch.Tensor, logits_b: torch.Tensor,
                   temperature: float) -> torch.Tensor:
    """DomainDrop's consistency loss (loss/KL_Loss.py): both KL directions between the
    softmaxes at temperature T, each averaged over every (sample, class) element, halved.
    This mean over classes, with T = 5, is the scale at which a weight of 100 (λ, Eq. 12)
    is sane; Eq. 9's per-sample sum (`symmetric_kl`) is larger by K·T²-ish factors."""
    log_p = F.log_softmax(upcast(logits_a) / temperature, dim=1)
    log_q = F.log_softmax(upcast(logits_b) / temperature, dim=1)
    p, q = log_p.exp(), log_q.exp()
    return 0.5 * ((q * (log_q - log_p)).mean() + (p * (log_p - log_q)).mean())


def consistency_loss(logits_a: torch.Tensor, logits_b: torch.Tensor, kind: str,
                     temperature: float) -> torch.Tensor:
    """L_cons in the profile's form: 'temperature' (DomainDrop) or 'symmetric' (Eq. 9)."""
    if kind == "temperature":
        return temperature_kl(logits_a, logits_b, temperature)
    return symmetric_kl(logits_a, logits_b)


def irm_penalty(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """IRMv1 (DomainBed's form): the product of the gradients of the two half-batch risks
    with respect to a dummy classifier scale w = 1."""
    scale = torch.ones((), device=logits.device, requires_grad=True)
    loss_1 = F.cross_entropy(upcast(logits[0::2]) * scale, labels[0::2])
    loss_2 = F.cross_entropy(upcast(logits[1::2]) * scale, labels[1::2])
    grad_1 = torch.autograd.grad(loss_1, [scale], create_graph=True)[0]
    grad_2 = torch.autograd.grad(loss_2, [scale], create_graph=True)[0]
    return grad_1 * grad_2
