"""Paired differences over units (reporting/paired.py) against a hand computation."""
import math

from cadm_utils.reporting.paired import paired_difference, t_interval


def test_the_t_interval_of_four_differences():
    # mean 2.5, sd sqrt(5/3), t(0.975, 3) = 3.18245: 2.5 ± 3.18245 · sqrt(5/3) / 2
    interval = t_interval([1.0, 2.0, 3.0, 4.0])
    half = 3.182446305284263 * math.sqrt(5 / 3) / 2
    assert interval["n"] == 4 and interval["mean"] == 2.5
    assert math.isclose(interval["low"], 2.5 - half) and math.isclose(interval["high"], 2.5 + half)


def test_units_average_seeds_and_pair_by_split_and_row():
    def record(method, split, seed, acc):
        return {"method": method, "split": split, "seed": seed, "acc": acc, "net": "resnet18"}

    records = [record("a", "P", 0, 50.0), record("a", "P", 1, 54.0), record("b", "P", 0, 50.0),
               record("a", "C", 0, 40.0), record("b", "C", 0, 41.0), record("b", "S", 0, 9.0),
               record("a1", "P", 0, 60.0), record("b1", "P", 0, 55.0)]
    units, interval = paired_difference(records, ["a", "a1"], ["b", "b1"])
    assert [(u[0], u[2] - u[4]) for u in units] == [("C", -1.0), ("P", 2.0), ("P", 5.0)]
    assert interval["n"] == 3 and math.isclose(interval["mean"], 2.0)
    assert paired_difference(records, ["a"], ["nothing"]) == ([], {"n": 0})


def test_compare_prints_units_and_intervals_and_refuses_unpaired_rows(capsys):
    from cadm_utils.__main__ import main

    assert main(["compare", "--profile", "bench", "--first", "cadm,cadm{seed1},cadm{seed2}",
                 "--second", "mmd,mmd{seed1},mmd{seed2}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("unseen domain: first − second = ") and "n = 12" in out[-1]
    assert sum(line.startswith("source val: ") for line in out) == 1
    assert main(["compare", "--profile", "bench", "--first", "cadm", "--second",
                 "mmd,mmd{seed1}"]) == 2
    assert "they pair row by row" in capsys.readouterr().err


def test_a_unit_is_one_ipc_and_two_ipcs_must_be_chosen_between():
    import pytest

    from cadm_utils.errors import ConfigError

    records = [{"method": m, "split": "P", "seed": 0, "acc": acc, "net": "resnet18", "ipc": ipc}
               for m, ipc, acc in (("a", 1, 10.0), ("b", 1, 20.0), ("a", 10, 50.0),
                                   ("b", 10, 40.0))]
    with pytest.raises(ConfigError, match="IPC 1, 10: choose one with --ipc"):
        paired_difference(records, ["a"], ["b"])
    assert paired_difference(records, ["a"], ["b"], ipc=10)[1]["mean"] == 10.0
    assert paired_difference(records, ["a"], ["b"], ipc=1)[1]["mean"] == -10.0
    one_ipc = [r for r in records if r["ipc"] == 10]
    assert paired_difference(one_ipc, ["a"], ["b"])[1]["mean"] == 10.0
