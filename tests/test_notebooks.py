"""The nbval references in tests/notebooks/ are the reader's notebooks executed with the ci
profile (scripts/run_notebooks.py --profile ci --no-progress --into tests/notebooks); their
code must not drift from notebooks/."""
import json
import os
import platform
import subprocess
import sys
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
        assert "".join(parameters["source"]).startswith('profile = "bench"')


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="the ATen kernel pin is for x86-64")
def test_notebook_kernels_run_the_kernels_that_wrote_the_references():
    """The nbval references hold digit for digit only with ATen's AVX2 kernels (conftest.py
    pins them); a kernel process inherits the pin from the test session's environment."""
    code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in ("AVX2", "DEFAULT")
