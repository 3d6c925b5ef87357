"""The reproduction report (reporting/report.py): each verdict rule, the interval of a claim
against a hand computation on made-up records, and the pairing of re-seeded rows."""
import dataclasses
import math

import pytest

from cadm_utils.reporting.report import (Claim, claim_row, paired_rows, profile_claims,
                                         verdict)

T_975_3 = 3.182446305284263  # Student's t, 0.975 quantile, 3 degrees of freedom


def test_each_verdict_rule():
    assert verdict({"n": 0}, 5.0) == "not measured"
    assert verdict({"n": 1, "mean": 9.0}, 5.0) == "inconclusive"
    assert verdict({"n": 4, "low": 0.5, "high": 3.0}, 5.0) == "supported"
    assert verdict({"n": 4, "low": -3.0, "high": 4.0}, 5.0) == "not supported at this scale"
    assert verdict({"n": 4, "low": -3.0, "high": 6.0}, 5.0) == "inconclusive"
    # no paper number: below 0 is the bar
    assert verdict({"n": 4, "low": -3.0, "high": -0.1}, None) == "not supported at this scale"
    assert verdict({"n": 4, "low": -3.0, "high": 0.1}, None) == "inconclusive"


def _profile(stages: dict, **settings):
    """A resolved profile of PACS on P and C with these stages."""
    from cadm_utils.settings import resolve_profile

    return resolve_profile({"name": "t", "datasets": {"pacs": {"targets": ["P", "C"]}},
                            "evaluate": {"steps": 10}, "stages": stages, **settings})


def _record(method, split, seed, acc, val, ipc=10):
    return {"method": method, "split": split, "seed": seed, "acc": acc, "source_val_acc": val,
            "net": "resnet18", "ipc": ipc, "dataset": "pacs"}


def test_a_claim_row_pairs_units_and_matches_a_hand_interval():
    records = []
    # differences per unit (evaluation seeds averaged first): 1, 2, 3, 4
    for split, row, other, diff in (("ACS→P", "cadm", "mmd", 1.0), ("APS→C", "cadm", "mmd", 2.0),
                                    ("ACS→P", "cadm{s1}", "mmd{s1}", 3.0),
                                    ("APS→C", "cadm{s1}", "mmd{s1}", 4.0)):
        records += [_record(row, split, 0, 30 + diff - 1, 50.0),
                    _record(row, split, 1, 30 + diff + 1, 50.0),
                    _record(other, split, 0, 30.0, 49.0)]
    # records that must not count: another IPC, another split, another data set
    records += [_record("cadm", "ACS→P", 0, 99.0, 99.0, ipc=1), _record("mmd", "ACS→P", 0, 0, 0, 1),
                _record("cadm", "CPS→A", 0, 99.0, 99.0), {**_record("mmd", "CPS→A", 0, 0, 0)},
                {**_record("cadm", "APS→C", 2, 99.0, 99.0), "dataset": "vlcs"}]
    claim = Claim("Table 1: CADM above mmd", "pacs", 10, ("cadm", "cadm{s1}"), ("mmd", "mmd{s1}"),
                  ("ACS→P", "APS→C"), {"ACS→P": 6.0, "APS→C": 8.0})
    row = claim_row(records, claim)
    half = T_975_3 * math.sqrt(5 / 3) / 2  # mean 2.5, sd sqrt(5/3), n 4
    assert row[3] == "+7.0"  # the paper's mean difference over the splits
    assert row[4] == f"+2.5 [{2.5 - half:+.1f}, {2.5 + half:+.1f}]" and row[5] == "4"
    assert row[6] == "+1.0 [+1.0, +1.0]"
    assert row[7] == "supported"  # [0.45, 4.55] lies above 0 (though below the paper's 7)
    fewer = claim_row(records, Claim(*list(claim.__dict__.values())[:3], ("cadm",), ("mmd",),
                                     claim.splits, {"ACS→P": 9.0, "APS→C": 11.0}))
    assert fewer[5] == "2" and fewer[7] == "not supported at this scale"  # 1.5 ± 6.35 < 10


def test_reseeded_rows_pair_by_seed_and_other_variants_do_not():
    second = {"evaluate.lr": 0.5}  # a profile that studies its evaluation
    profile = _profile({
        "table1": {"methods": ["mmd", "cadm"], "datasets": ["pacs"], "ipcs": [10]},
        "replicates": {"methods": ["mmd", "cadm"], "datasets": ["pacs"], "ipcs": [10],
                       "variants": {"reference": {}, "seed1": {"seed": 1},
                                    "seed2": {"seed": 2}}},
        "other": {"methods": ["cadm"], "datasets": ["pacs"], "ipcs": [10],
                  "variants": {"seed3": {"seed": 3}, "lr": {"distill.lr": 0.1, "seed": 4}}}})
    assert paired_rows(profile, "cadm", "mmd") == (("cadm", "cadm{seed1}", "cadm{seed2}"),
                                                   ("mmd", "mmd{seed1}", "mmd{seed2}"))


def test_initialisation_rows_pair_each_method_with_the_initial_set_of_its_seed():
    from cadm_utils.reporting.report import initialisation_claims

    second = {"evaluate.lr": 0.5}  # a profile that studies its evaluation
    profile = _profile({
        "table1": {"methods": ["mmd", "cadm"], "datasets": ["pacs"], "ipcs": [10],
                   "variants": {"reference": {}, "seed1": {"seed": 1}, "seed2": {"seed": 2}}},
        "init": {"methods": ["mmd"], "datasets": ["pacs"], "ipcs": [10], "variants": {
            "init": {"distill.steps": 0}, "init_seed1": {"distill.steps": 0, "seed": 1},
            "longer": {"distill.steps": 800, "seed": 1}}}})
    claims = initialisation_claims(profile)
    assert [c.label for c in claims] == ["MMD above its initialisation",
                                         "CADM above its initialisation"]
    assert claims[1].first == ("cadm", "cadm{seed1}")  # seed 2 has no initialisation row
    assert claims[1].second == ("mmd{init}", "mmd{init_seed1}")
    assert claims[0].splits == ("ACS→P", "APS→C") and claims[0].paper == {}
    records = [_record(row, "ACS→P", seed, acc, acc) for seed in (0, 1, 2)
               for row, acc in (("mmd", 40.0), ("mmd{init}", 30.0), ("mmd{seed1}", 42.0),
                                ("mmd{init_seed1}", 30.0))]
    assert claim_row(records, claims[0])[4:6] == ["+11.0 [-1.7, +23.7]", "2"]
    without = dict(profile.stages)
    del without["init"]
    assert initialisation_claims(dataclasses.replace(profile, stages=without)) == []


def test_the_claims_of_a_profile_follow_its_stages():
    from cadm_utils.profiles import load_profile

    claims = profile_claims(load_profile("smoke"))
    labels = {c.label for c in claims}
    assert "Table 1: CADM above mmd" in labels and "Table 2: L_cons adds" in labels
    assert "Table 3: CADM above MMD on alexnet" in labels
    table4 = [c for c in claims if c.label.startswith("Table 4")]
    assert table4 and all(c.splits == ("in-domain",) for c in table4)
    with pytest.raises(StopIteration):
        next(c for c in claims if c.label == "Table 1: CADM above cadm")


def test_the_report_command_writes_its_table(tmp_path, capsys):
    from cadm_utils.__main__ import main

    assert main(["report", "--profile", "bench", "--figures-dir", str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "| Table 1: CADM above mmd | embedded | 10 |" in text and "n = " not in text
    assert "Verdicts: *supported*" in text and "written:" in capsys.readouterr().out


def test_the_spread_row_is_measured_recorded_and_rendered_again_without_sets(tmp_path,
                                                                           capsys,
                                                                           monkeypatch):
    """Fig. 1(b)'s units are measured where the sets are on disk and recorded with the
    sets' ids in results/<profile>/spread.jsonl; without the sets, the recorded units of
    the current sets render the row; with neither, one line and exit 2, nothing written."""
    import shutil

    from cadm_utils.__main__ import main
    from cadm_utils.reporting import analysis
    from .conftest import REPO_ROOT

    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(REPO_ROOT / "results" / "bench" / "records.jsonl", results / "records.jsonl")
    argv = ["report", "--profile", "bench", "--spread", "--figures-dir", str(tmp_path / "f"),
            "--results-dir", str(results)]
    monkeypatch.setattr(analysis, "spread_units", lambda runner, first, second, ipc, **_: [])
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: --spread: no split has") and error.count("\n") == 1
    assert not (tmp_path / "f" / "report.md").exists()
    units = [("ACS→P", "mmd", 0.004, "cadm", 0.002), ("APS→C", "mmd", 0.005, "cadm", 0.001)]
    monkeypatch.setattr(analysis, "spread_units", lambda runner, first, second, ipc, **_: units)
    assert main(argv) == 0

    def spread_row():
        return next(line for line in (tmp_path / "f" / "report.md").read_text().splitlines()
                    if line.startswith("| Fig. 1(b)"))
    assert "| +3.0 [" in spread_row() and "| 2 |" in spread_row()  # (2, 4) ×1000, two units
    monkeypatch.setattr(analysis, "spread_units", lambda runner, first, second, ipc, **_: [])
    (tmp_path / "f" / "report.md").unlink()
    assert main(argv) == 0  # no set on disk: the recorded units of the current sets
    assert "| +3.0 [" in spread_row() and "| 2 |" in spread_row()
    (results / "records.jsonl").write_text(
        (results / "records.jsonl").read_text().replace('"set_id": "', '"set_id": "x'))
    assert main(argv) == 2  # the sets were remade: the recorded units are not theirs


def test_a_stage_states_its_own_claims_with_table_1s_difference_between_base_methods():
    from cadm_utils.errors import ConfigError
    from cadm_utils.settings import resolve_profile

    raw = {"name": "t", "evaluate": {"steps": 1}, "datasets": {"pacs": {"targets": ["P", "C"]}},
           "stages": {"s": {
        "datasets": ["pacs"], "methods": ["mmd", "cadm"], "ipcs": [10],
        "variants": {"a": {"seed": 1}},
        "claims": [{"label": "x", "first": ["cadm{a}"], "second": ["mmd{a}"]},
                   {"label": "y", "first": ["cadm{a}"], "second": ["cadm"]}]}}}
    x, y = profile_claims(resolve_profile(raw))
    assert x.first == ("cadm{a}",) and x.splits == ("ACS→P", "APS→C")
    assert x.paper == pytest.approx({"ACS→P": 48.7 - 40.8, "APS→C": 39.1 - 32.4})
    assert y.paper == {}
    # against MMD's rows at distill.steps 0 (the initialisation) the paper has no difference
    raw["stages"]["s"]["variants"]["init"] = {"distill.steps": 0}
    raw["stages"]["s"]["claims"] = [{"label": "w", "first": ["cadm{a}"], "second": ["mmd{init}"]}]
    (w,) = [c for c in profile_claims(resolve_profile(raw)) if c.label == "w"]
    assert w.second == ("mmd{init}",) and w.paper == {}
    # also where the initialisation row changes the evaluation too
    raw["stages"]["s"]["variants"]["init_long"] = {"distill.steps": 0, "evaluate.steps": 2}
    raw["stages"]["s"]["claims"] = [{"label": "v", "first": ["cadm"], "second": ["mmd{init_long}"]}]
    (v,) = [c for c in profile_claims(resolve_profile(raw)) if c.label == "v"]
    assert v.paper == {}
    raw["stages"]["s"]["claims"] = [{"label": "z", "first": ["a", "b"], "second": ["c"]}]
    with pytest.raises(ConfigError, match="pairs 2 rows with 1"):
        resolve_profile(raw)


def test_the_figure_rows_follow_the_same_rule(tmp_path):
    import json

    from cadm_utils.reporting.report import domain_gap_row, spread_row

    # Fig. 1(b): MMD's statistic minus CADM's, ×1000; all four CADM sets lower: supported
    units = [(s, "mmd", 0.012 + i / 1000, "cadm", 0.010) for i, s in enumerate("PCAS")]
    row = spread_row(units, "pacs", 10)
    assert row[4] == "+3.5 [+1.4, +5.6]" and row[5] == "4" and row[7] == "supported"
    # Fig. 1(a) from domain-gap records: in-domain minus unseen
    path = tmp_path / "pacs.jsonl"
    path.write_text("".join(json.dumps({"kind": "domain_gap", "dataset": "pacs", "split": s,
                                        "source_val_acc": 60.0, "target_acc": 60.0 + d}) + "\n"
                            for s, d in (("P", 1.0), ("C", -1.0))))
    gap = domain_gap_row(path)
    assert gap[5] == "2" and gap[7] == "inconclusive"
    assert domain_gap_row(tmp_path / "none.jsonl") is None


def test_the_smoke_profiles_full_data_row_is_a_ceiling_on_source_val():
    """The main job's committed table reads as it should: on every split the full-data row
    is above every other row on the source domains' held-out images (mean over seeds)."""
    import statistics
    from collections import defaultdict

    from cadm_utils.experiment.records import current_records
    from cadm_utils.experiment.runner import Runner
    from cadm_utils.profiles import load_profile

    runner = Runner(load_profile("smoke"), device="cpu", progress=False)
    by_row = defaultdict(list)
    for record in current_records(runner):
        if record["net"] == "resnet18":
            by_row[(record["split"], record["method"], record["ipc"])].append(
                record["source_val_acc"])
    splits = {split for split, _, _ in by_row}
    assert len(splits) == 5  # four leave-one-out splits and in-domain
    for split in splits:
        full = statistics.fmean(by_row[(split, "full", 0)])
        others = [statistics.fmean(v) for (s, m, _), v in by_row.items()
                  if s == split and m != "full"]
        assert others and full > max(others), split


def test_the_trend_pairs_each_length_by_seed_against_mmd_and_the_initialisation():
    from cadm_utils.reporting.report import trend_claims, trend_points

    second = {"evaluate.lr": 0.5}  # a profile that studies its evaluation
    profile = _profile({
        "table1": {"methods": ["mmd", "cadm"], "datasets": ["pacs"], "ipcs": [10],
                   "variants": {"reference": {}, "seed1": {"seed": 1}}},
        "init": {"methods": ["mmd"], "datasets": ["pacs"], "ipcs": [10], "variants": {
            "init": {"distill.steps": 0}, "init_seed1": {"distill.steps": 0, "seed": 1}}},
        "length": {"methods": ["mmd", "cadm"], "datasets": ["pacs"], "ipcs": [10], "variants": {
            "steps100": {"distill.steps": 100}, "steps100_seed1": {"distill.steps": 100, "seed": 1},
            "lr": {"distill.steps": 100, "distill.lr": 1.0}}}},  # not a length row: lr too
        distill={"steps": 400})
    claims = trend_claims(profile)
    assert [(c.steps, c.label) for c in claims] == [
        (100, "CADM above MMD, 100 distillation steps"),
        (100, "MMD above its initialisation, 100 distillation steps"),
        (400, "CADM above MMD, 400 distillation steps"),
        (400, "MMD above its initialisation, 400 distillation steps")]
    assert claims[0].first == ("cadm{steps100}", "cadm{steps100_seed1}")
    assert claims[1].first == ("mmd{steps100}", "mmd{steps100_seed1}")
    assert claims[1].second == ("mmd{init}", "mmd{init_seed1}")
    assert claims[2].first == ("cadm", "cadm{seed1}") and claims[2].second == ("mmd", "mmd{seed1}")
    assert claims[0].paper == pytest.approx({"ACS→P": 48.7 - 40.8, "APS→C": 39.1 - 32.4})
    # the profile's own length is carried by its stages' claims; the report adds the others
    assert [c.label for c in profile_claims(profile) if c.steps] == [c.label for c in claims[:2]]

    accuracy = {"mmd{init}": 30.0, "mmd{init_seed1}": 31.0, "mmd{steps100}": 33.0,
                "mmd{steps100_seed1}": 37.0, "cadm{steps100}": 34.0,
                "cadm{steps100_seed1}": 36.0, "mmd": 40.0, "mmd{seed1}": 41.0,
                "cadm": 42.0, "cadm{seed1}": 45.0}
    records = [_record(row, "ACS→P", seed, acc, acc) for row, acc in accuracy.items()
               for seed in (0, 1, 2)]
    points = {(p["comparison"], p["steps"]): p for p in trend_points(records, profile)}
    # MMD − init at 100 steps: 33 − 30 = 3 and 37 − 31 = 6, mean 4.5, sd 2.1213, n 2
    low_high = 12.706204736174707 * 2.1213203435596424 / 2 ** 0.5
    assert points[("MMD above its initialisation", 100)]["mean"] == pytest.approx(4.5)
    assert points[("MMD above its initialisation", 100)]["high"] == pytest.approx(4.5 + low_high)
    assert points[("CADM above MMD", 400)]["mean"] == pytest.approx(3.0)  # 2 and 4
    assert points[("CADM above MMD", 400)]["paper"] == pytest.approx(48.7 - 40.8)  # ACS→P only
    assert points[("MMD above its initialisation", 400)]["paper"] is None
    without = dict(profile.stages)
    del without["length"]
    assert trend_claims(dataclasses.replace(profile, stages=without)) == []


def test_a_headline_claim_maps_to_the_rows_of_the_second_evaluation():
    from cadm_utils.profiles import load_profile
    from cadm_utils.reporting.report import headline_claims, under_second_evaluation

    profile = load_profile("pacs-dm")
    claims = {c.label: c for c in headline_claims(profile)}
    mmd_init = under_second_evaluation(profile, claims["MMD above its initialisation"])
    assert mmd_init.first == ("mmd{ncfm}", "mmd{ncfm_seed1}")
    assert mmd_init.second == ("mmd{ncfm_init}", "mmd{ncfm_init_seed1}")
    cadm_mmd = next(c for label, c in claims.items() if label.startswith("CADM above MMD"))
    assert under_second_evaluation(profile, cadm_mmd).first == ("cadm{ncfm}", "cadm{ncfm_seed1}")
    assert under_second_evaluation(load_profile("pacs-dm-pixels"), cadm_mmd) is None


def test_two_evaluations_on_opposite_sides_of_0_are_flagged():
    from cadm_utils.reporting.report import evaluations_agree

    above = {"n": 8, "low": 0.5, "high": 3.0}
    below = {"n": 8, "low": -4.0, "high": -0.2}
    spans = {"n": 8, "low": -1.0, "high": 2.0}
    assert evaluations_agree(above, below) == "**opposite sides of 0**"
    assert evaluations_agree(above, dict(above)) == "both above 0"
    assert evaluations_agree(above, spans) == "above 0 / spans 0"
    assert evaluations_agree(above, {"n": 1, "low": 1.0, "high": 1.0}) == "–"


def test_the_earlier_records_read_the_same_claims_as_before():
    """pacs-dm-pixels holds pacs-dm's records made with DSA on [0, 1] pixels: its keys are
    the earlier ones, so the report reads them as they were."""
    from cadm_utils.experiment.runner import Runner
    from cadm_utils.profiles import load_profile
    from cadm_utils.reporting.report import evaluations_table

    runner = Runner(load_profile("pacs-dm"), results_dir="/nonexistent", device="cpu",
                    progress=False)
    earlier = Runner(load_profile("pacs-dm-pixels"), device="cpu", progress=False)
    table = evaluations_table(runner, earlier)
    assert table.rows[0][0] == "MMD above its initialisation"
    assert table.rows[0][2] == "not measured" and "(n 8," in table.rows[0][-1]


def test_the_headline_shows_the_networks_share_of_a_claims_variance():
    """The same hand numbers as test_paired's network_noise check: 31/61 of the units'
    variance comes from the evaluation networks; records outside the claim's splits, data
    set or IPC do not count."""
    from cadm_utils.reporting.report import network_share

    def records(method, split, values, **extra):
        return [{**_record(method, split, i, v, 50.0), **extra} for i, v in enumerate(values)]

    rows = (records("a", "ACS→P", [50, 54]) + records("b", "ACS→P", [40, 42])
            + records("a", "APS→C", [30, 36]) + records("b", "APS→C", [31, 31])
            + records("a", "CPS→A", [20, 22]) + records("b", "CPS→A", [10, 18])
            + records("a", "ACP→S", [0, 99]) + records("b", "ACP→S", [0, 0])
            + records("a", "ACS→P", [0, 99], ipc=1) + records("b", "ACS→P", [0, 0], ipc=1))
    claim = Claim("a above b", "pacs", 10, ("a",), ("b",), ("ACS→P", "APS→C", "CPS→A"), {})
    assert network_share(rows, claim) == f"{100 * 31 / 61:.0f} % (2 a set)"
    assert network_share(rows, dataclasses.replace(claim, splits=("ACS→P",))) == "–"


def test_the_ablation_pairs_each_evaluation_setting_with_the_profiles_own():
    from cadm_utils.profiles import load_profile
    from cadm_utils.reporting.report import evaluation_settings, setting_claims

    profile = load_profile("pacs-dm")
    settings = [setting for _, setting in evaluation_settings(profile)]
    assert settings == [profile.second_evaluation, {"evaluate.dsa_draws": "batch"},
                        {"evaluate.dsa_operations": "all"}, {"evaluate.epochs": 300}]
    stage, batch = evaluation_settings(profile)[1]
    (where, (sets, initial)), = setting_claims(profile, stage, batch).items()
    assert where == ("pacs", 10)
    assert (sets.first, sets.second) == (("mmd{batch_draws}", "mmd{batch_draws_seed1}"),
                                         ("mmd", "mmd{seed1}"))
    assert (initial.first, initial.second) == (
        ("mmd{batch_draws_init}", "mmd{batch_draws_init_seed1}"), ("mmd{init}", "mmd{init_seed1}"))
    assert len(sets.splits) == 4
    assert evaluation_settings(load_profile("bench-dm")) == []
    # a setting read on MMD's sets alone (no initialisation under it) gives no claims
    gpu = load_profile("gpu-short")
    assert [setting_claims(gpu, *found) for found in evaluation_settings(gpu)] == [{}]


def _interval(mean, low, high, n=8):
    return {"n": n, "mean": mean, "low": low, "high": high}


def test_the_choice_rule_reads_spread_and_source_val_and_waits_for_every_unit():
    from cadm_utils.reporting.report import Claim, setting_choice

    claims = [Claim("k", "pacs", 10, ("a", "a1"), ("b", "b1"), ("P", "C"), {})] * 2  # 8 units
    val_same = [_interval(-0.5, -2.0, +1.0), _interval(+0.2, -1.0, +1.4)]
    tighter = _interval(-1.0, -1.6, -0.4)
    assert setting_choice(claims, val_same, tighter) == "replaces the reference"
    assert setting_choice(claims, val_same, _interval(-1.0, -2.1, +0.1)) == "the reference stays"
    val_lower = [_interval(-1.5, -4.0, +1.0), val_same[1]]   # mean down by more than 1 point
    assert setting_choice(claims, val_lower, tighter) == "the reference stays"
    assert setting_choice(claims, [val_same[0], {"n": 0}], tighter) == "the reference stays"
    assert setting_choice(claims, val_same, _interval(-1.0, -1.6, -0.4, n=3)) \
        == "not chosen yet (n 3 of 8)"
    assert setting_choice(claims, val_same, {"n": 1, "mean": -1.0}) == "not measured"


def test_the_ablation_table_from_made_up_records(monkeypatch):
    """One setting on two splits × two seeds: source val up 1 on MMD's sets and flat on the
    initialisation; each set's networks spread 2.8 under the own evaluation, 0.7 under the
    setting."""
    from types import SimpleNamespace

    from cadm_utils.reporting import report

    second = {"evaluate.lr": 0.5}  # a profile that studies its evaluation
    profile = _profile({
        "table1": {"datasets": ["pacs"], "methods": ["mmd"], "ipcs": [10], "seeds": [0, 1]},
        "init": {"datasets": ["pacs"], "methods": ["mmd"], "ipcs": [10], "seeds": [0, 1],
                 "variants": {"init": {"distill.steps": 0}}},
        "ablate": {"datasets": ["pacs"], "methods": ["mmd"], "ipcs": [10], "seeds": [0, 1],
                   "variants": {"b": {"evaluate.epochs": 3},
                                "b_init": {"distill.steps": 0, "evaluate.epochs": 3}}}},
                       second_evaluation=second)
    records = []
    for own, setting, gain in (("mmd", "mmd{b}", 1.0), ("mmd{seed1}", "mmd{b_seed1}", 1.0),
                               ("mmd{init}", "mmd{b_init}", 0.0),
                               ("mmd{init_seed1}", "mmd{b_init_seed1}", 0.0)):
        for split in ("ACS→P", "APS→C"):
            records += [_record(own, split, 0, 0.0, 40.0), _record(own, split, 1, 0.0, 44.0),
                        _record(setting, split, 0, 99.0, 41.5 + gain),
                        _record(setting, split, 1, 99.0, 42.5 + gain)]
    monkeypatch.setattr(report, "current_records", lambda runner: records)
    table = report.ablation_table(SimpleNamespace(profile=profile))
    assert [row[:3] for row in table.rows] == [["evaluate.epochs 3", "pacs", "10"]]
    row = table.rows[0]
    assert row[3] == "+1.0 [+1.0, +1.0] (n 4, ±0.0)" and row[4].startswith("+0.0 ")
    # sd of (40, 44) is 2√2, of (41.5, 42.5) √0.5: 2.8 → 0.7 on all 8 units
    assert row[5].startswith("2.8 → 0.7: -2.1 [-2.1, -2.1] (n 8,")
    assert row[6] == "replaces the reference"
    # the same profile without a second evaluation does not study its evaluation
    plain = dataclasses.replace(profile, second_evaluation={})
    assert report.ablation_table(SimpleNamespace(profile=plain)) is None
