"""A stage's kind is decided in one place (settings.stage_kind) and read by planning, tables,
summaries and the report; a new kind is its declaration plus its renderer."""
import pytest

from cadm_utils import settings
from cadm_utils.errors import ConfigError
from cadm_utils.experiment.cells import plan_cells
from cadm_utils.experiment.runner import Runner
from cadm_utils.reporting import tables
from cadm_utils.reporting.report import profile_claims
from cadm_utils.settings import resolve_profile


def _profile(stage: dict) -> dict:
    return resolve_profile({"name": "kinds", "device": "cpu", "evaluate": {"steps": 10},
                            "datasets": {"embedded": {"resolution": 32, "targets": ["P", "C"]}},
                            "stages": {"toy_stage": stage}})


def test_every_kind_in_the_repository_profiles_is_inferred_as_before():
    from cadm_utils.profiles import load_profile

    kinds = {(name, stage): s.kind for name in ("smoke", "bench", "pacs-cpu", "pacs-dm")
             for stage, s in load_profile(name).stages.items()}
    assert kinds[("smoke", "table1")] == kinds[("smoke", "table4")] == "methods"
    assert kinds[("smoke", "table2")] == "ablation" and kinds[("smoke", "table3")] == "networks"
    assert kinds[("bench", "replicates")] == kinds[("pacs-dm", "init")] == "variants"
    assert set(kinds.values()) <= set(settings.STAGE_KINDS)


def test_a_new_stage_kind_is_declared_once_then_planned_tabled_and_reported(monkeypatch,
                                                                            tmp_path):
    monkeypatch.setitem(settings.STAGE_KINDS, "toy", "one row per method, listed by name")
    monkeypatch.setitem(tables.STAGE_RENDERERS, "toy", lambda c: tables.Table(
        c.title, ["Method", "splits"], [[m, str(len(c.splits))] for m in c.settings.methods]))
    profile = _profile({"kind": "toy", "datasets": ["embedded"], "methods": ["mmd", "cadm"],
                        "ipcs": [1], "variants": {"a": {"seed": 1}},  # read by its kind only
                        "claims": [{"label": "CADM above MMD", "first": ["cadm"],
                                    "second": ["mmd"]}]})
    assert profile.stages["toy_stage"].kind == "toy"
    cells = plan_cells(profile)
    assert [(c.method.name, c.target, c.overrides) for c in cells] == [
        ("mmd", "P", ()), ("cadm", "P", ()), ("mmd", "C", ()), ("cadm", "C", ())]
    runner = Runner(profile, results_dir=tmp_path, run_dir=tmp_path, progress=False)
    table = tables.stage_tables(runner)["toy_stage_embedded"]
    assert table.rows == [["mmd", "2"], ["cadm", "2"]]
    assert "toy_stage_embedded_summary" not in tables.summary_tables(runner)
    assert [c.label for c in profile_claims(profile)] == ["CADM above MMD"]


def test_an_unknown_stage_kind_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"stages\.toy_stage\.kind.*must be one of"):
        _profile({"kind": "toy", "datasets": ["embedded"], "methods": ["mmd"], "ipcs": [1]})


def test_fig1_draws_table1_of_every_repository_profile_methods_or_variants():
    """06_tables' Fig. 1(a), 1(c) read the first methods table, else the first stage holding
    several methods under their own names (pacs-dm's Table 1 is a variants stage)."""
    from cadm_utils.profiles import load_profile

    chosen = {name: tables.figure_stage(load_profile(name))
              for name in ("smoke", "bench", "pacs-cpu", "pacs-dm", "bench-dm", "paper")}
    assert all(stage is not None for stage in chosen.values())
    assert chosen["bench"].kind == "methods"
    assert chosen["pacs-dm"] == load_profile("pacs-dm").stages["table1"]
    only_variants = _profile({"datasets": ["embedded"], "methods": ["mmd", "cadm"],
                              "ipcs": [1], "variants": {"longer": {"distill.steps": 8}}})
    assert tables.figure_stage(only_variants) is None  # no row under the methods' own names
