"""An expert's pretraining rate, optimiser (pretrain.protocol) and reversal weight
(model.grl_weight), chosen on the source domains' held-out images: the expert of a method on
one split at each setting (and each of the first N pool seeds), with its accuracy on the
source validation images, its wall time and, for an expert with domain heads, each block's
head accuracy, majority share and linear probe, Eq. 6's selectivity and the target damping
(method/mechanism.py); with --refit, a second row per expert with its heads refitted on the
frozen backbone (what `pretrain.heads: refit` makes of the same training, computed here
without training again). Several pool seeds per setting (--experts) show how often an expert fails to
train. The target domain is never evaluated. Experts are made and cached exactly as the
pipeline makes them (the profile with pretrain.lr and pretrain.protocol overridden), so the
run that uses a chosen setting reuses them.

    python benchmarks/tune_expert.py --profile pacs-cpu --data-root DIR --target C \
        --method cadm --lrs 0.02,0.01,0.005 [--protocols dm,domaindrop] [--experts 2]
        [--grl-weights 0.25,0] [--refit]
        [--run-dir DIR] [--out results/tuning/FILE.jsonl]
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

from cadm_utils.errors import CadmError, ConfigError
from cadm_utils.experiment.runner import Runner
from cadm_utils.method.mechanism import refit_heads
from cadm_utils.method.methods import get_method
from cadm_utils.profiles import load_profile
from cadm_utils.runtime import git_commit
from cadm_utils.method.pretraining import PROTOCOL_CHOICES
from cadm_utils.experiment.products import expert, expert_heads, mechanism


def parse_rates(text: str, option: str = "--lrs", zero: bool = False) -> list[float]:
    try:
        rates = [float(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError(f"{option} must be numbers separated by commas, got '{text}'") from None
    if not rates or min(rates) < 0 or (min(rates) == 0 and not zero):
        raise ConfigError(f"{option} must be {'non-negative' if zero else 'positive'}, "
                          f"got '{text}'")
    return rates


def parse_protocols(text: str) -> list[str]:
    protocols = text.split(",")
    known = PROTOCOL_CHOICES
    if not all(p in known for p in protocols):
        raise ConfigError(f"--protocols must be among {', '.join(known)}, got '{text}'")
    return protocols


def expert_rows(runner: Runner, dataset: str, target: str, method, rates, experts: int,
                protocols=("dm",), grl_weights=(None,), refit: bool = False):
    task = runner.task(dataset, target)
    for protocol, rate, grl in itertools.product(protocols, rates, grl_weights):
        overrides = (("pretrain.lr", rate), ("pretrain.protocol", protocol)) + \
            ((("model.grl_weight", grl),) if grl is not None else ())
        variant = runner.variant(overrides)
        for index in range(experts):
            model, info = expert(variant, dataset, task, method, index)
            heads = expert_heads(variant, dataset, task, method, index)
            row = {"split": task.name, "kind": method.expert_kind, "lr": rate,
                   "protocol": protocol, "grl_weight": variant.sections.model.grl_weight,
                   "index": index, "source_val_acc": round(info["source_val_acc"], 1),
                   "wall_s": round(info["wall_s"], 1), "expert_id": info["expert_id"]}
            if heads is None:
                yield row
                continue
            yield {**row, "heads_setting": "trained", "heads": heads}
            if refit:
                refit_heads(model, task)
                yield {**row, "heads_setting": "refit", "heads": mechanism(variant, model, task)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", required=True)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--dataset", default=None, help="default: the profile's first")
    parser.add_argument("--target", required=True)
    parser.add_argument("--method", default="cadm")
    parser.add_argument("--lrs", required=True)
    parser.add_argument("--protocols", default="dm", help="pretrain.protocol values")
    parser.add_argument("--experts", type=int, default=1, help="pool seeds per rate")
    parser.add_argument("--grl-weights", default=None,
                        help="model.grl_weight values (default: the profile's)")
    parser.add_argument("--refit", action="store_true",
                        help="also each expert with its domain heads refitted")
    parser.add_argument("--run-dir", default=None, help="product cache (default runs/<profile>)")
    parser.add_argument("--out", default=None, help="append the rows to this JSON-lines file")
    args = parser.parse_args()
    try:
        rates, method = parse_rates(args.lrs), get_method(args.method)
        grl_weights = parse_rates(args.grl_weights, "--grl-weights", zero=True) \
            if args.grl_weights else (None,)
        protocols = parse_protocols(args.protocols)
        runner = Runner(load_profile(args.profile), data_root=args.data_root,
                        run_dir=args.run_dir)
        dataset = args.dataset or next(iter(runner.profile.datasets))
        if dataset not in runner.profile.datasets or args.experts < 1:
            raise ConfigError(f"data set '{dataset}' is not in the profile or --experts < 1")
        runner.task(dataset, args.target)  # checks the data root and the domain first
    except CadmError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    commit = git_commit()
    for row in expert_rows(runner, dataset, args.target, method, rates, args.experts,
                           protocols, grl_weights, args.refit):
        print(json.dumps(row), flush=True)
        if args.out:
            path = Path(args.out)
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a") as handle:
                handle.write(json.dumps({**row, "profile": runner.profile.name,
                                         "commit": commit}) + "\n")


if __name__ == "__main__":
    main()
