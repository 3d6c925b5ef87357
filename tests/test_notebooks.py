"""The nbval references in tests/notebooks/ are the reader's notebooks executed with the ci
profile (scripts/run_notebooks.py --profile ci --no-progress --into tests/notebooks); their
code must not drift from notebooks/."""
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
READER = sorted((ROOT / "notebooks").glob("*.ipynb"))


def code_cells(path: Path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"
            and not {"parameters", "injected-parameters"} & set(c["metadata"].get("tags", []))]


@pytest.mark.parametrize("reader", READER, ids=lambda p: p.stem)
def test_reference_copy_runs_the_readers_code(reader):
    reference = ROOT / "tests" / "notebooks" / reader.name
    assert reference.exists(), f"missing nbval reference {reference}"
    assert code_cells(reference) == code_cells(reader)


def test_reader_copies_open_on_a_readable_profile():
    for path in READER:
        cells = json.loads(path.read_text())["cells"]
        parameters = next(c for c in cells if "parameters" in c["metadata"].get("tags", []))
        assert "".join(parameters["source"]).startswith('profile = "smoke"')
        injected = [c for c in cells if "injected-parameters" in c["metadata"].get("tags", [])]
        assert all('profile = "smoke"' in "".join(c["source"]) for c in injected)


@pytest.mark.parametrize("path", READER + sorted((ROOT / "tests" / "notebooks").glob("*.ipynb")),
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_nbval_markers_are_cell_tags_not_code(path):
    """A reader sees code only: nbval's markers live in the cells' tags."""
    cells = json.loads(path.read_text())["cells"]
    assert not [c for c in cells if "NBVAL" in "".join(c["source"])]
    if path.parent.name == "notebooks" and path.parent.parent == ROOT / "tests":
        assert any("nbval-check-output" in c["metadata"].get("tags", []) for c in cells)
