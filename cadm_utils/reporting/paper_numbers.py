"""The paper's reported accuracies (%), to print beside ours, transcribed with the paper's
row names; the functions return them keyed (method, split, ipc) by our registry's names
(methods.name_of_label), the full-data reference as method 'full' with ipc 0. Splits are
named in our domain order (e.g. the paper's ASP→C is our APS→C)."""
from __future__ import annotations

from ..data import split_name
from ..method.methods import FULL_DATA, name_of_label

PAPER_ROWS = ("Random", "MMD", "MMD+IRM", "MMD+FACT", "MMD+DAM", "CADM")  # Table 1's rows

# Table 1: per data set, the targets in the paper's column order, then one row per method
# (IPC 1, IPC 10 for each target) and the full-data row (one value per target).
_TABLE1 = {
    "pacs": ("P C A S", """
        10.1 29.2 6.3 16.8 6.7 12.9 10.1 18.3
        16.7 40.8 14.9 32.4 10.2 25.7 4.8 32.1
        17.9 38.4 16.1 32.7 11.8 24.2 5.2 32.8
        16.8 41.9 16.2 33.3 10.9 25.1 5.7 31.4
        22.7 43.1 18.0 34.8 12.6 26.4 6.0 34.2
        25.4 48.7 21.2 39.1 14.1 32.6 15.2 38.2""", "61.1 52.2 40.8 43.2"),
    "vlcs": ("C L V S", """
        7.8 18.5 11.2 19.7 10.4 14.9 9.0 16.8
        18.3 28.6 16.2 35.2 17.9 22.1 16.6 30.4
        19.7 29.1 16.5 37.4 17.2 24.6 20.1 30.2
        20.8 28.7 17.6 38.9 15.5 26.2 21.4 32.8
        21.5 30.9 17.3 38.7 20.1 27.8 20.8 32.6
        21.8 31.3 20.5 44.3 25.7 33.7 21.1 34.8""", "73.3 56.7 50.4 56.6"),
    "officehome": ("R P C A", """
        5.8 6.2 4.1 4.8 4.9 5.4 4.8 5.7
        6.9 11.8 5.2 8.4 5.1 8.9 4.3 9.2
        7.2 12.4 5.1 8.1 6.8 9.7 4.7 11.3
        7.1 11.1 4.1 9.9 6.0 9.3 3.9 10.9
        8.1 13.2 6.0 9.7 7.4 10.6 4.0 11.6
        10.4 16.9 6.8 12.0 7.3 10.7 5.1 14.8""", "28.8 30.3 16.7 22.0"),
    "domainnet_sub": ("S R Q P I C", """
        3.2 4.1 3.2 3.4 3.0 4.6 3.7 6.3 2.4 3.8 3.3 5.9
        3.7 5.8 3.9 3.7 4.8 4.9 3.9 8.4 2.8 4.6 4.1 9.8
        4.9 6.2 3.1 4.1 3.1 4.2 4.2 8.1 3.1 5.2 4.4 10.8
        4.1 6.7 4.0 4.4 4.0 4.8 4.6 8.7 3.4 5.1 5.7 11.6
        4.1 6.6 4.2 4.8 4.0 4.3 4.2 9.1 3.0 6.3 5.1 11.8
        5.3 7.8 4.1 5.9 5.1 6.7 4.9 10.2 3.7 6.5 9.2 14.1""",
                      "13.0 6.7 5.4 18.8 10.4 20.9"),
}

PAPER_DATASETS = tuple(_TABLE1)  # the data sets of Tables 1 and 4

# Table 2, ACS→P on PACS: (L_adm, L_reg masked, L_cons) → (IPC 1, IPC 10)
TABLE2 = {(False, False, False): (16.4, 39.9), (True, False, False): (23.6, 45.9),
          (False, True, False): (21.4, 40.7), (False, True, True): (23.1, 43.3),
          (True, True, True): (25.1, 48.4)}

# Table 3, ACS→P on PACS: (row, ipc) → accuracy per evaluation network
_TABLE3 = {("MMD", 1): {"convnet": 22.5, "alexnet": 18.2, "vgg11": 21.3, "resnet50": 23.1},
          ("CADM", 1): {"convnet": 24.8, "alexnet": 22.7, "vgg11": 23.2, "resnet50": 24.3},
          ("MMD", 10): {"convnet": 39.3, "alexnet": 38.8, "vgg11": 36.1, "resnet50": 41.2},
          ("CADM", 10): {"convnet": 45.7, "alexnet": 44.4, "vgg11": 43.8, "resnet50": 45.9}}

# Table 4, in-domain: row → {dataset: (IPC 1, IPC 10)}; full data one value
_TABLE4 = {
    "MMD": {"pacs": (40.3, 48.2), "vlcs": (36.2, 41.4), "officehome": (15.4, 24.9),
            "domainnet_sub": (12.4, 24.9)},
    "MMD+IRM": {"pacs": (41.7, 48.2), "vlcs": (38.6, 44.3), "officehome": (18.1, 25.3),
                "domainnet_sub": (11.1, 27.3)},
    "MMD+FACT": {"pacs": (43.3, 47.5), "vlcs": (40.1, 46.7), "officehome": (19.7, 27.1),
                 "domainnet_sub": (13.7, 27.1)},
    "MMD+DAM": {"pacs": (46.9, 52.2), "vlcs": (42.7, 46.9), "officehome": (19.4, 30.5),
                "domainnet_sub": (15.4, 29.5)},
    "CADM": {"pacs": (49.2, 58.4), "vlcs": (43.1, 50.4), "officehome": (24.8, 33.5),
             "domainnet_sub": (17.3, 30.6)},
}
TABLE4_FULL = {"pacs": 71.3, "vlcs": 64.8, "officehome": 49.2, "domainnet_sub": 48.3}


def table1(dataset: str) -> dict:
    if dataset not in _TABLE1:
        return {}
    targets, body, full = _TABLE1[dataset]
    splits = [split_name(dataset, t) for t in targets.split()]
    values = {}
    for row, line in zip(PAPER_ROWS, body.strip().splitlines()):
        method = name_of_label(row)
        numbers = [float(v) for v in line.split()]
        for i, split in enumerate(splits):
            values[(method, split, 1)], values[(method, split, 10)] = numbers[2 * i: 2 * i + 2]
    for split, value in zip(splits, full.split()):
        values[(FULL_DATA.name, split, 0)] = float(value)
    return values


def table3() -> dict:
    """(method, ipc) -> {network: accuracy}, PACS ACS→P."""
    return {(name_of_label(row), ipc): per_net for (row, ipc), per_net in _TABLE3.items()}


def table4(dataset: str) -> dict:
    values = {(name_of_label(row), "in-domain", ipc): v[dataset][i] for row, v in _TABLE4.items()
              for i, ipc in enumerate((1, 10)) if dataset in v}
    if dataset in TABLE4_FULL:
        values[(FULL_DATA.name, "in-domain", 0)] = TABLE4_FULL[dataset]
    return values



def paper_values(stage: str, dataset: str) -> dict:
    if stage == "table1":
        return table1(dataset)
    if stage == "table4":
        return table4(dataset)
    return {}


# Our own GPU measurement (shared PACS README: one H100, ResNet-18 from scratch, 60 epochs,
# full source training data): the full-data accuracy at a resolution other than the
# paper's, shown beside the full-data row of a profile at that resolution.
GPU_FULL_DATA_ANCHORS = {
    ("pacs", 32): {"CPS→A": 32.1, "APS→C": 41.4, "ACS→P": 53.7, "ACP→S": 32.4},
    ("pacs", 64): {"CPS→A": 37.0, "APS→C": 52.0, "ACS→P": 65.7, "ACP→S": 33.1},
}
