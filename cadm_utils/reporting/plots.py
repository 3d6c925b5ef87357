"""What the notebooks' plotting cells share: `save` (PNG + PDF, the same bytes for the same
figure). Each figure is drawn in its notebook; methods' labels and colours come from the
method registry (method.methods.method_label, method_colour)."""
from __future__ import annotations

from pathlib import Path


def save(figure, folder: Path, stem: str) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.png", folder / f"{stem}.pdf"]
    figure.savefig(paths[0], dpi=120, bbox_inches="tight")
    # no creation date: an unchanged figure rewrites the same bytes (a clean git tree)
    figure.savefig(paths[1], bbox_inches="tight", metadata={"CreationDate": None})
    return paths
