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


def unit_networks(records: list[dict], method: str, field: str, ipc: int | None = None,
                  net: str = "resnet18") -> dict[str, list[float]]:
    """Per split, `field` of each evaluation network (seed) of `method`'s set there."""
    rows = [r for r in matching(records, method=method, net=net, ipc=ipc)
            if r.get(field) is not None]
    splits = sorted({r["split"] for r in rows})
    return {s: [r[field] for r in rows if r["split"] == s] for s in splits}


def unit_means(records: list[dict], method: str, field: str, ipc: int | None = None,
               net: str = "resnet18") -> dict[str, float]:
    """Per split, the mean of `field` over the evaluation seeds of `method`'s set there."""
    return {s: statistics.fmean(values)
            for s, values in unit_networks(records, method, field, ipc, net).items()}


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


def interval_of(units: list[tuple], level: float = 0.95) -> dict:
    """The t interval of (split, first row, value, second row, value) units' differences."""
    return t_interval([u[2] - u[4] for u in units], level) if units else {"n": 0}


def network_noise(records: list[dict], first: list[str], second: list[str], networks: int,
                  field: str = "acc", ipc: int | None = None, net: str = "resnet18") -> dict:
    """How much of a paired difference's variance its evaluation networks make, and the
    interval it would have on the same units with `networks` networks a set.

    A unit's difference is a's network mean less b's, so its variance is τ² + σa²/ka + σb²/kb:
    τ² what the sets themselves differ by, σ² one network's spread around its set's mean.
    The network part is each unit's (s²a/ka + s²b/kb), averaged over units; τ² is the
    units' observed variance less that part (at least 0). With K networks a set the
    variance becomes τ² + (σa² + σb²)/K, and the half-width t(n−1)·sd/√n at the same n.
    Where the observed variance falls below the network part (few units), τ² is 0 and the
    observed variance is scaled by the same ratio, so that more networks never widen it.
    Units with a single network on either side have no spread to read and are left out."""
    pairs = [(x, y) for _, _, x, _, y in network_pairs(records, first, second, field, ipc, net)]
    if len(pairs) < 2:
        return {"n": len(pairs)}
    observed = statistics.variance([statistics.fmean(x) - statistics.fmean(y) for x, y in pairs])
    network_part = statistics.fmean(statistics.variance(x) / len(x)
                                    + statistics.variance(y) / len(y) for x, y in pairs)
    per_network = statistics.fmean(statistics.variance(x) + statistics.variance(y)
                                   for x, y in pairs)
    sets_part = max(0.0, observed - network_part)
    modelled = sets_part + network_part  # the observed variance unless that is the smaller
    projected = observed * (sets_part + per_network / networks) / modelled if modelled > 0 \
        else 0.0
    t = stats.t.ppf(0.975, len(pairs) - 1) / len(pairs) ** 0.5
    return {"n": len(pairs), "networks": statistics.fmean(len(x) + len(y) for x, y in pairs) / 2,
            "network_share": min(1.0, network_part / observed) if observed > 0 else 1.0,
            "half_width": t * observed ** 0.5,
            "projected_networks": networks,
            "projected_half_width": t * projected ** 0.5}


def network_pairs(records: list[dict], first: list[str], second: list[str],
                  field: str = "acc", ipc: int | None = None, net: str = "resnet18"
                  ) -> list[tuple]:
    """Each unit's networks: (split, first row, its networks' values, second row, theirs),
    on the splits where both rows have 2 or more networks (a spread to read)."""
    ipc = chosen_ipc(records, first + second, ipc)
    units = []
    for a, b in zip(first, second, strict=True):
        ours = unit_networks(records, a, field, ipc, net)
        theirs = unit_networks(records, b, field, ipc, net)
        units += [(s, a, ours[s], b, theirs[s]) for s in ours
                  if s in theirs and len(ours[s]) > 1 and len(theirs[s]) > 1]
    return units


def network_sd_units(records: list[dict], first: list[str], second: list[str],
                     field: str = "acc", ipc: int | None = None, net: str = "resnet18"
                     ) -> list[tuple]:
    """The evaluation networks' standard deviation around their set's mean, per unit: each
    (split, first row, its networks' sd, second row, theirs), on network_pairs' units;
    `interval_of` reads the paired difference of the two spreads."""
    return [(s, a, statistics.stdev(x), b, statistics.stdev(y))
            for s, a, x, b, y in network_pairs(records, first, second, field, ipc, net)]
