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


def test_network_noise_splits_the_units_variance_by_hand():
    from cadm_utils.reporting.paired import network_noise

    def records(method, split, values):
        return [{"method": method, "split": split, "seed": i, "acc": v, "net": "resnet18"}
                for i, v in enumerate(values)]

    rows = (records("a", "P", [50, 54]) + records("b", "P", [40, 42])
            + records("a", "C", [30, 36]) + records("b", "C", [31, 31])
            + records("a", "S", [20, 22]) + records("b", "S", [10, 18])
            + records("a", "A", [70]) + records("b", "A", [10, 20]))   # one network: left out
    # differences 11, 2, 7: variance 61/3; networks' part (5 + 9 + 17) / 3 = 31/3;
    # one network's spread, a + b: (10 + 18 + 34) / 3 = 62/3; the sets' part 61/3 − 31/3 = 10
    noise = network_noise(rows, ["a"], ["b"], networks=4)
    t = 4.302652729749464 / math.sqrt(3)                       # t(0.975, 2) / √n
    assert noise["n"] == 3 and noise["networks"] == 2
    assert math.isclose(noise["network_share"], 31 / 61)
    assert math.isclose(noise["half_width"], t * math.sqrt(61 / 3))
    assert math.isclose(noise["projected_half_width"], t * math.sqrt(10 + 62 / 3 / 4))
    assert network_noise(rows, ["a"], ["nothing"], networks=4) == {"n": 0}


def test_network_sd_units_pair_each_sets_spread_by_hand():
    from cadm_utils.reporting.paired import interval_of, network_sd_units

    def records(method, split, values):
        return [{"method": method, "split": split, "seed": i, "acc": v, "net": "resnet18"}
                for i, v in enumerate(values)]

    rows = (records("a", "P", [50, 54]) + records("b", "P", [40, 40, 46])
            + records("a", "C", [30, 36, 33]) + records("b", "C", [31, 31])
            + records("a", "S", [20]) + records("b", "S", [10, 18]))   # one network: left out
    units = network_sd_units(rows, ["a"], ["b"])
    # sd of (50, 54): √8; of (40, 40, 46): √12; of (30, 36, 33): 3; of (31, 31): 0
    assert [u[0] for u in units] == ["C", "P"]
    by_split = {u[0]: (u[2], u[4]) for u in units}
    assert all(math.isclose(x, y) for x, y in zip(by_split["P"], (math.sqrt(8), math.sqrt(12))))
    assert by_split["C"] == (3.0, 0.0)
    spread = interval_of(units)
    assert spread["n"] == 2 and math.isclose(spread["mean"],
                                             (3.0 + math.sqrt(8) - math.sqrt(12)) / 2)


def test_more_networks_never_widen_units_that_vary_less_than_their_networks():
    from cadm_utils.reporting.paired import network_noise

    def records(method, split, values):
        return [{"method": method, "split": split, "seed": i, "acc": v, "net": "resnet18"}
                for i, v in enumerate(values)]

    rows = (records("a", "P", [40, 46]) + records("b", "P", [30, 30])
            + records("a", "C", [20, 28]) + records("b", "C", [14, 14]))
    # differences 13 and 10: variance 4.5; networks' part (18/2 + 32/2) / 2 = 12.5 > 4.5, so
    # the sets' part is 0; one network's spread (18 + 32) / 2 = 25; with 8 networks a set the
    # variance is 4.5 · (25/8) / 12.5
    noise = network_noise(rows, ["a"], ["b"], networks=8)
    t = 12.706204736174698 / math.sqrt(2)                      # t(0.975, 1) / √n
    assert noise["network_share"] == 1.0
    assert math.isclose(noise["half_width"], t * math.sqrt(4.5))
    assert math.isclose(noise["projected_half_width"], t * math.sqrt(4.5 * 25 / 8 / 12.5))
    assert noise["projected_half_width"] < noise["half_width"]


def test_compare_reads_the_network_noise_and_refuses_a_count_below_one(capsys):
    from cadm_utils.__main__ import main

    assert main(["compare", "--profile", "bench", "--first", "cadm,cadm{seed1},cadm{seed2}",
                 "--second", "mmd,mmd{seed1},mmd{seed2}", "--networks", "10"]) == 0
    noise = [line for line in capsys.readouterr().out.splitlines() if "networks make" in line]
    assert len(noise) == 2 and all("with 10 networks a set (n = 12)" in line for line in noise)
    assert main(["compare", "--profile", "bench", "--first", "cadm", "--second", "mmd",
                 "--networks", "0"]) == 2
    assert "--networks is a count of evaluation networks a set: 1 or more, not 0" \
        in capsys.readouterr().err


def test_compare_widens_the_interval_for_a_family_of_comparisons(capsys):
    from cadm_utils.__main__ import main

    args = ["compare", "--profile", "bench", "--first", "cadm,cadm{seed1},cadm{seed2}",
            "--second", "mmd,mmd{seed1},mmd{seed2}"]
    assert main(args + ["--comparisons", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    unseen = lines[-1]       # the family line follows the 95 % line of its field
    assert unseen.startswith("unseen domain: read as one of 3 comparisons (Bonferroni), 98.3 % CI")

    def bounds(line):
        low, high = line.split("[")[1].split("]")[0].split(", ")
        return float(low), float(high)

    low95, high95 = bounds(lines[-2])
    low, high = bounds(unseen)
    assert low < low95 and high > high95
    assert main(args + ["--comparisons", "0"]) == 2
    assert "--comparisons is how many comparisons are read at once" in capsys.readouterr().err


def test_compare_reads_only_the_splits_of_the_targets_given(capsys):
    from cadm_utils.__main__ import main

    rows = ["--first", "cadm,cadm{seed1},cadm{seed2}", "--second", "mmd,mmd{seed1},mmd{seed2}"]
    assert main(["compare", "--profile", "bench", *rows, "--targets", "P,C"]) == 0
    out = capsys.readouterr().out.splitlines()
    units = [line.split()[2] for line in out if line.startswith("  unseen domain")]
    assert set(units) == {"ACS→P", "APS→C"} and len(units) == 6
    assert out[-1].startswith("unseen domain: first − second = ") and "n = 6" in out[-1]
    assert main(["compare", "--profile", "bench", *rows, "--targets", "X"]) == 2
    assert "unknown domain 'X'" in capsys.readouterr().err
