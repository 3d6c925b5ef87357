"""The tables of the paper, built from result records: mean ± std over seeds, the paper's
value beside ours, written as Markdown, CSV and LaTeX."""
from __future__ import annotations

import csv
import io
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

from ..data import split_name
from ..experiment.cells import ABLATION_ROWS, stage_methods, stage_rows
from ..experiment.records import current_records, matching
from ..experiment.runner import Runner
from ..method.methods import FULL_DATA, ablation_variant, method_label, name_of_label
from ..profiles import load_profile
from ..settings import TOP_LEVEL_OVERRIDES, Stage
from .paper_numbers import (GPU_FULL_DATA_ANCHORS, PAPER_DATASETS, PAPER_ROWS, TABLE2,
                            paper_values, table1, table3, table4)

DECIMAL = re.compile(r"-?\d+\.\d+")


def accuracies(records: list[dict], field: str = "acc", **wanted) -> list[float]:
    """`field` of the matching records that have it (accuracy on the unseen domain by
    default; "source_val_acc" for the source domains' held-out images)."""
    return [r[field] for r in matching(records, **wanted) if r.get(field) is not None]


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

    def layout(self) -> str:
        """The Markdown with every decimal number written 'x': title, rows, columns and
        record counts, which no processor changes (the accuracies are training outcomes)."""
        rows = [[DECIMAL.sub("x", cell) for cell in row] for row in self.rows]
        return Table(self.title, self.header, rows).markdown()

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
                cell = format_cell(accuracies(records, dataset=dataset, split=split,
                                           method=method, ipc=ipc, net="resnet18"))
                row.append(with_paper(cell, (paper or {}).get((method, split, ipc))))
        rows.append(row)
    if full_data:
        row = ["Full dataset"]
        for split in splits:
            cell = format_cell(accuracies(records, dataset=dataset, split=split,
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
            cell = format_cell(accuracies(records, dataset=dataset, split=split, method=name, ipc=ipc,
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
                cell = format_cell(accuracies(records, dataset=dataset, split=split, method=method,
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
                row.append(format_cell(accuracies(records, "source_val_acc", **match)))
                row.append(format_cell(accuracies(records, **match)))
        body.append(row)
    return Table(title, header, body)


def split_summary_table(records: list[dict], title: str, dataset: str, splits: list[str],
                        methods: list[str], ipcs: list[int], paper: dict | None = None,
                        full_row: bool = True, pooled: dict | None = None) -> Table:
    """Per method and IPC: the mean over splits of the per-split mean accuracy on the unseen
    domain (with the paper's mean over the same splits), and the same for the source
    domains' held-out images; '–' unless every split has records. `pooled` adds a row per
    {label: [method names]} whose per-split mean takes the records of all its methods."""
    header = ["Method", "IPC", "unseen (mean over splits)", "paper", "source val (mean)",
              "splits"]

    def split_mean(values_per_split):
        means = [mean_std(v)[0] for v in values_per_split if v]
        return f"{statistics.fmean(means):.1f}" if len(means) == len(splits) else "–"

    def per_split(field, members, ipc):
        return [[a for m in members for a in accuracies(
            records, field, dataset=dataset, split=s, method=m, ipc=ipc, net="resnet18")]
            for s in splits]

    groups = [(m, [m]) for m in methods + (["full"] if full_row else [])]
    body = []
    for label, members in groups + list((pooled or {}).items()):
        for ipc in ([0] if label == "full" else ipcs):
            unseen = per_split("acc", members, ipc)
            reported = [(paper or {}).get((label, s, ipc)) for s in splits]
            body.append([label if label != "full" else "Full dataset", str(ipc or "–"),
                         split_mean(unseen),
                         f"{statistics.fmean(reported):.1f}" if None not in reported else "–",
                         split_mean(per_split("source_val_acc", members, ipc)),
                         str(sum(1 for v in unseen if v))])
    return Table(title, header, body)


def expert_heads_table(rows: list[dict], profile_name: str) -> Table:
    """The experts with domain heads (rows of `pipeline.trained_experts`): per block, the
    heads' accuracy with the majority share, the linear probe and the target damping, all
    on the source validation images."""
    def per_block(row, key):
        return " / ".join(f"{b[key]:.{3 if key == 'target_damping' else 1}f}"
                          for b in row["heads"])
    body = [[row["split"], ", ".join(f"{k}={v}" for k, v in row["overrides"].items()
                                     if k != "seed") or "profile settings",
             str(row["seed"]), f"{row['source_val_acc']:.1f}",
             f"{per_block(row, 'head_acc')} ({row['heads'][0]['majority']:.1f})",
             per_block(row, "probe_acc"), per_block(row, "target_damping")]
            for row in rows if row["heads"]]
    return Table(f"CADM's experts: domain heads per block on the source validation images "
                 f"({profile_name} profile)",
                 ["split", "expert", "seed", "class acc %", "heads per block % (majority)",
                  "linear probe per block %", "target damping per block"], body)


def replicate_groups(rows: list[tuple]) -> dict | None:
    """Rows of one method that differ only in `seed` (replicates of each cell's whole
    pipeline) pooled: {"<method> (<other overrides>), N seeds pooled": [row names]}; None
    when no two rows are replicates of each other."""
    groups: dict[tuple, list[str]] = {}
    for method, overrides in rows:
        rest = tuple(o for o in overrides if o[0] not in TOP_LEVEL_OVERRIDES)
        groups.setdefault((method.family, rest), []).append(method.name)
    if all(len(names) == 1 for names in groups.values()):
        return None
    label = {key: key[0] + (f" ({', '.join(f'{k}={v}' for k, v in key[1])})" if key[1] else "")
             for key in groups}
    return {f"{label[key]}, {len(names)} seeds pooled": names
            for key, names in groups.items() if len(names) > 1}


def summary_tables(runner: Runner) -> dict[str, Table]:
    """The mean over splits of every method-table stage (Tables 1 and 4) and of every
    variant stage on more than one split, keyed by file stem (`<stage>_<dataset>_summary`)."""
    records = current_records(runner)
    compare = runner.profile.compare_with_paper
    tables = {}
    for stage, settings in runner.profile.stages.items():
        if settings.kind not in SUMMARISED_KINDS:
            continue
        for dataset in settings.datasets:
            targets = settings.targets_of(runner.profile.datasets, dataset)
            splits = [split_name(dataset, t) for t in targets]
            variants = settings.kind == "variants"
            if variants and len(splits) == 1:
                continue  # a check on one split: its stage table is the summary
            title = (f"{stage_title(stage, settings)}, mean over {len(splits)} splits: "
                     f"{dataset} ({runner.profile.name} profile)")
            rows = stage_rows(settings, None)
            tables[f"{stage}_{dataset}_summary"] = split_summary_table(
                records, title, dataset, splits, [m.name for m, _ in rows],
                settings.ipcs, paper_values(stage, dataset) if compare and not variants
                else None, full_row=not variants,
                pooled=replicate_groups(rows) if variants else None)
    return tables


# ----------------------------------------------------------------------------- stages

def stage_tables(runner: Runner) -> dict[str, Table]:
    """Tables of every stage of the profile from the current records, keyed by file stem;
    each stage drawn by the renderer of its kind (STAGE_RENDERERS)."""
    records = current_records(runner)
    tables = {}
    for stage, settings in runner.profile.stages.items():
        for dataset in settings.datasets:
            context = StageContext(runner, records, stage, settings, dataset)
            tables[f"{stage}_{dataset}"] = STAGE_RENDERERS[settings.kind](context)
    return tables


@dataclass(frozen=True)
class StageContext:
    """What a stage renderer reads: the run, its current records, one stage on one data set."""
    runner: Runner
    records: list
    stage: str
    settings: Stage
    dataset: str

    @property
    def splits(self) -> list[str]:
        targets = self.settings.targets_of(self.runner.profile.datasets, self.dataset)
        return [split_name(self.dataset, t) for t in targets]

    @property
    def title(self) -> str:
        return (f"{stage_title(self.stage, self.settings)}: {self.dataset} "
                f"({self.runner.profile.name} profile)")

    @property
    def compare(self) -> bool:
        return self.runner.profile.compare_with_paper


def networks_stage(c: StageContext) -> Table:
    paper = table3() if c.compare and c.dataset == "pacs" else None
    return cross_architecture_table(c.records, c.title, c.dataset, c.splits[0],
                                    [m.name for m in stage_methods(c.settings, None)],
                                    c.settings.ipcs, c.settings.nets, paper)


def variants_stage(c: StageContext) -> Table:
    rows = [(method.name, ", ".join(f"{k}={v}" for k, v in overrides) or "reference")
            for method, overrides in stage_rows(c.settings, None)]
    return variant_table(c.records, c.title, c.dataset, c.splits, c.settings.ipcs, rows)


def ablation_stage(c: StageContext) -> Table:
    rows = [(ablation_variant(*row).name, *row) for row in ABLATION_ROWS]
    paper = TABLE2 if c.compare and c.dataset == "pacs" else None
    return ablation_table(c.records, c.title, c.dataset, c.splits[0], c.settings.ipcs, rows,
                          paper)


def methods_stage(c: StageContext) -> Table:
    resolution = c.runner.profile.datasets[c.dataset].resolution
    return method_table(
        c.records, c.title, c.dataset, c.splits,
        [m.name for m in stage_methods(c.settings, None)], c.settings.ipcs,
        full_data=c.settings.full_data,
        paper=paper_values(c.stage, c.dataset) if c.compare else None,
        anchors=GPU_FULL_DATA_ANCHORS.get((c.dataset, resolution))
        if c.compare and c.stage == "table1" else None)


# how each stage kind (settings.STAGE_KINDS) is tabled
STAGE_RENDERERS = {"networks": networks_stage, "variants": variants_stage,
                   "ablation": ablation_stage, "methods": methods_stage}
# the kinds whose rows are also averaged over splits (summary_tables)
SUMMARISED_KINDS = ("methods", "variants")


# The paper's tables; any other stage gives its own `title` in the profile (else its name).
STAGE_TITLES = {"table1": "Table 1, leave-one-domain-out accuracy %",
                "table2": "Table 2, loss ablation, accuracy %",
                "table3": "Table 3, cross-architecture accuracy %",
                "table4": "Table 4, in-domain accuracy %"}


def paper_tables() -> dict[str, Table]:
    """The paper's Tables 1–4 as it prints them (paper_numbers, rows named as in the paper),
    to open the notebook that rebuilds them."""
    def value(values, key):
        return f"{values[key]:.1f}" if key in values else ""

    rows_named = [(row, name_of_label(row)) for row in PAPER_ROWS]
    tables = {}
    for dataset in PAPER_DATASETS:
        values = table1(dataset)
        splits = list(dict.fromkeys(split for _, split, _ in values))
        columns = [(split, ipc) for split in splits for ipc in (1, 10)]
        rows = [[row] + [value(values, (name, s, i)) for s, i in columns]
                for row, name in rows_named]
        rows.append(["Full dataset"] + [value(values, (FULL_DATA.name, s, 0)) if i == 1 else ""
                                         for s, i in columns])
        tables[f"table1_{dataset}"] = Table(
            f"Table 1 (paper), {dataset}: leave-one-domain-out accuracy %",
            ["Method"] + [f"{s} IPC {i}" for s, i in columns], rows)
    tables["table2"] = Table(
        "Table 2 (paper), PACS ACS→P: loss ablation, accuracy %",
        ["L_adm", "L_reg (masked)", "L_cons", "IPC 1", "IPC 10"],
        [["✓" if on else "-" for on in terms] + [f"{v:.1f}" for v in ipc_values]
         for terms, ipc_values in TABLE2.items()])
    per_net = table3()
    nets = list(next(iter(per_net.values())))
    tables["table3"] = Table(
        "Table 3 (paper), PACS ACS→P: cross-architecture accuracy %", ["IPC", "Method", *nets],
        [[str(ipc), method_label(method)] + [f"{accuracies[n]:.1f}" for n in nets]
         for (method, ipc), accuracies in per_net.items()])
    per_dataset = [table4(d) for d in PAPER_DATASETS]
    rows = [[row] + [value(v, (name, "in-domain", ipc)) for v in per_dataset for ipc in (1, 10)]
            for row, name in rows_named
            if any((name, "in-domain", 1) in v for v in per_dataset)]
    rows.append(["Full dataset"] + [value(v, (FULL_DATA.name, "in-domain", ipc))
                                    for v in per_dataset for ipc in (0, None)])
    tables["table4"] = Table("Table 4 (paper): in-domain accuracy %",
                             ["Method"] + [f"{d} IPC {i}" for d in PAPER_DATASETS
                                           for i in (1, 10)], rows)
    return tables


def figure_stage(profile) -> Stage | None:
    """The stage whose methods Fig. 1(a) and 1(c) compare: the first methods table (Table 1),
    else the first stage that holds several methods under their own names (a variants stage
    with a row of no overrides, e.g. pacs-dm's Table 1 over two pipeline seeds); None where
    the profile has neither."""
    stages = list(profile.stages.values())
    own_rows = [s for s in stages if s.kind == "variants" and len(s.methods) > 1
                and {} in s.variants.values()]
    return next((s for s in stages if s.kind == "methods"), None) or \
        next(iter(own_rows), None)


def stage_title(stage: str, settings: Stage) -> str:
    return settings.title or STAGE_TITLES.get(stage, stage)


def write_tables(profile_name: str, results_dir=None, figures_dir=None,
                 build=None) -> list[Path]:
    """Render the profile's tables (`build`: stage_tables by default, or summary_tables)
    as Markdown, CSV and LaTeX into figures/<profile>/, and print them."""
    runner = Runner(load_profile(profile_name), results_dir=results_dir, progress=False,
                    device="cpu")
    folder = Path(figures_dir or runner.figures_dir)
    paths = []
    for stem, table in (build or stage_tables)(runner).items():
        paths += table.write(folder, stem)
        print(table.markdown())
    return paths
