"""Result records (one JSON object per line) and the tables built from them."""
from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import statistics
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from .runtime import device_name, git_commit


def base_record(kind: str, dataset: str, split: str, seed: int, device: torch.device,
                **fields) -> dict:
    return {"kind": kind, "dataset": dataset, "split": split, "seed": seed,
            "device": device_name(device), "torch": torch.__version__, "commit": git_commit(),
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"), **fields}


def append_record(path: str | Path, record: dict) -> None:
    """One line per record in a single write, flushed, so an interruption loses at most
    the record being written (and `load_records` skips a torn last line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # many jobs (workers, Slurm) append to one file
        handle.write(json.dumps(record, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
        fcntl.flock(handle, fcntl.LOCK_UN)


def load_records(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line torn by an interruption
    return records


def mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def format_cell(values: list[float]) -> str:
    """'mean ± std (n)', one decimal."""
    if not values:
        return "–"
    mean, std = mean_std(values)
    return f"{mean:.1f} ± {std:.1f} ({len(values)})"


# ----------------------------------------------------------------------------- tables

def latest_per_seed(records: list[dict]) -> list[dict]:
    """The newest record of each (dataset, split, method, ipc, net, seed): a cell shared by
    two tables (e.g. CADM in Tables 1 and 2) is computed once."""
    latest = {}
    for record in records:
        key = tuple(record.get(k) for k in ("dataset", "split", "method", "ipc", "net", "seed"))
        latest[key] = record
    return list(latest.values())


def collect(records: list[dict], **match) -> list[float]:
    return [r["acc"] for r in records if all(r.get(k) == v for k, v in match.items())]


def with_paper(cell: str, paper_value: float | None) -> str:
    """Append the paper's reported value to one of our cells, where there is one."""
    return cell if paper_value is None else f"{cell} [paper {paper_value:.1f}]"


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]

    def markdown(self) -> str:
        lines = [f"**{self.title}**", "", "| " + " | ".join(self.header) + " |",
                 "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(self.header)
        writer.writerows(self.rows)
        return buffer.getvalue()

    def latex(self) -> str:
        escape = lambda s: s.replace("±", r"$\pm$").replace("→", r"$\to$").replace("_", r"\_")
        lines = [r"\begin{tabular}{l" + "c" * (len(self.header) - 1) + "}", r"\toprule",
                 " & ".join(escape(h) for h in self.header) + r" \\", r"\midrule"]
        lines += [" & ".join(escape(c) for c in row) + r" \\" for row in self.rows]
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines) + "\n"

    def write(self, folder: Path, stem: str) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for suffix, text in ((".md", self.markdown()), (".csv", self.csv()),
                             (".tex", self.latex())):
            path = folder / f"{stem}{suffix}"
            path.write_text(text)
            paths.append(path)
        return paths


def method_table(records: list[dict], title: str, dataset: str, splits: list[str],
                 methods: list[str], ipcs: list[int], full_data: bool = True,
                 paper: dict | None = None, anchors: dict | None = None) -> Table:
    """Rows: methods (and Full Dataset); columns: split × IPC. Cells: mean ± std (seeds),
    with the paper's value beside ours where `paper[(method, split, ipc)]` has one, and our
    GPU full-data measurement at this resolution where `anchors[split]` has one."""
    header = ["Method"] + [f"{s} IPC {i}" for s in splits for i in ipcs]
    rows = []
    for method in methods:
        row = [method]
        for split in splits:
            for ipc in ipcs:
                cell = format_cell(collect(records, dataset=dataset, split=split,
                                           method=method, ipc=ipc, net="resnet18"))
                row.append(with_paper(cell, (paper or {}).get((method, split, ipc))))
        rows.append(row)
    if full_data:
        row = ["Full dataset"]
        for split in splits:
            cell = format_cell(collect(records, dataset=dataset, split=split,
                                       method="full", ipc=0, net="resnet18"))
            cell = with_paper(cell, (paper or {}).get(("full", split, 0)))
            if (anchors or {}).get(split) is not None:
                cell += f" [our GPU {anchors[split]:.1f}]"
            row += [cell] + [""] * (len(ipcs) - 1)
        rows.append(row)
    return Table(title, header, rows)


def ablation_table(records: list[dict], title: str, dataset: str, split: str, ipcs: list[int],
                   rows: list[tuple[str, bool, bool, bool]], paper: dict | None = None) -> Table:
    """Paper Table 2: one row per loss combination (method name, L_adm, L_reg, L_cons)."""
    header = ["L_adm", "L_reg (masked)", "L_cons"] + [f"{split} IPC {i}" for i in ipcs]
    body = []
    for name, *switches in rows:
        row = ["✓" if on else "-" for on in switches]
        for i, ipc in enumerate(ipcs):
            cell = format_cell(collect(records, dataset=dataset, split=split, method=name, ipc=ipc,
                                       net="resnet18"))
            reported = (paper or {}).get(tuple(switches))
            row.append(with_paper(cell, reported[(1, 10).index(ipc)]
                                  if reported and ipc in (1, 10) else None))
        body.append(row)
    return Table(title, header, body)


def cross_architecture_table(records: list[dict], title: str, dataset: str, split: str,
                             methods: list[str], ipcs: list[int], nets: list[str],
                             paper: dict | None = None) -> Table:
    """Paper Table 3: rows (IPC, method), columns evaluation networks."""
    header = ["IPC", "Method"] + nets
    body = []
    for ipc in ipcs:
        for method in methods:
            row = [str(ipc), method]
            for net in nets:
                cell = format_cell(collect(records, dataset=dataset, split=split, method=method,
                                           ipc=ipc, net=net))
                row.append(with_paper(cell, (paper or {}).get((method, ipc), {}).get(net)))
            body.append(row)
    return Table(title, header, body)


def variant_table(records: list[dict], title: str, dataset: str, splits: list[str],
                  ipcs: list[int], rows: list[tuple[str, str]]) -> Table:
    """One row per variant (method name, its setting overrides): accuracy on the source
    domains' held-out images (the signal choices may use) and on the unseen domain (only
    reported)."""
    header = ["Variant", "Overrides"] + [f"{s} IPC {i} {what}" for s in splits for i in ipcs
                                         for what in ("source val", "unseen")]
    body = []
    for name, overrides in rows:
        row = [name, overrides]
        for split in splits:
            for ipc in ipcs:
                match = dict(dataset=dataset, split=split, method=name, ipc=ipc, net="resnet18")
                row.append(format_cell([r["source_val_acc"] for r in records
                                        if all(r.get(k) == v for k, v in match.items())
                                        and r.get("source_val_acc") is not None]))
                row.append(format_cell(collect(records, **match)))
        body.append(row)
    return Table(title, header, body)
