import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
PACS_ROOT = Path(os.environ.get("CADM_PACS_ROOT", REPO_ROOT.parent / "shared" / "data" / "pacs-64"))


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session decodes into its own cache, never the user's."""
    monkeypatch.setenv("CADM_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def pacs_root():
    if not (PACS_ROOT / "PACS").is_dir():
        pytest.skip(f"shared PACS copy not found at {PACS_ROOT}")
    return PACS_ROOT


def write_image(path: Path, size=(20, 12), seed=0, suffix=".png"):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(
        path.with_suffix(suffix))


@pytest.fixture
def tiny_pacs(tmp_path):
    """A PACS-layout folder with 2 images per domain and class, .jpg and .png mixed."""
    from cadm_utils.data import REAL_DATASETS

    spec = REAL_DATASETS["pacs"]
    for d, domain in enumerate(spec.domains):
        for c, name in enumerate(spec.classes):
            for i in range(3):
                write_image(tmp_path / "PACS" / domain / name / f"img{i}",
                            size=(20 + i, 12 + d), seed=100 * d + 10 * c + i,
                            suffix=".png" if domain == "sketch" else ".jpg")
    return tmp_path


def pytest_sessionstart(session):
    """The notebooks' nbval run starts from nothing, so that every checked number is
    recomputed here (a run with other threads must not reuse products of an earlier one)."""
    import shutil

    for folder in ("runs/ci", "results/ci", "figures/ci"):
        shutil.rmtree(REPO_ROOT / folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def default_float_type():
    """A float64 profile sets torch's default float type; later tests expect float32."""
    import torch

    from cadm_utils.runtime import use_cuda_path

    yield
    torch.set_default_dtype(torch.float32)
    use_cuda_path(False)
