"""The MMD+DAM baseline (Choi et al. 2025, arXiv 2505.22387), as we reimplement it.

Real images get pseudo-domain labels from the energy of their low-frequency amplitude
spectrum, ranked into N_PSEUDO equal-size bins. Every decoded synthetic image carries a
learnable soft mask per pseudo-domain (a softmax over pseudo-domains, per pixel, with a
temperature); the masked copies ("domain views") sum back to the image. Each view is
matched (class-wise MMD on the final embedding) against the real images of its
pseudo-domain, and this term is added to the MMD loss. The masks are discarded after
distillation: evaluation sees the plain synthetic images.

Values the DAM paper does not fix for this setting (our choices, docs/method.md, "Baselines"):
N_PSEUDO = 4, the low-frequency window = the central LOW_FREQ fraction of each spectrum
axis without the DC term, TEMPERATURE = 1, masks initialised uniform (zero logits) and
optimised with Adam at the pixel learning rate, the DAM term weighted 1.
"""
from __future__ import annotations

import torch

from ..runtime import upcast
from .losses import class_means

N_PSEUDO = 4
LOW_FREQ = 0.125
TEMPERATURE = 1.0


def low_frequency_energy(images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """(N,) mean amplitude of the low frequencies (DC excluded) of the grey image."""
    out = []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(torch.get_default_dtype())
        x = x / 255 if images.dtype == torch.uint8 else x
        grey = x.mean(dim=1)
        amplitude = torch.fft.fftshift(torch.fft.fft2(grey).abs(), dim=(-2, -1))
        size = grey.shape[-1]
        centre, half = size // 2, max(1, int(size * LOW_FREQ / 2))
        window = amplitude[:, centre - half:centre + half + 1, centre - half:centre + half + 1]
        total = window.sum(dim=(1, 2)) - amplitude[:, centre, centre]
        out.append(total / (window[0].numel() - 1))
    return torch.cat(out)


def pseudo_domains(images: torch.Tensor, n: int = N_PSEUDO) -> torch.Tensor:
    """(N,) pseudo-domain in 0..n-1: rank of the low-frequency energy in n equal bins."""
    energy = low_frequency_energy(images)
    rank = torch.empty(len(energy), dtype=torch.long)
    rank[energy.argsort()] = torch.arange(len(energy))
    return rank * n // len(energy)


def domain_views(x: torch.Tensor, mask_logits: torch.Tensor,
                 temperature: float = TEMPERATURE) -> torch.Tensor:
    """(D·N, 3, H, W) views x ⊙ m_d with m = softmax(logits / T) over the D pseudo-domains;
    view d of image i is row d·N + i. Σ_d views_d = x."""
    masks = torch.softmax(mask_logits / temperature, dim=1)  # (N, D, H, W)
    views = x.unsqueeze(0) * masks.permute(1, 0, 2, 3).unsqueeze(2)
    return views.reshape(-1, *x.shape[1:])


def dam_matching_loss(real_features, real_labels, real_pseudo, view_features, syn_labels,
                      n_classes: int, n_pseudo: int = N_PSEUDO) -> torch.Tensor:
    """Σ_d Σ_c ‖E[F(x_t) | c, d] − E[F(x_s ⊙ m_d) | c]‖² over the (c, d) present in the
    real batch."""
    views = upcast(view_features).chunk(n_pseudo)
    total = view_features.new_zeros((), dtype=torch.float32)
    for d, view in enumerate(views):
        chosen = real_pseudo == d
        present = torch.bincount(real_labels[chosen], minlength=n_classes) > 0
        real = class_means(upcast(real_features[chosen]), real_labels[chosen], n_classes)
        syn = class_means(view, syn_labels, n_classes)
        total = total + ((real - syn) ** 2).sum(1)[present].sum()
    return total
