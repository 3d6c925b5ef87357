"""One function per paper figure; each returns a matplotlib Figure and `save` writes PNG + PDF."""
from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .tables import accuracies, mean_std

METHOD_LABELS = {"random": "Random", "mmd": "MMD", "mmd_irm": "MMD+IRM", "mmd_fact": "MMD+FACT",
                 "mmd_dam": "MMD+DAM", "cadm": "CADM", "full": "Full data"}
COLOURS = {"random": "#9e9e9e", "mmd": "#1f77b4", "mmd_irm": "#17becf", "mmd_fact": "#2ca02c",
           "mmd_dam": "#9467bd", "cadm": "#d62728", "full": "#333333"}


def save(figure, folder: Path, stem: str) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.png", folder / f"{stem}.pdf"]
    figure.savefig(paths[0], dpi=120, bbox_inches="tight")
    # no creation date: an unchanged figure rewrites the same bytes (a clean git tree)
    figure.savefig(paths[1], bbox_inches="tight", metadata={"CreationDate": None})
    return paths


def _bar_groups(ax, groups: list[str], series: dict[str, list[list[float]]], colours=None):
    """Grouped bars with std error bars; series maps a label to one value list per group."""
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for i, (label, per_group) in enumerate(series.items()):
        stats = [mean_std(v) for v in per_group]
        means = [m for m, _ in stats]
        stds = [s for _, s in stats]
        ax.bar(x + (i - (len(series) - 1) / 2) * width, means, width, yerr=stds, capsize=2,
               label=label, color=(colours or {}).get(label))
    ax.set_xticks(x, groups)


def fig1a_in_vs_unseen(records: list[dict], split: str, methods: list[str], ipc: int):
    """Fig. 1(a): accuracy on held-out source-domain images vs on the unseen domain."""
    fig, ax = plt.subplots(figsize=(5, 3))
    pick = lambda m, key: accuracies(records, key, method=m, split=split, ipc=ipc,
                                     net="resnet18")
    _bar_groups(ax, [METHOD_LABELS.get(m, m) for m in methods],
                {"source domains (held out)": [pick(m, "source_val_acc") for m in methods],
                 "unseen domain": [pick(m, "acc") for m in methods]})
    ax.set_ylabel("accuracy %")
    ax.set_title(f"{split}, IPC {ipc}: in-domain vs unseen domain")
    ax.legend(fontsize=8)
    return fig


def fig1c_methods(records: list[dict], splits: list[str], methods: list[str], ipc: int):
    """Fig. 1(c): unseen-domain accuracy of every method on every split."""
    fig, ax = plt.subplots(figsize=(6, 3))
    series = {METHOD_LABELS.get(m, m): [accuracies(records, method=m, split=s, ipc=ipc,
                                                   net="resnet18") for s in splits]
              for m in methods}
    colours = {METHOD_LABELS.get(m, m): COLOURS.get(m) for m in methods}
    _bar_groups(ax, splits, series, colours)
    ax.set_ylabel("unseen-domain accuracy %")
    ax.set_title(f"IPC {ipc}")
    ax.legend(fontsize=7, ncol=3)
    return fig


def fig1b_variance(variances: dict[str, np.ndarray]):
    """Fig. 1(b): per-channel variance of activation scores across domains (sorted)."""
    fig, ax = plt.subplots(figsize=(5, 3))
    for method, variance in variances.items():
        ax.plot(np.sort(variance)[::-1], label=f"{METHOD_LABELS.get(method, method)} "
                f"(mean {variance.mean():.2e})", color=COLOURS.get(method))
    ax.set_xlabel("channel (sorted by variance)")
    ax.set_ylabel("variance across domains")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title("Activation-score variance, last block")
    return fig


def fig3b_channel_scores(activations: dict, domain_names: list[str], channels: int = 32,
                         top: int = 5):
    """Fig. 3(b): scores of the first channels per domain; red ticks = the `top`
    channels (of those shown) with the largest variance across domains."""
    fig, axes = plt.subplots(len(activations), 1, figsize=(7, 2.2 * len(activations)),
                             sharex=True, squeeze=False)
    for ax, (method, activation) in zip(axes[:, 0], activations.items()):
        scores = activation.scores[:, :channels]
        for row, d in zip(scores, activation.domains):
            ax.plot(range(len(row)), row, marker="o", ms=3, lw=1, label=domain_names[d])
        sensitive = np.argsort(-scores.var(axis=0))[:top]
        for c in sensitive:
            ax.axvspan(c - 0.4, c + 0.4, color="red", alpha=0.15)
        ax.set_ylabel("score")
        ax.set_title(f"{METHOD_LABELS.get(method, method)}: mean variance "
                     f"{scores.var(axis=0).mean():.2e}", fontsize=9)
    axes[0, 0].legend(fontsize=7, ncol=len(domain_names))
    axes[-1, 0].set_xlabel("channel")
    fig.tight_layout()
    return fig


def fig3a_umap(panels: dict[str, dict], domain_names: list[str]):
    """Fig. 3(a): UMAP of real (dots) and synthetic (stars) features of one class,
    coloured by domain. panels[method] = {"xy", "domains", "is_synthetic"}."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, (method, panel) in zip(axes[0], panels.items()):
        xy, domains, synthetic = panel["xy"], panel["domains"], panel["is_synthetic"]
        for d in sorted(set(domains.tolist())):
            real = (domains == d) & ~synthetic
            fake = (domains == d) & synthetic
            ax.scatter(xy[real, 0], xy[real, 1], s=6, alpha=0.5, color=cmap(d),
                       label=f"{domain_names[d]} real")
            ax.scatter(xy[fake, 0], xy[fake, 1], s=70, marker="*", edgecolor="black",
                       linewidth=0.5, color=cmap(d), label=f"{domain_names[d]} synthetic")
        ax.set_title(METHOD_LABELS.get(method, method))
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, -1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1, 0.5))
    fig.tight_layout()
    return fig


def synthetic_grid(sets: dict[str, np.ndarray], class_names: list[str]):
    """Stored synthetic images (each holds 2×2 sub-images) per method, one row per class.
    sets[method] = (K, IPC_shown, H, W, 3) array in [0, 1]."""
    n = len(sets)
    first = next(iter(sets.values()))
    k, shown = first.shape[:2]
    fig, axes = plt.subplots(k, n * shown, figsize=(1.1 * n * shown, 1.1 * k), squeeze=False)
    for m, (method, images) in enumerate(sets.items()):
        for c in range(k):
            for i in range(shown):
                ax = axes[c, m * shown + i]
                ax.imshow(np.clip(images[c, i], 0, 1))
                ax.set_xticks([])
                ax.set_yticks([])
                if i == 0 and m == 0:
                    ax.set_ylabel(class_names[c], fontsize=7)
                if c == 0 and i == 0:
                    ax.set_title(METHOD_LABELS.get(method, method), fontsize=8, loc="left")
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    return fig


# ----------------------------------------------------------------------------- step anatomy
def step_scores_and_mask(anatomy: dict, domain_names: list[str], p_mask: float):
    """Eq. 5 scores of a real batch at the drawn block (rows: images grouped by domain;
    columns: channels) beside the Eq. 6 mask drawn from them (dark = masked channel)."""
    import seaborn as sns

    order = np.argsort(anatomy["domains"], kind="stable")
    domains = anatomy["domains"][order]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    sns.heatmap(anatomy["scores"][order], ax=axes[0], cmap="viridis", vmin=0, vmax=1,
                cbar_kws={"label": "score (min-max per image)"})
    sns.heatmap(anatomy["mask"][order], ax=axes[1], cmap="Greys_r", vmin=0, vmax=1, cbar=False)
    for ax in axes:
        for boundary in np.flatnonzero(np.diff(domains)) + 1:
            ax.axhline(boundary, color="white", lw=1.5)
        ax.set_xlabel("channel")
        ax.set_xticks([])
    starts = [int(np.argmax(domains == d)) for d in sorted(set(domains.tolist()))]
    axes[0].set_yticks([s + 0.5 for s in starts], [domain_names[d] for d in sorted(set(domains.tolist()))],
                       rotation=0, fontsize=7)
    block = int(anatomy["block"][0]) + 1
    axes[0].set_title(f"Eq. 5 scores after block {block}", fontsize=9)
    axes[1].set_title(f"Eq. 6 mask, P_mask {p_mask} (black = masked)", fontsize=9)
    fig.tight_layout()
    return fig


def loss_curves(anatomy: dict, lam: float):
    """The three terms over the distillation run (log scale): matching (L_adm or L_mmd),
    L_reg, and λ·L_cons as it enters Eq. 12."""
    fig, ax = plt.subplots(figsize=(5.5, 3))
    history, steps = anatomy["history"], anatomy["history_steps"]
    for column, label in enumerate(("matching (Eq. 7)", "L_reg (Eq. 8)", f"λ·L_cons (Eq. 9), λ={lam:g}")):
        values = history[:, column] * (lam if column == 2 else 1.0)
        ax.plot(steps, np.clip(values, 1e-8, None), label=label)
    ax.set_yscale("log")
    ax.set_xlabel("distillation step")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def before_after(anatomy: dict, class_names: list[str], per_class: int = 2):
    """Stored synthetic images at initialisation and after distillation, per class."""
    labels = anatomy["labels"]
    rows = {}
    for name in ("initial", "final"):
        rows[name] = np.stack([anatomy[name][labels == c][:per_class]
                               for c in range(len(class_names))])
    fig = synthetic_grid(rows, class_names)
    for ax in fig.axes:
        if ax.get_title(loc="left"):
            ax.set_title(ax.get_title(loc="left").replace("initial", "before").replace(
                "final", "after"), fontsize=8, loc="left")
    return fig


def fig3b_heatmap(activations: dict, domain_names: list[str], channels: int = 32, top: int = 5):
    """Fig. 3(b) as a heatmap: mean score per source domain (rows) and channel (columns),
    MMD above CADM; red boxes mark the `top` channels (of those shown) whose score varies
    most across domains (domain-sensitive)."""
    import seaborn as sns
    from matplotlib.patches import Rectangle

    fig, axes = plt.subplots(len(activations), 1, figsize=(8, 1.5 * len(activations) + 0.6),
                             squeeze=False)
    for ax, (method, activation) in zip(axes[:, 0], activations.items()):
        scores = activation.scores[:, :channels]
        sns.heatmap(scores, ax=ax, cmap="magma", vmin=0, vmax=1, cbar=True,
                    yticklabels=[domain_names[d] for d in activation.domains])
        for c in np.argsort(-scores.var(axis=0))[:top]:
            ax.add_patch(Rectangle((c, 0), 1, len(scores), fill=False, edgecolor="red", lw=1.5))
        ax.set_title(f"{METHOD_LABELS.get(method, method)}: mean variance across domains "
                     f"{scores.var(axis=0).mean():.2e}", fontsize=9)
        ax.set_xticks([])
        ax.tick_params(axis="y", labelsize=7, rotation=0)
    axes[-1, 0].set_xlabel(f"channel (first {channels}); red: the {top} most domain-sensitive")
    fig.tight_layout()
    return fig


def fig1b_distribution(variances: dict[str, np.ndarray]):
    """Fig. 1(b) as a distribution: per-channel variance of the scores across domains,
    MMD beside CADM (box and points, log scale)."""
    import pandas as pd
    import seaborn as sns

    frame = pd.DataFrame([{"method": METHOD_LABELS.get(m, m), "variance": float(v)}
                          for m, values in variances.items() for v in values])
    fig, ax = plt.subplots(figsize=(4.5, 3))
    palette = {METHOD_LABELS.get(m, m): COLOURS.get(m) for m in variances}
    with warnings.catch_warnings():  # seaborn 0.13 passes matplotlib's deprecated `vert`
        warnings.simplefilter("ignore", DeprecationWarning)
        sns.boxplot(frame, x="method", y="variance", hue="method", palette=palette, ax=ax,
                    showfliers=False, legend=False)
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(frame))  # the same every run
    ax.scatter(frame["method"].map({n: i for i, n in enumerate(palette)}) + jitter,
               frame["variance"], s=4, color="black", alpha=0.5)
    ax.set_yscale("log")
    ax.set_xlabel("")
    ax.set_ylabel("variance across domains")
    ax.set_title("Activation-score variance per channel, last block", fontsize=9)
    fig.tight_layout()
    return fig
