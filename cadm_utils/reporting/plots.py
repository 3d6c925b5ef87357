"""What the notebooks' plotting cells share: the methods' labels and colours, and `save`
(PNG + PDF, the same bytes for the same figure). Each figure is drawn in its notebook."""
from __future__ import annotations

from pathlib import Path

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
