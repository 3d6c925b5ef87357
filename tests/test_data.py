import subprocess
import sys

import pytest
import torch

from cadm_utils.data import (REAL_DATASETS, TRAIN, UNLISTED, VAL, in_domain,
                             leave_one_domain_out, load_dataset, random_split)
from cadm_utils.errors import DataError

from .conftest import REPO_ROOT, write_image

PACS_COUNTS = {"art_painting": 2048, "cartoon": 2344, "photo": 1670, "sketch": 3929}


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "cadm_utils", *args], capture_output=True,
                          text=True, cwd=cwd or REPO_ROOT, timeout=300)


# ------------------------------------------------------------------ real PACS copy

def test_pacs_counts_and_official_splits(pacs_root):
    data = load_dataset("pacs", pacs_root, 64, progress=False)
    assert len(data) == 9991
    assert data.images.shape == (9991, 3, 64, 64) and data.images.dtype == torch.uint8
    for d, domain in enumerate(data.domain_names):
        assert int((data.domains == d).sum()) == PACS_COUNTS[domain]
    assert data.class_names == ["dog", "elephant", "giraffe", "guitar", "horse", "house", "person"]
    # art_painting's crossval list names pic_248 twice and lacks pic_249: that image is unlisted
    assert int((data.split == UNLISTED).sum()) == 1
    unlisted = data.paths[int((data.split == UNLISTED).nonzero())]
    assert unlisted.startswith("art_painting/") and "pic_249" in unlisted
    photo = data.split[data.domains == data.domain_names.index("photo")]
    assert int((photo == TRAIN).sum()) == 1499 and int((photo == VAL).sum()) == 171


def test_pacs_labels_come_from_folders(pacs_root):
    data = load_dataset("pacs", pacs_root, 64, progress=False)
    # the first line of art_painting_crossval carries label 0; the folder says dog
    index = data.paths.index("art_painting/dog/pic_225.jpg")
    assert data.class_names[int(data.labels[index])] == "dog"


def test_pacs_second_load_comes_from_the_cache_and_is_identical(pacs_root, monkeypatch):
    from cadm_utils.data import folders

    first = load_dataset("pacs", pacs_root, 64, progress=False)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although nothing changed")

    monkeypatch.setattr(folders, "decode_images", no_decoding)
    second = load_dataset("pacs", pacs_root, 64, progress=False)
    assert torch.equal(first.images, second.images)


def test_pacs_leave_one_domain_out(pacs_root):
    data = load_dataset("pacs", pacs_root, 64, progress=False)
    task = leave_one_domain_out(data, "P")
    assert task.name == "ACS→P"
    assert len(task.test) == 1670  # the whole target domain
    assert set(task.train.domains.tolist()) == {0, 1, 3}
    assert len(task.train) == 1840 + 2107 + 3531


def test_pacs_data_summary_cli(pacs_root):
    result = run_cli("data-summary", "--dataset", "pacs", "--data-root", str(pacs_root), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "pacs: 9991 images" in result.stdout
    assert "photo" in result.stdout and "1670" in result.stdout


# ------------------------------------------------------------------ folders built here

def test_tiny_folder_mixed_formats_any_size(tiny_pacs):
    data = load_dataset("pacs", tiny_pacs, 16, progress=False)
    assert data.images.shape == (4 * 7 * 3, 3, 16, 16)
    assert data.counts().eq(3).all()


def test_random_split_is_seeded_and_stratified():
    labels = torch.arange(4).repeat_interleave(10)
    domains = torch.zeros(40, dtype=torch.long)
    a = random_split(labels, domains, 0.3, seed=1)
    assert torch.equal(a, random_split(labels, domains, 0.3, seed=1))
    assert not torch.equal(a, random_split(labels, domains, 0.3, seed=2))
    for c in range(4):
        assert int((a[labels == c] == VAL).sum()) == 3


def test_in_domain_uses_every_domain(tiny_pacs):
    data = load_dataset("pacs", tiny_pacs, 16, progress=False)
    task = in_domain(data)
    assert set(task.train.domains.tolist()) == {0, 1, 2, 3}
    assert len(task.train) + len(task.test) == len(data)


@pytest.mark.parametrize("breakage, message", [
    ("missing_root", "data root not found"),
    ("wrong_layout", "wrong layout"),
    ("unknown_domain", "unknown domain folder"),
    ("unknown_class", "unknown class folder"),
    ("empty_class", "empty class folder"),
    ("corrupt_image", "unreadable image"),
])
def test_bad_input_one_line_error_exit_2(tiny_pacs, tmp_path, breakage, message, capsys):
    root = tiny_pacs
    if breakage == "missing_root":
        root = tmp_path / "nowhere"
    elif breakage == "wrong_layout":
        (tiny_pacs / "PACS").rename(tiny_pacs / "pacs_images")
    elif breakage == "unknown_domain":
        write_image(tiny_pacs / "PACS" / "clipart" / "dog" / "x")
    elif breakage == "unknown_class":
        write_image(tiny_pacs / "PACS" / "photo" / "zebra" / "x")
    elif breakage == "empty_class":
        for f in (tiny_pacs / "PACS" / "cartoon" / "horse").iterdir():
            f.unlink()
    elif breakage == "corrupt_image":
        (tiny_pacs / "PACS" / "photo" / "dog" / "img1.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match=message):
        load_dataset("pacs", root, 16, progress=False)
    from cadm_utils.__main__ import main

    assert main(["data-summary", "--dataset", "pacs", "--data-root", str(root), "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    if breakage not in ("missing_root",):
        assert str(tiny_pacs) in lines[0]  # names the path


def test_corrupt_image_leaves_no_cache_entry(tiny_pacs, tmp_path):
    (tiny_pacs / "PACS" / "photo" / "dog" / "img1.jpg").write_bytes(b"broken")
    cache = tmp_path / "cache_here"
    with pytest.raises(DataError):
        load_dataset("pacs", tiny_pacs, 16, cache_dir=cache, progress=False)
    assert not cache.exists() or not any(cache.iterdir())


def test_unknown_dataset_and_target(tiny_pacs):
    with pytest.raises(DataError, match="unknown data set 'pacs2'"):
        load_dataset("pacs2", tiny_pacs)
    data = load_dataset("pacs", tiny_pacs, 16, progress=False)
    with pytest.raises(DataError, match="unknown domain 'Q'"):
        leave_one_domain_out(data, "Q")


def test_cache_invalidated_when_files_change(tiny_pacs):
    first = load_dataset("pacs", tiny_pacs, 16, progress=False)
    write_image(tiny_pacs / "PACS" / "photo" / "dog" / "img9", seed=99, suffix=".jpg")
    second = load_dataset("pacs", tiny_pacs, 16, progress=False)
    assert len(second) == len(first) + 1


def test_domaindrops_layout_with_its_split_lists(tiny_pacs):
    """DomainDrop's README: images under PACS/kfold/<domain>/<class>/, the official lists in
    PACS/pacs_label/<domain>_{train,crossval}_kfold.txt (lines "<domain>/<class>/<file> <label>")."""
    flat = load_dataset("pacs", tiny_pacs, 16, progress=False)
    pacs = tiny_pacs / "PACS"
    (pacs / "kfold").mkdir()
    for domain in REAL_DATASETS["pacs"].domains:
        (pacs / domain).rename(pacs / "kfold" / domain)
    (pacs / "pacs_label").mkdir()
    for domain in REAL_DATASETS["pacs"].domains:
        files = sorted(p.relative_to(pacs / "kfold").as_posix()
                       for p in (pacs / "kfold" / domain).rglob("img*"))
        lists = {"train": [f for f in files if "img2" not in f],
                 "crossval": [f for f in files if "img2" in f]}
        for part, names in lists.items():
            (pacs / "pacs_label" / f"{domain}_{part}_kfold.txt").write_text(
                "".join(f"{name} 1\n" for name in names))
    moved = load_dataset("pacs", tiny_pacs, 16, progress=False)
    assert torch.equal(moved.images, flat.images) and moved.paths == flat.paths
    val = [p for p, code in zip(moved.paths, moved.split.tolist()) if code == VAL]
    assert val and all("img2" in p for p in val)  # the lists decide, not the random split
    assert len(val) == 4 * 7
