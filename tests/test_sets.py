"""Distilled sets as files (experiment/sets.py): exported in DM's and DC-BENCH's form, read
back and evaluated to the records' accuracy; a bad file is one line and exit status 2."""
import json

import pytest
import torch

from cadm_utils.errors import DataError
from cadm_utils.experiment.pipeline import open_run
from cadm_utils.experiment.sets import evaluate_set, export_sets, read_set_file
from cadm_utils.runtime import file_sha256
from cadm_utils.experiment.evaluation import run_cell


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sets")
    runner, cells = open_run("ci", stages="table1", methods="mmd", targets="P", ipcs="1",
                             results_dir=tmp / "r", run_dir=tmp / "w", progress=False)
    [cell] = cells
    [record] = run_cell(runner, cell, seeds=[0])
    entries = export_sets(runner, tmp / "out")
    return runner, record, entries, tmp


def test_export_writes_dms_form_with_metadata_and_a_manifest(exported):
    runner, record, entries, tmp = exported
    [entry] = entries
    assert entry["file"] == "mmd/embedded/ACS-to-P/IPC1.pt"
    path = tmp / "out" / entry["file"]
    assert entry["sha256"] == file_sha256(path)
    manifest = json.loads((tmp / "out" / "manifest.json").read_text())
    assert manifest["sets"] == entries and manifest["profile"] == "ci"
    content = torch.load(path, weights_only=True)  # what DM and DC-BENCH do, minus the code
    images, labels = content["data"][-1]
    assert images.shape == (len(labels), 3, 32, 32) and labels.max() < 5
    assert len(content["domains"]) == len(labels)
    info = content["info"]
    assert info["set_id"] == record["set_id"] == entry["set_id"]
    assert info["records"] == [{"seed": 0, "acc": record["acc"],
                                "source_val_acc": record["source_val_acc"],
                                "threads": record["threads"]}]
    assert entry["records"] == info["records"]
    assert info["commit"] == record["commit"] and info["settings"]["masking"]["p_mask"] == 0.33


def test_an_exported_set_evaluates_to_its_records_accuracy(exported):
    runner, record, entries, tmp = exported
    [again] = evaluate_set(runner, tmp / "out" / entries[0]["file"], "embedded", "P", [0])
    assert again["acc"] == record["acc"] and again["source_val_acc"] == record["source_val_acc"]
    assert (runner.run_dir / "evaluated_sets.jsonl").exists()  # runs/: ignored by git


def test_the_stored_form_is_a_quarter_and_decodes_to_the_dm_forms_images(exported):
    runner, record, entries, tmp = exported
    stored = export_sets(runner, tmp / "stored", form="stored")
    assert [e["set_id"] for e in stored] == [e["set_id"] for e in entries]
    dm_path, stored_path = (tmp / d / entries[0]["file"] for d in ("out", "stored"))
    content = torch.load(stored_path, weights_only=True)
    assert "data" not in content and content["info"]["form"] == "stored"
    assert content["info"]["records"][0]["acc"] == record["acc"]
    assert json.loads((tmp / "stored" / "manifest.json").read_text())["form"] == "stored"
    images, labels = read_set_file(stored_path, 5, 32)
    dm_images, dm_labels = torch.load(dm_path, weights_only=True)["data"][-1]
    assert torch.equal(images, dm_images) and torch.equal(labels, dm_labels)
    factor = content["stored"]["factor"]
    assert len(labels) == factor ** 2 * len(content["stored"]["labels"])
    assert stored_path.stat().st_size < dm_path.stat().st_size / 2


def test_a_stored_set_evaluates_to_its_records_accuracy_on_the_records_threads(exported):
    runner, record, entries, tmp = exported
    export_sets(runner, tmp / "stored", form="stored")
    threads = torch.get_num_threads()
    [again] = evaluate_set(runner, tmp / "stored" / entries[0]["file"], "embedded", "P", [0],
                           threads=record["threads"])
    assert again["acc"] == record["acc"] and again["threads"] == record["threads"]
    assert torch.get_num_threads() == threads  # restored


def test_export_keeps_the_chosen_pipeline_seeds_sets(exported):
    runner, _, entries, tmp = exported
    assert export_sets(runner, tmp / "seed1", seed=1) == []  # the set is pipeline seed 0's
    assert [e["set_id"] for e in export_sets(runner, tmp / "seed0", seed=0)] == \
        [e["set_id"] for e in entries]


def test_an_unknown_form_names_the_forms(exported, capsys):
    from cadm_utils.__main__ import main

    runner, _, _, tmp = exported
    assert main(["export-sets", "--profile", "ci", "--form", "png", "--out",
                 str(tmp / "png")]) == 2
    assert capsys.readouterr().err.strip() == "error: unknown set form 'png': one of dm, stored"
    with pytest.raises(DataError, match="unknown set form 'png': one of dm, stored"):
        export_sets(runner, tmp / "png", form="png")
    assert not (tmp / "png").exists()


@pytest.mark.parametrize("content, message", [
    (b"not a tensor file", "not a tensor file"),
    ({"data": [(torch.rand(4, 3, 16, 16), torch.zeros(4, dtype=torch.long))]}, "shape"),
    ({"images": torch.rand(4, 3, 32, 32), "labels": torch.tensor([0, 1, 2, 9])}, "labels span"),
    ((torch.rand(4, 3, 32, 32) * 4 - 2, torch.zeros(4, dtype=torch.long)), "de-normalise"),
    ({"something": 1}, "expected"),
])
def test_a_bad_file_is_one_line_and_exit_status_2(tmp_path, capsys, content, message):
    from cadm_utils.__main__ import main

    path = tmp_path / "bad.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(DataError, match=message):
        read_set_file(path, 5, 32)
    assert main(["evaluate-set", str(path), "--profile", "ci", "--dataset", "embedded",
                 "--target", "P", "--results-dir", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "r").exists()  # nothing written
