"""A difference between two methods as the paper's claims need it: over paired units
(split × distilled set; the evaluation seeds of a unit are averaged first), its mean with a
two-sided 95 % t interval and n."""
from __future__ import annotations

import statistics

from scipy import stats

from ..experiment.records import matching


def unit_means(records: list[dict], method: str, field: str) -> dict[str, float]:
    """Per split, the mean of `field` over the evaluation seeds of `method`'s set there."""
    rows = [r for r in matching(records, method=method, net="resnet18")
            if r.get(field) is not None]
    splits = sorted({r["split"] for r in rows})
    return {s: statistics.fmean(r[field] for r in rows if r["split"] == s) for s in splits}


def t_interval(differences: list[float], level: float = 0.95) -> dict:
    """Mean, standard deviation, n and the two-sided t interval of paired differences."""
    n = len(differences)
    mean = statistics.fmean(differences)
    sd = statistics.stdev(differences) if n > 1 else float("nan")
    half = stats.t.ppf(0.5 + level / 2, n - 1) * sd / n ** 0.5 if n > 1 else float("nan")
    return {"n": n, "mean": mean, "sd": sd, "low": mean - half, "high": mean + half}


def paired_difference(records: list[dict], first: list[str], second: list[str],
                      field: str = "acc") -> tuple[list[tuple], dict]:
    """first[i] − second[i] on every split where both have records, over all i (the i-th
    rows of the two lists are one distilled set each, e.g. the same pipeline seed): the
    units, each (split, first row, value, second row, value), and their t interval."""
    units = []
    for a, b in zip(first, second, strict=True):
        ours, theirs = unit_means(records, a, field), unit_means(records, b, field)
        units += [(s, a, ours[s], b, theirs[s]) for s in ours if s in theirs]
    if not units:
        return [], {"n": 0}
    return units, t_interval([u[2] - u[4] for u in units])
