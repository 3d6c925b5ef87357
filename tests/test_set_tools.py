"""The set tools refuse what they cannot answer: every bad input to `evaluate-set` and
`export-sets` is one line on stderr and exit status 2, before any training and with nothing
written; a set is never scored on a domain it was made from; the decoded-image cache follows
the files it decodes."""
import json
import os
import subprocess

import pytest
import torch

from cadm_utils.__main__ import main
from .conftest import REPO_ROOT

SHIPPED = REPO_ROOT / "sets" / "pacs-dm" / "mmd" / "pacs" / "ACS-to-P" / "IPC10.pt"


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    return err[0]


def tiny_set_file(path, info: dict | None, n_classes: int = 5, per_class: int = 2):
    """A DM-form set of random images on the embedded benchmark's 32 px, with `info`."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    images = torch.rand(len(labels), 3, 32, 32, generator=generator)
    content = {"data": [(images, labels)]}
    if info is not None:
        content["info"] = info
    torch.save(content, path)
    return path


@pytest.mark.parametrize("profile, dataset", [("smoke", "pacs"), ("ci", "pacs"), ("ci", "foo")])
def test_a_data_set_the_profile_lacks_is_one_line(tmp_path, capsys, profile, dataset):
    assert main(["evaluate-set", str(SHIPPED), "--profile", profile, "--dataset", dataset,
                 "--target", "P", "--results-dir", str(tmp_path / "r"), "--quiet"]) == 2
    line = one_error_line(capsys)
    assert f"profile '{profile}' has no data set '{dataset}'" in line
    assert not (tmp_path / "r").exists()


def test_a_target_the_set_was_made_from_is_refused_with_its_split(tmp_path, capsys):
    assert main(["evaluate-set", str(SHIPPED), "--profile", "pacs-dm", "--target", "S",
                 "--data-root", str(tmp_path / "no-data-needed"),
                 "--results-dir", str(tmp_path / "r"), "--quiet"]) == 2
    line = one_error_line(capsys)
    assert "art_painting, cartoon, sketch for photo (split ACS→P)" in line
    assert "S is one of its source domains" in line
    assert not (tmp_path / "r").exists()


def test_the_target_defaults_to_the_one_the_set_was_made_for(tmp_path, capsys):
    """With no --target (and no --dataset) the file's split decides; the data root is then
    the first thing missing."""
    assert main(["evaluate-set", str(SHIPPED), "--profile", "pacs-dm", "--results-dir",
                 str(tmp_path / "r"), "--data-root", str(tmp_path / "absent"), "--quiet"]) == 2
    assert "data root not found" in one_error_line(capsys)


def test_a_file_without_a_split_needs_dataset_and_target(tmp_path, capsys):
    path = tiny_set_file(tmp_path / "dm.pt", None)
    assert main(["evaluate-set", str(path), "--profile", "ci", "--quiet"]) == 2
    assert "names no split: give --dataset and --target" in one_error_line(capsys)


def test_a_file_without_a_split_says_so_first_and_may_take_any_target(tmp_path, capsys):
    path = tiny_set_file(tmp_path / "dm.pt", None)
    assert main(["evaluate-set", str(path), "--profile", "ci", "--dataset", "embedded",
                 "--target", "S", "--seeds", "1", "--results-dir", str(tmp_path / "r"),
                 "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"note: {path} carries no split")
    assert (tmp_path / "r" / "evaluated_sets.jsonl").exists()


def test_another_profiles_set_is_named_in_the_first_line(tmp_path, capsys):
    info = {"profile": "smoke", "dataset": "embedded", "split": "ACS→P"}
    path = tiny_set_file(tmp_path / "smoke-set.pt", info)
    assert main(["evaluate-set", str(path), "--profile", "ci", "--seeds", "1",
                 "--results-dir", str(tmp_path / "r"), "--quiet"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == (f"note: {path} was made under profile 'smoke' and is evaluated here "
                     "under profile 'ci'")


def test_the_records_go_where_git_ignores_them(tmp_path, capsys):
    info = {"profile": "ci", "dataset": "embedded", "split": "ACS→P"}
    path = tiny_set_file(tmp_path / "ci-set.pt", info)
    assert main(["evaluate-set", str(path), "--profile", "ci", "--seeds", "1", "--quiet"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    records = last.rsplit("records in ", 1)[1]
    assert records == str(REPO_ROOT / "runs" / "ci" / "evaluated_sets.jsonl")
    ignored = subprocess.run(["git", "check-ignore", "-q", records], cwd=REPO_ROOT)
    assert ignored.returncode == 0


def test_evaluate_set_reads_the_file_once(tmp_path, capsys, monkeypatch):
    """Its metadata (split, profile) and its images come from one torch.load."""
    info = {"profile": "ci", "dataset": "embedded", "split": "ACS→P"}
    path = tiny_set_file(tmp_path / "ci-set.pt", info)
    loads_of_the_file, real_load = [], torch.load

    def counting_load(source, *args, **kwargs):
        if str(source) == str(path):
            loads_of_the_file.append(source)
        return real_load(source, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    assert main(["evaluate-set", str(path), "--profile", "ci", "--seeds", "1",
                 "--results-dir", str(tmp_path / "r"), "--quiet"]) == 0
    assert len(loads_of_the_file) == 1


def unwritable_folder(tmp_path) -> str:
    """A folder no file can be made in: read-only for a user, sysfs for root."""
    if os.geteuid() == 0:
        if not os.path.isdir("/sys/kernel"):
            pytest.skip("no sysfs to stand for an unwritable folder")
        return "/sys/cadm-export-test"
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return str(folder / "out")


@pytest.fixture(scope="module")
def ci_runner_with_a_set(tmp_path_factory):
    """The ci profile's runner with one distilled set on disk (in a temporary run folder)."""
    from cadm_utils.experiment.pipeline import open_run
    from cadm_utils.experiment.products import synthetic_set

    tmp = tmp_path_factory.mktemp("set-tools")
    runner, [cell] = open_run("ci", stages="table1", methods="mmd", targets="P", ipcs="1",
                              results_dir=tmp / "r", run_dir=tmp / "w", progress=False)
    synthetic_set(runner, cell, runner.task(cell.dataset, cell.target))
    return runner


@pytest.fixture
def export_with(ci_runner_with_a_set, monkeypatch):
    import cadm_utils.__main__ as cli

    monkeypatch.setattr(cli, "_runner", lambda args, **options: ci_runner_with_a_set)
    return lambda out: main(["export-sets", "--profile", "ci", "--out", str(out)])


def test_export_sets_into_an_unwritable_folder_is_one_line(export_with, tmp_path, capsys):
    out = unwritable_folder(tmp_path)
    assert export_with(out) == 2
    assert f"--out {out}: cannot write there" in one_error_line(capsys)
    assert not os.path.exists(out)


def test_export_sets_through_a_file_is_one_line(export_with, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert export_with(blocker / "sets") == 2
    assert f"{blocker} is a file, not a folder" in one_error_line(capsys)


def test_export_sets_writes_where_it_can(export_with, tmp_path, capsys):
    assert export_with(tmp_path / "sets") == 0
    manifest = json.loads((tmp_path / "sets" / "manifest.json").read_text())
    assert len(manifest["sets"]) == 1 and manifest["sets"][0]["run_file"].endswith(".pt")


def test_export_sets_with_nothing_to_export_writes_nothing(tmp_path, capsys):
    out = tmp_path / "none"
    assert main(["export-sets", "--profile", "ci", "--seed", "99", "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert "nothing was written" in line and "./run_all.sh --profile ci" in line
    assert not out.exists()


def test_a_changed_image_is_read_again_and_named(tiny_pacs, capsys):
    summary = ["data-summary", "--dataset", "pacs", "--data-root", str(tiny_pacs),
               "--resolution", "16", "--quiet"]
    assert main(summary) == 0  # decoded and cached
    capsys.readouterr()
    image = tiny_pacs / "PACS" / "photo" / "dog" / "img1.jpg"
    image.write_bytes(os.urandom(image.stat().st_size))  # the same size, other bytes
    assert main(summary) == 2
    assert f"unreadable image: {image}" in one_error_line(capsys)


def test_the_shipped_manifest_names_each_sets_run_file():
    manifest = json.loads((SHIPPED.parents[3] / "manifest.json").read_text())
    assert all(entry["run_file"].endswith(".pt") and entry["product"]["set_id"] == entry["set_id"]
               for entry in manifest["sets"])


def test_a_missing_run_set_is_taken_from_a_shipped_copy_checked_by_sha256(
        ci_runner_with_a_set, tmp_path, monkeypatch):
    """A re-evaluation on a fresh clone remakes no set: the pipeline takes the shipped file
    whose manifest names the run's set file, after its SHA-256 check."""
    from cadm_utils.errors import DataError
    from cadm_utils.experiment import shipped
    from cadm_utils.experiment.products import synthetic_set
    from cadm_utils.experiment.runner import Runner
    from cadm_utils.experiment.sets import export_sets
    from cadm_utils.experiment.store import content_id

    made = ci_runner_with_a_set
    [entry] = export_sets(made, tmp_path / "sets" / "ci", form="stored")
    monkeypatch.setattr(shipped, "SETS_DIR", tmp_path / "sets")
    fresh = Runner(made.profile, results_dir=tmp_path / "r", run_dir=tmp_path / "w",
                   progress=False)
    [cell] = [c for c in _ci_cells() if c.method.name == "mmd"]
    synthetic, info = synthetic_set(fresh, cell, fresh.task(cell.dataset, cell.target))
    assert info["set_id"] == entry["set_id"] == content_id(synthetic.state())
    assert not (tmp_path / "w" / "experts").exists()  # no expert was trained
    assert (tmp_path / "w" / "synthetic" / entry["run_file"]).exists()
    shipped_file = tmp_path / "sets" / "ci" / entry["file"]
    shipped_file.write_bytes(shipped_file.read_bytes()[:-1])  # truncated
    with pytest.raises(DataError, match="SHA-256 differs"):
        shipped.shipped_state(entry["run_file"])


def _ci_cells():
    from cadm_utils.experiment.cells import plan_cells
    from cadm_utils.profiles import load_profile

    return plan_cells(load_profile("ci"), stages="table1", methods="mmd", targets="P",
                      ipcs="1")


def test_a_shipped_set_needs_no_expert(ci_runner_with_a_set, tmp_path, monkeypatch):
    from cadm_utils.experiment import shipped
    from cadm_utils.experiment.planning import missing_products
    from cadm_utils.experiment.runner import Runner
    from cadm_utils.experiment.sets import export_sets

    made = ci_runner_with_a_set
    fresh = Runner(made.profile, results_dir=tmp_path / "r", run_dir=tmp_path / "w",
                   progress=False)
    cells = _ci_cells()
    assert missing_products(fresh, cells) != ([], [])  # nothing shipped: expert and set
    export_sets(made, tmp_path / "sets" / "ci", form="stored")
    monkeypatch.setattr(shipped, "SETS_DIR", tmp_path / "sets")
    assert missing_products(fresh, cells) == ([], [])
