"""Command line: `python -m cadm_utils COMMAND ...`; input errors print one line, exit 2."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import CadmError, ConfigError
from .options import add_cell_options, add_profile_option, chosen_cells


def _runner(args, **options):
    """The profile's Runner for a command with --profile, --data-root and --results-dir."""
    from .experiment.runner import Runner
    from .profiles import load_profile

    return Runner(load_profile(args.profile), data_root=getattr(args, "data_root", None),
                  results_dir=args.results_dir, **{"progress": False, **options})


def data_summary(args) -> None:
    from .data import load_dataset, summary_lines

    data = load_dataset(args.dataset, args.data_root, args.resolution, progress=not args.quiet)
    print("\n".join(summary_lines(data)))


def download(args) -> None:
    from .data.download import LOADER_NAMES, download_dataset

    target = download_dataset(args.name, Path(args.data_root), args.origin, args.sha256,
                              progress=not args.quiet)
    print(f"{target} is in place: python -m cadm_utils data-summary --dataset "
          f"{LOADER_NAMES.get(args.name, args.name)} --data-root {args.data_root}")


def domain_gap(args) -> None:
    from dataclasses import replace

    from .experiment.gap import measure_domain_gap
    from .profiles import load_profile
    from .settings import Sections

    settings = load_profile(args.profile).sections.domain_gap
    given = {key: getattr(args, key) for key in ("width", "epochs", "seeds")
             if getattr(args, key) is not None}
    measure_domain_gap(args.dataset, args.data_root, args.resolution, replace(settings, **given),
                       args.out, args.targets.split(",") if args.targets else None)


def run_profile(args) -> None:
    from .experiment.pipeline import open_run, run_pipeline

    if args.time_budget is None:
        if args.export:
            raise ConfigError("--export goes with --time-budget")
        run_pipeline(args.profile, results_dir=args.results_dir, **chosen_cells(args))
        return
    from .experiment.budget import parse_duration, run_budgeted
    from .experiment.export import MIB, ExportLimits

    budget = parse_duration(args.time_budget)
    for option in ("export_part_mib", "export_max_mib"):
        value = getattr(args, option)
        if value is not None and value <= 0:
            raise ConfigError(f"--{option.replace('_', '-')} must be positive, got {value}")
    limits = ExportLimits(int(args.export_part_mib * MIB),
                          int(args.export_max_mib * MIB) if args.export_max_mib else None)
    runner, cells = open_run(args.profile, results_dir=args.results_dir, **chosen_cells(args))
    run_budgeted(runner, cells, budget, args.export, limits)


def merge(args) -> None:
    from .experiment.export import merge_export
    from .reporting.tables import write_tables

    runner = _runner(args, device="cpu")
    added, products = merge_export(runner, args.export)
    print(f"merged {added} records and {products} products into {runner.results_dir} and "
          f"{runner.run_dir}")
    write_tables(args.profile, results_dir=args.results_dir)


def check(args) -> None:
    from .experiment.pipeline import open_run

    from .experiment.cost import estimate_line
    from .profiles import setting_source

    runner, cells = open_run(args.profile, progress=False, **chosen_cells(args))
    profile = runner.profile
    print(f"profile {args.profile}: {len(cells)} cells to run or reuse")
    if getattr(args, "brief", False):  # the main job: the cell count only
        return
    for section, key in CHECKED_SETTINGS:
        file, source = setting_source(args.profile, section, key)
        where = f"  ({file}: {source})" if source else f"  ({file})" if file else ""
        print(f"  {section}.{key} = {getattr(getattr(profile.sections, section), key)}{where}")
    if profile.device != "cpu":
        print(estimate_line(profile, cells))


CHECKED_SETTINGS = (("pretrain", "epochs"), ("pretrain", "experts"), ("distill", "steps"),
                    ("distill", "real_per_class"), ("distill", "lr"), ("masking", "p_mask"),
                    ("masking", "lam"), ("evaluate", "epochs"))


def experts(args) -> None:
    from .experiment.pipeline import open_run, trained_experts

    runner, cells = open_run(args.profile, progress=False, **chosen_cells(args))
    rows = trained_experts(runner, cells)
    for row in rows:
        overrides = ", ".join(f"{k}={v}" for k, v in row["overrides"].items() if k != "seed")
        print(f"{row['split']}  {row['kind']}  seed {row['seed']}  "
              f"source val {row['source_val_acc']:.1f} %  {overrides or 'profile settings'}")
        for block in row["heads"] or []:
            print(f"    block {block['block'] + 1}: domain head {block['head_acc']:5.1f} %  "
                  f"majority {block['majority']:5.1f} %  linear probe {block['probe_acc']:5.1f} %"
                  f"  | Eq. 6 masks top/middle/bottom tenth {block['top']:.0f}/"
                  f"{block['middle']:.0f}/{block['bottom']:.0f} %, target damping "
                  f"{block['target_damping']:.3f}")
    print(f"{len(rows)} experts on disk")
    if not rows:
        print(_where_products_come_from(runner, "experts"))
    if args.interpolation:
        _print_interpolation_agreements(runner, cells)
    if args.write:
        from .reporting.tables import expert_heads_table

        table = expert_heads_table(rows, runner.profile.name)
        print(f"written: {', '.join(str(p) for p in table.write(runner.figures_dir, 'experts'))}")


def _print_interpolation_agreements(runner, cells) -> None:
    from .experiment.pipeline import interpolation_agreements

    print(f"share of each image's top {runner.sections.masking.p_mask:g} of channels by Eq. 5 "
          "on the trained expert that stays on top on the interpolated matching network "
          "(l: the random initialisation's share), and under the head weight W^y alone")
    for row in interpolation_agreements(runner, cells):
        overrides = ", ".join(f"{k}={v}" for k, v in row["overrides"].items() if k != "seed")
        print(f"{row['split']}  seed {row['seed']}  {overrides or 'profile settings'}")
        for block in row["blocks"]:
            shares = "  ".join(f"l {weight:g}: {share:.2f}"
                               for weight, share in block["interpolated"].items())
            print(f"    block {block['block'] + 1}: {shares}  | W^y alone: "
                  f"{block['head_weight_only']:.2f}")


def tables(args) -> None:
    from .reporting.tables import write_tables

    write_tables(args.profile, results_dir=args.results_dir, figures_dir=args.figures_dir)


def summaries(args) -> None:
    from .reporting.tables import summary_tables, write_tables

    write_tables(args.profile, results_dir=args.results_dir, figures_dir=args.figures_dir,
                 build=summary_tables)


def compare(args) -> None:
    from .experiment.records import current_records
    from .reporting.paired import chosen_ipc, interval_of, network_noise, paired_difference

    first, second = args.first.split(","), args.second.split(",")
    if len(first) != len(second):
        raise ConfigError(f"--first names {len(first)} rows and --second {len(second)}: "
                          "they pair row by row")
    if args.comparisons < 1:
        raise ConfigError(f"--comparisons is how many comparisons are read at once: 1 or more, "
                          f"not {args.comparisons}")
    if args.networks is not None and args.networks < 1:
        raise ConfigError(f"--networks is a count of evaluation networks a set: 1 or more, "
                          f"not {args.networks}")
    runner = _runner(args)
    records = _on_targets(current_records(runner), runner.profile, args.targets)
    ipc = chosen_ipc(records, first + second, args.ipc)
    for field, label in (("source_val_acc", "source val"), ("acc", "unseen domain")):
        units, interval = paired_difference(records, first, second, field, ipc)
        if not units:
            raise ConfigError(f"no split has current records of both '{args.first}' and "
                              f"'{args.second}' at IPC {ipc} in profile '{args.profile}'")
        _print_units(label, units, interval, "{:5.1f}", "{:+.1f}")
        if args.comparisons > 1:
            _print_family_interval(label, units, args.comparisons)
        if args.networks is not None:
            _print_network_noise(label, network_noise(records, first, second, args.networks,
                                                      field, ipc))
    if args.spread:
        from .reporting.analysis import spread_units

        units = spread_units(runner, first, second, ipc)
        if not units:
            print("Fig. 1(b) statistic: no split has both sets and CADM's expert on disk")
            return
        _print_units("Fig. 1(b)", units, interval_of(units), "{:.4f}", "{:+.4f}")


def _on_targets(records: list[dict], profile: dict, targets: str | None) -> list[dict]:
    """The records of the splits whose unseen domain is one of `targets` (all if None)."""
    if targets is None:
        return records
    from .data import split_name

    splits = {split_name(dataset, t) for dataset in profile.datasets
              for t in targets.split(",")}
    return [r for r in records if r.get("split") in splits]


def report(args) -> None:
    from .reporting import report as claims

    runner = _runner(args, device="cpu")
    if args.train_probes and not args.spread:
        raise ConfigError("--train-probes goes with --spread")
    extra = [_spread_row(runner, claims, args.train_probes)] if args.spread else []
    path = claims.write_report(runner, extra, args.figures_dir)
    print(path.read_text(), end="")
    print(f"written: {path}")


def export_sets(args) -> None:
    from .experiment.cells import plan_cells
    from .experiment.sets import export_sets as export

    runner = _runner(args, device="cpu")
    chosen = {k: v for k, v in chosen_cells(args).items() if k != "data_root"}
    cells = plan_cells(runner.profile, **chosen) if any(chosen.values()) else None
    entries = export(runner, Path(args.out), cells, args.form, args.seed)
    if not entries:  # nothing written, not even a manifest
        raise ConfigError(f"no distilled set of the chosen cells is on disk, so nothing was "
                          f"written. {_where_products_come_from(runner, 'synthetic sets')}")
    for entry in entries:
        print(f"{entry['file']}  set {entry['set_id']}  sha256 {entry['sha256'][:12]}")
    print(f"{len(entries)} sets and manifest.json in {args.out}")


def evaluate_set(args) -> None:
    import statistics

    from .experiment.sets import SetFile, evaluate_set as evaluate

    set_file = SetFile.load(Path(args.file))  # read once: its metadata, then its images
    info = set_file.info
    dataset = args.dataset or (info or {}).get("dataset")
    split = str((info or {}).get("split") or "")
    target = args.target or (split.split("→")[1] if "→" in split else None)
    if dataset is None or target is None:
        raise ConfigError(f"{args.file} names no split: give --dataset and --target")
    runner = _runner(args, progress=not args.quiet)
    out = Path(args.results_dir or runner.run_dir) / "evaluated_sets.jsonl"
    if info is None:
        print(f"note: {args.file} carries no split (not a file of this project's), so its "
              f"source domains are unknown: it may be scored on any target, here {target}")
    elif info.get("profile") not in (None, runner.profile.name):
        print(f"note: {args.file} was made under profile '{info['profile']}' and is "
              f"evaluated here under profile '{runner.profile.name}'")
    seeds = list(range(args.seeds)) if args.seeds else None
    records = evaluate(runner, set_file, dataset, target, seeds, out=out,
                       threads=args.threads)
    for r in records:
        print(f"seed {r['seed']}: unseen domain {r['acc']:.1f} %, source val "
              f"{r['source_val_acc']:.1f} %")
    print(f"{records[0]['split']}: unseen domain {statistics.fmean(r['acc'] for r in records):.1f}"
          f" % over {len(records)} seeds; records in {out}")


def _where_products_come_from(runner, what: str) -> str:
    """The hint printed when none of a profile's products is on disk."""
    name = runner.profile.name
    return (f"The {what} of profile {name} are made by its run and cached in {runner.run_dir}/ "
            f"(not in the repository): ./run_all.sh --profile {name} [--data-root DIR], or "
            f"python -m cadm_utils run --profile {name} for chosen cells.")


def _spread_row(runner, claims, train_probes: bool = False) -> list[str]:
    from .reporting.analysis import SPREAD_FILE, recorded_spread_units

    settings = runner.sections.analysis
    mmd, cadm = claims.paired_rows(runner.profile, "mmd", "cadm")
    units = recorded_spread_units(runner, list(mmd), list(cadm), settings.ipc, train_probes)
    if not units:  # rather than a "not measured" row over one that was measured
        raise ConfigError(f"--spread: no split has Table 1's MMD and CADM sets and CADM's "
                          f"expert on disk under {runner.run_dir}/, nor a unit of the current "
                          f"sets in {runner.results_dir / SPREAD_FILE}: make them with python "
                          f"-m cadm_utils run --profile {runner.profile.name} --stages table1 "
                          "(then --train-probes where the sets came from sets/), or report "
                          "without --spread")
    return claims.spread_row(units, settings.dataset, settings.ipc)


def _print_family_interval(label: str, units: list[tuple], comparisons: int) -> None:
    from .reporting.paired import interval_of

    level = 1 - 0.05 / comparisons
    interval = interval_of(units, level)
    print(f"{label}: read as one of {comparisons} comparisons (Bonferroni), "
          f"{100 * level:.1f} % CI [{interval['low']:+.1f}, {interval['high']:+.1f}]")


def _print_network_noise(label: str, noise: dict) -> None:
    if noise["n"] < 2:
        print(f"{label}: fewer than 2 units with 2 or more networks a set; no noise to read")
        return
    print(f"{label}: the evaluation networks make {100 * noise['network_share']:.0f} % of the "
          f"units' variance ({noise['networks']:.1f} networks a set); half-width "
          f"±{noise['half_width']:.1f} now, ±{noise['projected_half_width']:.1f} with "
          f"{noise['projected_networks']} networks a set (n = {noise['n']})")


def _print_units(label: str, units: list[tuple], interval: dict, value: str,
                 difference: str) -> None:
    for split, a, x, b, y in units:
        print(f"  {label:<13} {split:<8} {a} {value.format(x)}  {b} {value.format(y)}  "
              f"difference {difference.format(x - y)}")
    low = high = "n/a"
    if interval["n"] > 1:
        low, high = difference.format(interval["low"]), difference.format(interval["high"])
    print(f"{label}: first − second = {difference.format(interval['mean'])}, 95 % CI "
          f"[{low}, {high}], n = {interval['n']} (split × set, evaluation seeds averaged)")


def add_profile_options(parser: argparse.ArgumentParser) -> None:
    """--profile, --data-root and --results-dir: what `_runner` reads."""
    add_profile_option(parser)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--results-dir", default=None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cadm_utils", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    summary = commands.add_parser("data-summary", help="images per domain and class, split sizes")
    summary.add_argument("--dataset", required=True)
    summary.add_argument("--data-root", default=None)
    summary.add_argument("--resolution", type=int, default=None)
    summary.add_argument("--quiet", action="store_true", help="no progress bar")
    summary.set_defaults(func=data_summary)

    fetcher = commands.add_parser("download", help="a real data set into the layout the loaders "
                                                   "read (DomainBed's sources), resumable")
    fetcher.add_argument("name", help="pacs, vlcs, officehome or domainnet")
    fetcher.add_argument("--data-root", required=True, help="folder that will hold PACS/ etc.")
    fetcher.add_argument("--from", dest="origin", default=None,
                         help="a mirror URL or an archive already on disk")
    fetcher.add_argument("--sha256", default=None, help="the archive's expected SHA-256")
    fetcher.add_argument("--quiet", action="store_true", help="no progress bar")
    fetcher.set_defaults(func=download)

    gap = commands.add_parser("domain-gap", help="source-held-out vs unseen-domain accuracy")
    gap.add_argument("--dataset", default="embedded")
    gap.add_argument("--data-root", default=None)
    gap.add_argument("--resolution", type=int, default=None)
    add_profile_option(gap)
    gap.add_argument("--width", type=int, default=None,
                     help="default: the profile's domain_gap.width")
    gap.add_argument("--epochs", type=int, default=None,
                     help="default: the profile's domain_gap.epochs")
    gap.add_argument("--seeds", type=int, default=None,
                     help="default: the profile's domain_gap.seeds")
    gap.add_argument("--out", default=None, help="JSON-lines file for the records")
    gap.add_argument("--targets", default=None, help="comma-separated, default: every domain")
    gap.set_defaults(func=domain_gap)

    run = commands.add_parser("run", help="pretrain, distill and evaluate every cell of a profile")
    add_cell_options(run)
    run.add_argument("--results-dir", default=None)
    run.add_argument("--time-budget", default=None,
                     help="e.g. 11m: run whole cells in priority order that fit this time")
    run.add_argument("--export", default=None,
                     help="with --time-budget: folder for the new records and products, "
                          "rewritten after every finished cell")
    run.add_argument("--export-part-mib", type=float, default=16.0,
                     help="with --export: the export's parts have at most this size (MiB)")
    run.add_argument("--export-max-mib", type=float, default=None,
                     help="with --export: products beyond this total are left out (MiB; "
                          "default: no limit)")
    run.set_defaults(func=run_profile)

    merger = commands.add_parser("merge", help="bring a budgeted run's export into results/ "
                                               "and runs/, then render the tables")
    add_profile_option(merger, default="gpu-short")
    merger.add_argument("--export", required=True, help="folder with the export parts")
    merger.add_argument("--results-dir", default=None)
    merger.set_defaults(func=merge)

    checker = commands.add_parser("check", help="validate a profile and its cells, run nothing")
    add_cell_options(checker)
    checker.set_defaults(func=check)

    expert = commands.add_parser("experts", help="the trained experts of the chosen cells, "
                                                 "their source val accuracy and, for CADM's, "
                                                 "each block's domain head against the "
                                                 "majority share and a linear probe; trains "
                                                 "nothing")
    add_cell_options(expert)
    expert.add_argument("--interpolation", action="store_true",
                        help="also show, for CADM's experts, whether NCFM's interpolation "
                             "changes the channels Eq. 5 ranks highest")
    expert.add_argument("--write", action="store_true",
                        help="also write the table of CADM's experts to "
                             "figures/<profile>/experts.{md,csv,tex}")
    expert.set_defaults(func=experts)

    table = commands.add_parser("tables", help="render the profile's tables from its records")
    add_profile_option(table)
    table.add_argument("--results-dir", default=None)
    table.add_argument("--figures-dir", default=None)
    table.set_defaults(func=tables)

    summarize = commands.add_parser("summary", help="mean over splits of Tables 1 and 4, on "
                                                    "the unseen domain and source val images")
    add_profile_option(summarize)
    summarize.add_argument("--results-dir", default=None)
    summarize.add_argument("--figures-dir", default=None)
    summarize.set_defaults(func=summaries)

    paired = commands.add_parser("compare", help="paired difference of two methods' rows over "
                                                 "split × set, with its 95 %% t interval")
    add_profile_options(paired)
    paired.add_argument("--first", required=True,
                        help="comma-separated method rows, e.g. cadm,cadm{seed1}")
    paired.add_argument("--second", required=True, help="as many rows, paired in order")
    paired.add_argument("--ipc", type=int, default=None,
                        help="the IPC of the sets (needed when the rows have several)")
    paired.add_argument("--targets", default=None,
                        help="only the splits with these unseen domains (comma-separated "
                             "letters or names), e.g. to read two rows on the splits a third "
                             "has so far")
    paired.add_argument("--comparisons", type=int, default=1, metavar="K",
                        help="also the interval at level 1 − 0.05/K, for a difference read "
                             "together with K − 1 others (Bonferroni)")
    paired.add_argument("--networks", type=int, default=None, metavar="K",
                        help="also the evaluation networks' share of the units' variance and "
                             "the interval the same units would have with K networks a set")
    paired.add_argument("--spread", action="store_true",
                        help="also Fig. 1(b)'s statistic of each pair of sets on disk (mean "
                             "variance across domains of the last block's Eq. 5 scores, "
                             "read by the CADM row's heads; needs --data-root for real data)")
    paired.set_defaults(func=compare)

    reporter = commands.add_parser("report", help="the paper's claims against the profile's "
                                                  "records: paired differences, 95 %% "
                                                  "intervals, verdicts; writes "
                                                  "figures/<profile>/report.md")
    add_profile_options(reporter)
    reporter.add_argument("--figures-dir", default=None)
    reporter.add_argument("--spread", action="store_true",
                          help="add Fig. 1(b)'s statistic of Table 1's MMD and CADM sets: "
                               "read from results/<profile>/spread.jsonl (needs no data); a "
                               "unit not recorded there for the current sets is measured on "
                               "the sets on disk (needs --data-root for real data) and recorded")
    reporter.add_argument("--train-probes", action="store_true",
                          help="with --spread: train CADM's expert where a split's sets are on "
                               "disk without it (sets taken from sets/ come without experts)")
    reporter.set_defaults(func=report)

    exporter = commands.add_parser("export-sets", help="write the profile's distilled sets on "
                                                       "disk as <method>/<dataset>/<split>/"
                                                       "IPC<n>.pt (DM's and DC-BENCH's form) "
                                                       "with manifest.json")
    add_cell_options(exporter)
    exporter.add_argument("--results-dir", default=None)
    exporter.add_argument("--out", required=True)
    exporter.add_argument("--form", default="dm",
                          help="dm: decoded images in DM's form (default); stored: the "
                               "multi-formation images as optimised, a quarter of the size")
    exporter.add_argument("--seed", type=int, default=None,
                          help="only the sets made with this pipeline seed (default: all)")
    exporter.set_defaults(func=export_sets)

    evaluator = commands.add_parser("evaluate-set", help="evaluate a set file (this project's, "
                                                         "DM's or any (images, labels) pair) "
                                                         "with the profile's protocol")
    evaluator.add_argument("file")
    add_profile_options(evaluator)
    evaluator.add_argument("--dataset", default=None,
                           help="default: the data set the file names (this project's files)")
    evaluator.add_argument("--target", default=None,
                           help="the unseen domain (default: the one the file was made for; "
                                "a domain it was made from is refused)")
    evaluator.add_argument("--seeds", type=int, default=None,
                           help="evaluation seeds 0..N-1 (default: the profile's)")
    evaluator.add_argument("--threads", type=int, default=None,
                           help="CPU threads per network (default: one worker's share, as in "
                                "the profile's run; the trained network depends on it)")
    evaluator.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluator.set_defaults(func=evaluate_set)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except CadmError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
