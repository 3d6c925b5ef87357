"""A difference between two methods as the paper's claims need it: over paired units
(split × distilled set; the evaluation seeds of a unit are averaged first), its mean with a
two-sided 95 % t interval and n."""
from __future__ import annotations

import statistics

from scipy import stats

from ..errors import ConfigError
from ..experiment.records import matching


def row_ipcs(records: list[dict], rows: list[str]) -> list[int]:
    """The IPCs at which the rows have records."""
    return sorted({r["ipc"] for r in records
                   if r.get("method") in rows and r.get("ipc") is not None})


def chosen_ipc(records: list[dict], rows: list[str], ipc: int | None) -> int | None:
    """`ipc`, or the rows' only IPC; a unit is one set, so two IPCs are never averaged."""
    ipcs = row_ipcs(records, rows)
    if ipc is None and len(ipcs) > 1:
        raise ConfigError(f"the rows have records at IPC {', '.join(map(str, ipcs))}: "
                          "choose one with --ipc")
    return ipc if ipc is not None or not ipcs else ipcs[0]


def unit_means(records: list[dict], method: str, field: str, ipc: int | None = None,
               net: str = "resnet18") -> dict[str, float]:
    """Per split, the mean of `field` over the evaluation seeds of `method`'s set there."""
    rows = [r for r in matching(records, method=method, net=net, ipc=ipc)
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
                      field: str = "acc", ipc: int | None = None, net: str = "resnet18"
                      ) -> tuple[list[tuple], dict]:
    """first[i] − second[i] on every split where both have records, over all i (the i-th
    rows of the two lists are one distilled set each, e.g. the same pipeline seed) at one
    IPC: the units, each (split, first row, value, second row, value), and their t
    interval."""
    ipc = chosen_ipc(records, first + second, ipc)
    units = []
    for a, b in zip(first, second, strict=True):
        ours = unit_means(records, a, field, ipc, net)
        theirs = unit_means(records, b, field, ipc, net)
        units += [(s, a, ours[s], b, theirs[s]) for s in ours if s in theirs]
    return units, interval_of(units)


def interval_of(units: list[tuple]) -> dict:
    """The t interval of (split, first row, value, second row, value) units' differences."""
    return t_interval([u[2] - u[4] for u in units]) if units else {"n": 0}
