"""The reproduction report: one row per claim of the paper, with the paper's difference,
ours over paired units (split × distilled set, evaluation seeds averaged inside a unit), its
95 % t interval, n and a verdict from one rule (VERDICT_RULE)."""
from __future__ import annotations

import statistics
from dataclasses import dataclass, replace
from pathlib import Path

from ..data import split_name
from ..experiment.records import current_records, load_records, matching
from ..method.methods import PROPOSED, REFERENCE, ablation_variant, method_label
from . import paper_numbers
from .paired import interval_of, network_noise, network_sd_units, paired_difference
from .tables import Table

VERDICT_RULE = ("*supported*: the 95 % interval of our difference lies above 0; *not supported "
                "at this scale*: it lies wholly below the paper's difference (below 0 where the "
                "paper prints no number); *inconclusive*: otherwise, or fewer than 2 units; "
                "*not measured*: no paired records")


def verdict(interval: dict, paper: float | None) -> str:
    """The report's rule (VERDICT_RULE) for a claim that the first row is above the second."""
    if interval.get("n", 0) == 0:
        return "not measured"
    if interval["n"] < 2:
        return "inconclusive"
    if interval["low"] > 0:
        return "supported"
    if interval["high"] < (paper if paper is not None else 0.0):
        return "not supported at this scale"
    return "inconclusive"


@dataclass(frozen=True)
class Claim:
    """"`first` above `second`" on one data set at one IPC: the i-th rows of the two lists
    are one distilled set each (the same pipeline seed)."""

    label: str
    dataset: str
    ipc: int
    first: tuple[str, ...]
    second: tuple[str, ...]
    splits: tuple[str, ...]  # the splits whose records count (Table 4: "in-domain")
    paper: dict  # split -> the paper's first − second there
    net: str = "resnet18"
    steps: int | None = None  # the distillation length of the trend's claims


def _claim_records(records: list[dict], claim: Claim) -> list[dict]:
    """The records of the claim's data set on its splits."""
    return [r for r in matching(records, dataset=claim.dataset) if r.get("split") in claim.splits]


def claim_units(records: list[dict], claim: Claim, field: str = "acc") -> tuple[list, dict]:
    """The claim's paired units of `field` and their interval (paired.paired_difference)."""
    return paired_difference(_claim_records(records, claim), list(claim.first),
                             list(claim.second), field, claim.ipc, claim.net)


def paper_mean(claim: Claim, units: list[tuple]) -> float | None:
    """The paper's difference averaged over the splits of `units` (all of the claim's where
    none is measured); None unless the paper prints every one of them."""
    splits = sorted({u[0] for u in units} or claim.paper)
    paper = [claim.paper[s] for s in splits if s in claim.paper]
    return statistics.fmean(paper) if paper and len(paper) == len(splits) else None


def claim_row(records: list[dict], claim: Claim) -> list[str]:
    """The report's row of one claim: paper, ours with interval, n, source val, verdict."""
    unseen, interval = claim_units(records, claim)
    _, val_interval = claim_units(records, claim, "source_val_acc")
    paper = paper_mean(claim, unseen)
    return [claim.label, claim.dataset, str(claim.ipc or "–"), _signed(paper),
            _with_interval(interval), str(interval["n"]), _with_interval(val_interval),
            verdict(interval, paper)]


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.1f}"


def _with_interval(interval: dict) -> str:
    if interval.get("n", 0) == 0:
        return "–"
    if interval["n"] < 2:
        return f"{interval['mean']:+.1f}"
    return f"{interval['mean']:+.1f} [{interval['low']:+.1f}, {interval['high']:+.1f}]"


# ----------------------------------------------------------------------------- claims
def seed_rows(profile, method: str, fixed: dict | None = None) -> dict[int, str]:
    """{pipeline seed: row} of a method's rows whose overrides, `seed` aside, are `fixed`
    (default none: its own cells and its re-seeded copies) anywhere in the profile."""
    fixed, rows = fixed or {}, {}
    for stage in profile.stages.values():
        if method not in (stage.methods or ()) or stage.kind == "ablation":
            continue
        for row, overrides in (stage.variants or {"": {}}).items():
            if _without_seed(overrides) == fixed:
                name = f"{method}{{{row}}}" if overrides else method
                rows.setdefault(overrides.get("seed", profile.seed), name)
    return rows


def _without_seed(overrides: dict) -> dict:
    return {k: v for k, v in overrides.items() if k != "seed"}


# the trend's axis: the distillation length, a row's `distill.steps` (the profile's own by default)
LENGTH = "distill.steps"
# a distilling method's set as initialised (the decoded real tiles, never optimised)
INITIALISATION = {LENGTH: 0}


def initialisation_claims(profile) -> list[Claim]:
    """MMD, and CADM, above their initialisation: each method's set against the
    initialisation row (MMD's rows at distill.steps 0) of the same pipeline seed, so a reader
    sees whether the testbed can resolve a claim about the matching objective at all."""
    initial = seed_rows(profile, REFERENCE, INITIALISATION)
    stages = [s for s in profile.stages.values() if REFERENCE in (s.methods or ())
              and INITIALISATION in map(_without_seed, (s.variants or {}).values())]
    claims = []
    for stage in stages[:1]:  # the first stage with initialisation rows
        for dataset in stage.datasets:
            for ipc in stage.ipcs:
                for method in (REFERENCE, PROPOSED):
                    own = seed_rows(profile, method)
                    seeds = sorted(set(own) & set(initial))
                    claims.append(Claim(
                        f"{method_label(method)} above its initialisation", dataset, ipc,
                        tuple(own[s] for s in seeds), tuple(initial[s] for s in seeds),
                        tuple(_splits(profile, stage, dataset)), {}))
    return claims


# MMD − init (points, unseen domain) at which a testbed resolves claims about the matching
# objective, with the paired interval above 0
RESOLVING_GAP = 5.0
TREND_FIGURE = "trend_length"  # figures/<profile>/trend_length.png, drawn by 06_tables


def trend_claims(profile) -> list[Claim]:
    """CADM above MMD and MMD above its initialisation at each distillation length the
    profile has rows of both methods for (its own `distill.steps`, and each length that
    variant rows set with nothing else but a seed), paired by pipeline seed; none when it has
    one length only."""
    default = profile.sections.distill.steps
    lengths = sorted({default} | {
        overrides[LENGTH] for stage in profile.stages.values()
        for overrides in (stage.variants or {}).values()
        if set(_without_seed(overrides)) == {LENGTH} and overrides[LENGTH] > 0})
    initial = seed_rows(profile, REFERENCE, INITIALISATION)
    stage = next((s for s in profile.stages.values() if REFERENCE in (s.methods or ())
                  and PROPOSED in s.methods), None)
    if len(lengths) < 2 or stage is None:
        return []
    claims = []
    for dataset in stage.datasets:
        splits = tuple(_splits(profile, stage, dataset))
        paper = paper_numbers.table1(dataset)
        for ipc in stage.ipcs:
            for length in lengths:
                fixed = {} if length == default else {LENGTH: length}
                ours = seed_rows(profile, PROPOSED, fixed)
                theirs = seed_rows(profile, REFERENCE, fixed)
                both = sorted(set(ours) & set(theirs))
                started = sorted(set(theirs) & set(initial))
                claims += [
                    Claim(f"{method_label(PROPOSED)} above {method_label(REFERENCE)}, "
                          f"{length} distillation steps", dataset, ipc,
                          tuple(ours[s] for s in both), tuple(theirs[s] for s in both),
                          splits, paper_difference(paper, PROPOSED, REFERENCE, splits, ipc),
                          steps=length),
                    Claim(f"{method_label(REFERENCE)} above its initialisation, {length} "
                          "distillation steps", dataset, ipc,
                          tuple(theirs[s] for s in started), tuple(initial[s] for s in started),
                          splits, {}, steps=length)]
    return claims


def trend_points(records: list[dict], profile) -> list[dict]:
    """The trend figure's points: per trend claim, its comparison (the label before the
    length), length, paired interval (n, mean, low, high) and the paper's difference (None
    where the paper prints none)."""
    points = []
    for claim in trend_claims(profile):
        units, interval = claim_units(records, claim)
        points.append({"comparison": claim.label.rsplit(",", 1)[0], "steps": claim.steps,
                       "dataset": claim.dataset, "ipc": claim.ipc, **interval,
                       "paper": paper_mean(claim, units)})
    return points


def paired_rows(profile, first: str, second: str) -> tuple[tuple, tuple]:
    """The two methods' rows at the pipeline seeds both have, in seed order."""
    ours, theirs = seed_rows(profile, first), seed_rows(profile, second)
    seeds = sorted(set(ours) & set(theirs))
    return tuple(ours[s] for s in seeds), tuple(theirs[s] for s in seeds)


def paper_difference(paper: dict, first: str, second: str, splits, ipc: int) -> dict:
    """split -> the paper's `first` − `second` at `ipc`, where it prints both."""
    return {s: paper[(first, s, ipc)] - paper[(second, s, ipc)] for s in splits
            if (first, s, ipc) in paper and (second, s, ipc) in paper}


PAPER_TABLE_NAMES = {"table1": "Table 1", "table4": "Table 4"}  # the methods tables' stages


def method_claims(profile, stage: str) -> list[Claim]:
    """Table 1 or 4: the proposed method above each other method of the stage, per data set
    and IPC."""
    settings = profile.stages[stage]
    others = [m for m in settings.methods if m != PROPOSED]
    if PROPOSED not in settings.methods or stage not in PAPER_TABLE_NAMES:
        return []
    claims = []
    for dataset in settings.datasets:
        paper = paper_numbers.paper_values(stage, dataset)
        splits = _splits(profile, settings, dataset)
        for ipc in settings.ipcs:
            for other in others:
                first, second = paired_rows(profile, PROPOSED, other)
                difference = paper_difference(paper, PROPOSED, other, splits, ipc)
                claims.append(Claim(f"{PAPER_TABLE_NAMES[stage]}: {method_label(PROPOSED)} "
                                    f"above {other}", dataset,
                                    ipc, first,
                                    second, tuple(splits), difference))
    return claims


def ablation_claims(profile, stage: str) -> list[Claim]:
    """Table 2: each loss term adds (the paper's rows, each against the row without it)."""
    settings = profile.stages[stage]
    steps = (((True, False, False), (False, False, False), "L_adm adds (to L_mmd + L_reg)"),
             ((False, True, False), (False, False, False), "masked L_reg adds"),
             ((False, True, True), (False, True, False), "L_cons adds"),
             ((True, True, True), (False, True, True), "L_adm adds (to masked L_reg + L_cons)"))
    claims = []
    for dataset in settings.datasets:
        split = _splits(profile, settings, dataset)[0]
        for ipc in settings.ipcs:
            column = (1, 10).index(ipc) if ipc in (1, 10) else None
            for with_term, without, label in steps:
                paper = {} if column is None or dataset != "pacs" else {
                    split: paper_numbers.TABLE2[with_term][column]
                    - paper_numbers.TABLE2[without][column]}
                claims.append(Claim(f"Table 2: {label}", dataset, ipc,
                                    (ablation_variant(*with_term).name,),
                                    (ablation_variant(*without).name,), (split,), paper))
    return claims


def network_claims(profile, stage: str) -> list[Claim]:
    """Table 3: the proposed method above the reference on each evaluation network."""
    settings = profile.stages[stage]
    claims = []
    for dataset in settings.datasets:
        split = _splits(profile, settings, dataset)[0]
        for ipc in settings.ipcs:
            for net in settings.nets:
                paper = paper_numbers.table3()
                ours, theirs = (PROPOSED, ipc), (REFERENCE, ipc)
                difference = {split: paper[ours][net] - paper[theirs][net]} \
                    if dataset == "pacs" and ours in paper and net in paper[ours] else {}
                claims.append(Claim(
                    f"Table 3: {method_label(PROPOSED)} above {method_label(REFERENCE)} on {net}",
                    dataset, ipc, (PROPOSED,), (REFERENCE,), (split,), difference, net))
    return claims


def stated_claims(profile, stage: str) -> list[Claim]:
    """A stage's own `claims` (first rows above second rows), per data set and IPC; the
    paper's difference is Table 1's between the rows' base methods where it has both (none
    between two rows of one method, nor against an initialisation row: the paper has none)."""
    settings = profile.stages[stage]
    initial = initialisation_rows(profile)
    claims = []
    for dataset in settings.datasets:
        paper = paper_numbers.table1(dataset)
        splits = _splits(profile, settings, dataset)
        for ipc in settings.ipcs:
            for stated in settings.claims:
                a, b = (_base(stated[side][0]) for side in ("first", "second"))
                in_paper = a != b and not initial & {*stated["first"], *stated["second"]}
                difference = paper_difference(paper, a, b, splits, ipc) if in_paper else {}
                claims.append(Claim(stated["label"], dataset, ipc, tuple(stated["first"]),
                                    tuple(stated["second"]), tuple(splits), difference))
    return claims


def initialisation_rows(profile) -> set[str]:
    """Every row whose overrides set distill.steps to 0 (an initialisation, evaluated as
    decoded), whatever else they set (an evaluation protocol, a seed)."""
    return {f"{method}{{{row}}}" for stage in profile.stages.values()
            for row, overrides in (stage.variants or {}).items()
            if overrides.get(LENGTH) == 0 for method in stage.methods or ()}


def _base(row: str) -> str:
    return row.split("{", 1)[0]


# the paper's claims that each stage kind (settings.STAGE_KINDS) carries; every stage also
# carries its own `claims` (stated_claims)
CLAIMS_BY_KIND = {"methods": method_claims, "ablation": ablation_claims,
                  "networks": network_claims}


def profile_claims(profile) -> list[Claim]:
    claims = []
    for name, stage in profile.stages.items():
        claims += stated_claims(profile, name)
        kind_claims = CLAIMS_BY_KIND.get(stage.kind)
        claims += kind_claims(profile, name) if kind_claims else []
    # whether the testbed sees matching first; the trend's lengths other than the profile's
    # own (whose claims the stages carry) last
    default = profile.sections.distill.steps
    return initialisation_claims(profile) + claims + [
        c for c in trend_claims(profile) if c.steps != default]


def _splits(profile, stage, dataset: str) -> list[str]:
    targets = stage.targets_of(profile.datasets, dataset)
    return ["in-domain" if t == "in-domain" else split_name(dataset, t) for t in targets]


# --------------------------------------------------------- headline claims, two evaluations
def headline_claims(profile) -> list[Claim]:
    """The claims a reader looks at first: MMD and CADM above their initialisation, then the
    first stage's own claims (Table 1's CADM above MMD)."""
    first_stage = next(iter(profile.stages))
    return initialisation_claims(profile) + stated_claims(profile, first_stage)


def row_overrides(profile) -> dict[str, dict]:
    """{row name: its setting overrides} of every row of the profile's stages."""
    rows = {}
    for stage in profile.stages.values():
        for method in stage.methods or ():
            for row, overrides in (stage.variants or {"": {}}).items():
                rows.setdefault(f"{method}{{{row}}}" if overrides else method, dict(overrides))
    return rows


def counterpart(profile, row: str, extra: dict) -> str | None:
    """The row of the same method whose overrides are `row`'s plus `extra` (None if the
    profile has none)."""
    rows = row_overrides(profile)
    wanted = {**rows.get(row, {}), **extra}
    return next((name for name, overrides in rows.items()
                 if _base(name) == _base(row) and overrides == wanted), None)


def under_second_evaluation(profile, claim: Claim) -> Claim | None:
    """The claim on the rows that read the same sets with `second_evaluation`."""
    extra = profile.second_evaluation
    first = [counterpart(profile, row, extra) for row in claim.first]
    second = [counterpart(profile, row, extra) for row in claim.second]
    if not extra or None in first + second:
        return None
    return Claim(claim.label, claim.dataset, claim.ipc, tuple(first), tuple(second),
                 claim.splits, claim.paper, claim.net, claim.steps)


def evaluations_agree(one: dict, other: dict) -> str:
    """Whether two intervals of one claim point the same way: "opposite sides of 0" (flagged)
    where one lies above 0 and the other below; else where each stands."""
    if one.get("n", 0) < 2 or other.get("n", 0) < 2:
        return "–"
    sides = [("above 0" if i["low"] > 0 else "below 0" if i["high"] < 0 else "spans 0")
             for i in (one, other)]
    if {"above 0", "below 0"} == set(sides):
        return "**opposite sides of 0**"
    return f"both {sides[0]}" if sides[0] == sides[1] else f"{sides[0]} / {sides[1]}"


def _on_splits_of(records: list[dict], claim: Claim, units: list[tuple]) -> dict:
    """The claim's interval on `records`, over the splits that `units` cover (all of the
    claim's where `units` is empty), so that two evaluations are read on the same units."""
    splits = tuple(sorted({unit[0] for unit in units})) or claim.splits
    return claim_units(records, replace(claim, splits=splits))[1]


def _with_n(interval: dict) -> str:
    if interval.get("n", 0) == 0:
        return "not measured"
    half = "" if interval["n"] < 2 else f", ±{(interval['high'] - interval['low']) / 2:.1f}"
    return f"{_with_interval(interval)} (n {interval['n']}{half})"


HEADLINE_FILE = "headline.md"  # figures/<profile>/: the evaluations table alone
EVALUATIONS_HEADER = ["claim", "paper", "DM's evaluation", "networks' share", "source val",
                      "second evaluation", "source val", "the two evaluations", "earlier records"]


def network_share(records: list[dict], claim: Claim) -> str:
    """The evaluation networks' share of the claim's unit variance (paired.network_noise),
    "–" with fewer than 2 units of 2 or more networks a set."""
    noise = network_noise(_claim_records(records, claim), list(claim.first),
                          list(claim.second), networks=1, ipc=claim.ipc, net=claim.net)
    if noise["n"] < 2:
        return "–"
    return f"{100 * noise['network_share']:.0f} % ({noise['networks']:.0f} a set)"


def evaluations_table(runner, earlier_runner=None) -> Table | None:
    """Each headline claim under the profile's evaluation and its `second_evaluation`
    (unseen domain and source val, interval, n, half-width; the networks' share of the
    variance under the first), whether the two point the same
    way, and the same claim on the `earlier_evaluation` profile's records. None for a
    profile with neither."""
    profile = runner.profile
    if not profile.second_evaluation and earlier_runner is None:
        return None
    records = current_records(runner)
    earlier = current_records(earlier_runner) if earlier_runner is not None else []
    rows = []
    for claim in headline_claims(profile):
        units, unseen = claim_units(records, claim)
        other = under_second_evaluation(profile, claim)
        other_unseen = claim_units(records, other)[1] if other else {"n": 0}
        rows.append([claim.label, _signed(paper_mean(claim, units)),
                     _with_n(unseen), network_share(records, claim),
                     _with_n(claim_units(records, claim, "source_val_acc")[1]),
                     _with_n(other_unseen),
                     _with_n(claim_units(records, other, "source_val_acc")[1]) if other
                     else "not measured",
                     evaluations_agree(unseen, other_unseen),
                     _with_n(_on_splits_of(earlier, claim, units)) if earlier_runner
                     else "–"])
    second = ", ".join(f"{k} {v}" for k, v in profile.second_evaluation.items()) or "none"
    earlier_name = profile.earlier_evaluation or "none"
    return Table(f"The headline claims under both evaluations of {profile.name} (second: "
                 f"{second}) and on the earlier records ({earlier_name}, on the same splits as "
                 "DM's evaluation here); unseen-domain accuracy % unless marked, paired over "
                 "split × distilled set",
                 EVALUATIONS_HEADER, rows)


# ------------------------------------------------------------ the evaluation's ablation
SOURCE_VAL_MARGIN = 1.0  # points a setting's mean source-val accuracy may fall (the length rule's)
CHOICE_RULE = ("a setting replaces the profile's own evaluation (the reference) only where, "
               "over every split × pipeline seed the stage names, its networks spread less on "
               "source val (the paired interval of the networks' standard deviations, MMD's "
               "sets and their initialisation pooled, lies below 0) and the mean source-val "
               "accuracy of neither MMD's sets nor their initialisation falls by more than "
               f"{SOURCE_VAL_MARGIN:.0f} point; otherwise the reference stays. The unseen "
               "domain is never read for it")
EVALUATION_PREFIX = "evaluate."  # an override of the evaluation alone
SET_KINDS = (("MMD's sets", {}), ("their initialisation", INITIALISATION))


def evaluation_settings(profile) -> list[tuple]:
    """(stage, overrides) of each evaluation other than the profile's own that a stage reads
    the reference method's sets with (rows that override `evaluate.*` alone, their seed and
    distillation length aside), in the profile's order, each once."""
    found = []
    for stage in profile.stages.values():
        if REFERENCE not in (stage.methods or ()):
            continue
        for overrides in (stage.variants or {}).values():
            changed = {k: v for k, v in overrides.items() if k not in ("seed", LENGTH)}
            if changed and all(k.startswith(EVALUATION_PREFIX) for k in changed) \
                    and changed not in [c for _, c in found]:
                found.append((stage, changed))
    return found


def setting_claims(profile, stage, setting: dict) -> dict[tuple, list[Claim]]:
    """{(data set, IPC) of `stage`: one claim per set kind (SET_KINDS)}: the reference
    method's rows read with `setting` above the same rows read with the profile's own
    evaluation; only where the profile has rows of both kinds under `setting`."""
    pairs = []
    for _, fixed in SET_KINDS:
        own = list(seed_rows(profile, REFERENCE, fixed).values())
        pairs.append([(a, b) for a, b in ((counterpart(profile, row, setting), row)
                                          for row in own) if a is not None])
    if not all(pairs):
        return {}
    return {(dataset, ipc): [Claim(kind, dataset, ipc, tuple(a for a, _ in kind_pairs),
                                   tuple(b for _, b in kind_pairs),
                                   tuple(_splits(profile, stage, dataset)), {})
                             for (kind, _), kind_pairs in zip(SET_KINDS, pairs)]
            for dataset in stage.datasets for ipc in stage.ipcs}


def setting_choice(claims: list[Claim], val: list[dict], spread: dict) -> str:
    """CHOICE_RULE on one setting's claims, their source-val intervals and the pooled
    interval of the networks' spreads."""
    expected = sum(len(c.splits) * len(c.first) for c in claims)
    if spread.get("n", 0) < 2:
        return "not measured"
    if spread["n"] < expected:
        return f"not chosen yet (n {spread['n']} of {expected})"
    lower = any(i.get("n", 0) == 0 or i["mean"] < -SOURCE_VAL_MARGIN for i in val)
    return "replaces the reference" if spread["high"] < 0 and not lower \
        else "the reference stays"


ABLATION_HEADER = ["evaluation setting", "data set", "IPC",
                   "MMD's sets: source val, setting − reference",
                   "their initialisation: source val, setting − reference",
                   "networks' sd on source val, reference → setting", "choice"]


def _spread(units: list[tuple]) -> str:
    """The units' mean spread under the reference → under the setting, then the interval."""
    if not units:
        return "not measured"
    before = statistics.fmean(u[4] for u in units)
    after = statistics.fmean(u[2] for u in units)
    return f"{before:.1f} → {after:.1f}: {_with_n(interval_of(units))}"


def ablation_row(records: list[dict], setting: dict, claims: list[Claim], second: bool
                 ) -> list[str]:
    """One setting's row at one data set and IPC (ablation_table)."""
    val = [claim_units(records, claim, "source_val_acc")[1] for claim in claims]
    spread = [unit for claim in claims for unit in network_sd_units(
        _claim_records(records, claim), list(claim.first), list(claim.second),
        "source_val_acc", claim.ipc, claim.net)]
    return [", ".join(f"{k} {v}" for k, v in setting.items()), claims[0].dataset,
            str(claims[0].ipc), *map(_with_n, val), _spread(spread),
            "the second evaluation, read beside" if second
            else setting_choice(claims, val, interval_of(spread))]


def ablation_table(runner) -> Table | None:
    """For a profile that studies its evaluation (one with a `second_evaluation`): each
    evaluation setting of it that reads both MMD's sets and their initialisation, against
    the profile's own on source val only (the paired difference on each kind, the networks'
    spread before and after) and CHOICE_RULE's choice; the second evaluation is read
    beside, never chosen. None for any other profile."""
    profile = runner.profile
    if not profile.second_evaluation:
        return None
    records = current_records(runner)
    rows = [ablation_row(records, setting, claims, setting == profile.second_evaluation)
            for stage, setting in evaluation_settings(profile)
            for claims in setting_claims(profile, stage, setting).values()]
    return Table(f"{profile.name}'s evaluation settings against its own (the reference), on "
                 "the source domains' held-out images only; paired over split × pipeline seed",
                 ABLATION_HEADER, rows) if rows else None


# ----------------------------------------------------------------------------- figures
def domain_gap_row(path: Path) -> list[str] | None:
    """Fig. 1(a): accuracy on the source domains' held-out images above the unseen domain's,
    per split and seed of `python -m cadm_utils domain-gap` (the paper prints no number)."""
    if not path.exists():
        return None
    records = [r for r in load_records(path) if r.get("kind") == "domain_gap"]
    units = [(r["split"], "in-domain", r["source_val_acc"], "unseen", r["target_acc"])
             for r in records]
    interval = interval_of(units)
    dataset = records[0]["dataset"] if records else path.stem
    return ["Fig. 1(a): in-domain above unseen", dataset, "–", "–", _with_interval(interval),
            str(interval["n"]), "–", verdict(interval, None)]


def spread_row(units: list[tuple], dataset: str, ipc: int) -> list[str]:
    """Fig. 1(b): CADM's sets with a lower score variance across domains than MMD's; units
    (split, MMD row, its statistic, CADM row, its statistic), shown ×1000."""
    scaled = [(s, a, 1000 * x, b, 1000 * y) for s, a, x, b, y in units]
    interval = interval_of(scaled)
    return ["Fig. 1(b): CADM's score variance across domains below MMD's (×1000)", dataset,
            str(ipc), "–", _with_interval(interval), str(interval["n"]), "–",
            verdict(interval, None)]


HEADER = ["claim", "data set", "IPC", "paper: difference", "ours: difference [95 % CI]", "n",
          "ours on source val [95 % CI]", "verdict"]


def report_table(runner, extra_rows=()) -> Table:
    """The claims of the profile's stages from its current records, then Fig. 1(a) from
    results/domain_gap/<data set>.jsonl where measured, then `extra_rows`."""
    profile = runner.profile
    rows = [claim_row(current_records(runner), claim) for claim in profile_claims(profile)]
    rows += [domain_gap_row(runner.results_dir.parent / "domain_gap" / f"{dataset}.jsonl")
             for dataset in profile.datasets]
    rows = [row for row in rows + list(extra_rows) if row is not None]
    return Table(f"Claims of the paper against the {profile.name} profile's records "
                 "(unseen-domain accuracy %; differences first − second, paired over split × "
                 "distilled set)", HEADER, rows)


def earlier_runner(runner):
    """The runner of the profile's `earlier_evaluation` (its own records), or None."""
    name = runner.profile.earlier_evaluation
    if not name:
        return None
    from ..experiment.runner import Runner
    from ..profiles import load_profile

    return Runner(load_profile(name), runner.data_root, device="cpu", progress=False)


def report_markdown(table: Table) -> str:
    return (table.markdown() + "\nVerdicts: " + VERDICT_RULE + ". Units: one distilled set "
            "on one split, its evaluation seeds averaged; the interval is Student's t over "
            "the units' differences. The source-val column is the same difference on the "
            "source domains' held-out images.\n")


def write_report(runner, extra_rows=(), figures_dir=None) -> Path:
    """figures/<profile>/report.md (or `figures_dir`/report.md) from the profile's current
    records."""
    from ..runtime import write_atomic

    path = Path(figures_dir or runner.figures_dir) / "report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = report_markdown(report_table(runner, extra_rows))
    evaluations = evaluations_table(runner, earlier_runner(runner))
    if evaluations is not None:
        text += "\n" + evaluations.markdown()
        headline = path.parent / HEADLINE_FILE  # the README's table
        write_atomic(headline, lambda tmp: tmp.write_text(evaluations.markdown()))
    ablation = ablation_table(runner)
    if ablation is not None:
        text += "\n" + ablation.markdown() + "\nChoice: " + CHOICE_RULE + ".\n"
    if (path.parent / f"{TREND_FIGURE}.png").exists():  # drawn by 06_tables
        text += (f"\n![The paired differences against the distillation length, 95 % "
                 f"intervals](<{TREND_FIGURE}.png>)\n")
    write_atomic(path, lambda tmp: tmp.write_text(text))
    return path
