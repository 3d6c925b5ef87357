"""What a model makes of a set of images: Eq. 5 channel scores per domain (Fig. 1(b), 3(b)),
Fig. 1(b)'s statistic of one set, embeddings and their 2-D UMAP (Fig. 3(a)), and the image
grid of a set. Pure computations; reporting/analysis.py stores them per profile."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ..method.masking import activation_scores
from ..method.models import N_BLOCKS
from ..runtime import to_float


@dataclass
class ChannelActivation:
    """Mean activation score per (domain, channel) of a set of images at one block."""

    scores: np.ndarray  # (n_domains_present, C)
    domains: list[int]  # domain index of each row

    @property
    def variance(self) -> np.ndarray:
        """(C,) variance across domains: high = unstable, domain-sensitive channel."""
        return self.scores.var(axis=0)


@torch.no_grad()
def channel_activation(model, images: torch.Tensor, domains: torch.Tensor,
                       block: int = N_BLOCKS - 1, batch_size: int = 256) -> ChannelActivation:
    """Eq. 5 scores (min-max normalised per image) of each image under its own domain's
    head row, averaged per domain. `images` uint8 or float in [0, 1]."""
    model.eval()
    device = next(model.parameters()).device
    weight = model.head_weight(block)
    scores = []
    for start in range(0, len(images), batch_size):
        x = to_float(images[start:start + batch_size], device)
        features = model.run_blocks(x, 0, block + 1)
        d = domains[start:start + batch_size].to(device)
        scores.append(activation_scores(features, weight, d).cpu())
    scores = torch.cat(scores)
    present = sorted(set(domains.tolist()))
    per_domain = np.stack([scores[domains == d].mean(0).numpy() for d in present])
    return ChannelActivation(per_domain, present)


@torch.no_grad()
def embeddings(model, images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """(N, D) final embeddings F(x) as numpy."""
    model.eval()
    device = next(model.parameters()).device
    out = [model.embed(to_float(images[s:s + batch_size], device)).float().cpu()
           for s in range(0, len(images), batch_size)]
    return torch.cat(out).numpy()


def umap_2d(features: np.ndarray, seed: int = 0, n_neighbors: int = 15) -> np.ndarray:
    """Seeded 2-D UMAP (umap-learn); single-threaded so that the layout is reproducible."""
    with warnings.catch_warnings():  # umap pulls in tqdm.auto, which warns without ipywidgets
        warnings.simplefilter("ignore")
        import umap

    reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, len(features) - 1),
                        random_state=seed, n_jobs=1)
    return reducer.fit_transform(features)


def score_spread(probe, synthetic) -> float:
    """Fig. 1(b)'s statistic of one distilled set as one number: per channel, the variance
    across source domains of the last block's Eq. 5 scores (each image under its own
    domain's row of `probe`'s heads, min-max normalised, averaged per domain), averaged over
    channels. Lower: the set's channels respond alike to every domain."""
    images, _, domains = synthetic.decoded()
    return float(channel_activation(probe, images, domains).variance.mean())


def grid_images(sets: dict, per_class: int = 2) -> dict[str, np.ndarray]:
    """Stored synthetic images as (K, per_class, H, W, 3) arrays for the notebooks' image grid."""
    out = {}
    for name, synthetic in sets.items():
        images, labels = synthetic.images, synthetic.labels
        classes = int(labels.max()) + 1
        rows = [images[labels == c][:per_class].permute(0, 2, 3, 1).numpy() for c in range(classes)]
        out[name] = np.stack(rows)
    return out
