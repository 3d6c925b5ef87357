"""Profiles load into one typed object: stages carry their kind, rows and claims; `seeds`
makes a stage's seed rows and pairs its claims; `extends` merges, drops what is set to null
and replaces what `replace` lists; code reads the typed object, not nested mappings."""
import re

import pytest
import yaml

from cadm_utils.errors import ConfigError
from cadm_utils.profiles import load_profile
from cadm_utils.settings import Profile, Stage, resolve_profile, seed_row
from .conftest import REPO_ROOT


def resolved(stages: dict, **settings) -> Profile:
    return resolve_profile({"name": "t", "evaluate": {"steps": 2},
                            "datasets": {"embedded": {"targets": ["P"]}}, "stages": stages,
                            **settings})


def test_seeds_make_each_rows_seed_copies_and_pair_the_claims():
    profile = resolved({"s": {"datasets": ["embedded"], "methods": ["mmd", "cadm"], "ipcs": [1],
                              "seeds": [0, 2], "variants": {"reference": {}, "long": {
                                  "distill.steps": 9}},
                              "claims": [{"label": "c", "first": ["cadm{long}"],
                                          "second": ["mmd"]}]}})
    stage = profile.stages["s"]
    assert isinstance(stage, Stage) and stage.kind == "variants"
    assert stage.variants == {"reference": {}, "seed2": {"seed": 2},
                              "long": {"distill.steps": 9},
                              "long_seed2": {"distill.steps": 9, "seed": 2}}
    assert stage.claims == ({"label": "c", "first": ["cadm{long}", "cadm{long_seed2}"],
                             "second": ["mmd", "mmd{seed2}"]},)


def test_a_seed_row_is_named_as_the_hand_written_rows_were():
    assert seed_row("mmd", 0, 0) == "mmd"
    assert seed_row("mmd", 1, 0) == seed_row("mmd{reference}", 1, 0) == "mmd{seed1}"
    assert seed_row("mmd{init}", 2, 0) == "mmd{init_seed2}"


def test_seeds_refuse_a_row_that_sets_its_own_seed_and_a_claim_of_several_rows():
    with pytest.raises(ConfigError, match=r"variants\.x.*sets seed"):
        resolved({"s": {"datasets": ["embedded"], "methods": ["mmd"], "ipcs": [1],
                        "seeds": [0, 1], "variants": {"x": {"seed": 3}}}})
    with pytest.raises(ConfigError, match="names several rows a side"):
        resolved({"s": {"datasets": ["embedded"], "methods": ["mmd"], "ipcs": [1],
                        "seeds": [0, 1], "claims": [{"label": "c", "first": ["a", "b"],
                                                     "second": ["c", "d"]}]}})


def write(folder, name, content: dict):
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(content))
    return path


def test_extends_merges_drops_null_and_replaces_what_it_lists(tmp_path):
    base = {"name": "base", "evaluate": {"steps": 3}, "datasets": {"embedded": {"targets": ["P"]}},
            "stages": {"a": {"datasets": ["embedded"], "methods": ["mmd"], "ipcs": [1]},
                       "b": {"datasets": ["embedded"], "methods": ["cadm"], "ipcs": [1]}}}
    write(tmp_path, "base", base)
    merged = load_profile(write(tmp_path, "m", {
        "name": "m", "extends": str(tmp_path / "base.yaml"),
        "evaluate": {"steps": None, "epochs": 5},
        "stages": {"b": None, "c": {"datasets": ["embedded"], "methods": ["mmd"], "ipcs": [2]}}}))
    assert list(merged.stages) == ["a", "c"]
    assert (merged.sections.evaluate.steps, merged.sections.evaluate.epochs) == (0, 5)
    replaced = load_profile(write(tmp_path, "r", {
        "name": "r", "extends": str(tmp_path / "base.yaml"), "replace": ["stages"],
        "stages": {"c": {"datasets": ["embedded"], "methods": ["mmd"], "ipcs": [2]}}}))
    assert list(replaced.stages) == ["c"]
    with pytest.raises(ConfigError, match="replace must list keys the profile sets"):
        load_profile(write(tmp_path, "bad", {"name": "bad", "extends": str(tmp_path / "base.yaml"),
                                             "replace": ["model"]}))


def test_the_dm_profiles_state_only_what_differs_from_their_base():
    for name, base in (("pacs-dm", "pacs-cpu"), ("bench-dm", "bench")):
        raw = yaml.safe_load((REPO_ROOT / "profiles" / f"{name}.yaml").read_text())
        assert raw["extends"] == base
        assert "datasets" not in raw and "workers" not in raw  # inherited
    for path in sorted((REPO_ROOT / "profiles").glob("*.yaml")):
        assert not re.search(r"_seed\d+\s*:|\bseed\d+\s*:", path.read_text()), path.name


def test_code_reads_the_typed_profile_not_nested_mappings():
    reads = [f"{path.relative_to(REPO_ROOT)}:{number}"
             for path in sorted((REPO_ROOT / "cadm_utils").rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if 'profile["' in line]
    assert len(reads) <= 10, reads
    assert all(r.startswith(("cadm_utils/settings.py", "cadm_utils/profiles.py",
                             "cadm_utils/experiment/store.py")) for r in reads), reads
