"""The notebooks' regression check of the method, and what it catches.

02_distill prints, in a cell tagged nbval-check-output, every method's loss terms of one step before
any training (reporting.analysis.untrained_step_terms, ci profile, float64): nothing
trained enters, so the digits are the same on every processor. Here the same terms are
computed again and compared with the committed reference printout, and deliberate changes
of the method (P_mask, λ, the mask moved to the synthetic side) are shown to change it,
so each would fail the suite on any processor."""
import dataclasses
import json
import re
from pathlib import Path

import pytest

from cadm_utils.experiment.pipeline import open_run
from cadm_utils.method import methods
from cadm_utils.method.losses import mmd_loss
from cadm_utils.reporting.analysis import untrained_step_terms

REFERENCE = Path(__file__).resolve().parent / "notebooks" / "02_distill.ipynb"
LINE = re.compile(r"^(\S+)\s+match (\S+)  reg (\S+)  λ·L_cons (\S+)$")


def reference_terms() -> dict[str, tuple[str, str, str]]:
    """The 3-digit terms the committed reference printed, per method."""
    cells = json.loads(REFERENCE.read_text())["cells"]
    cell = next(c for c in cells if "untrained_step_terms(runner, cells)" in "".join(c["source"]))
    text = "".join("".join(o["text"]) for o in cell["outputs"] if o["output_type"] == "stream")
    return {m.group(1): m.groups()[1:] for m in map(LINE.match, text.splitlines()) if m}


def printed_terms(runner, cells) -> dict[str, tuple[str, str, str]]:
    return {name: tuple(f"{t[k]:.3g}" for k in ("match", "reg", "lam_cons"))
            for name, t in untrained_step_terms(runner, cells).items()}


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("ci")
    return open_run("ci", results_dir=base / "results", run_dir=base / "runs", progress=False)


def test_the_reference_printout_is_what_the_code_computes(ci_run):
    reference = reference_terms()
    assert {"mmd", "mmd_dam", "mmd_fact", "cadm"} <= set(reference)
    assert printed_terms(*ci_run) == reference


def masked_synthetic_side(self, model, masking, draw, n_classes, real_x, real_y, real_d,
                          syn_x, syn_y, generator, batch=None):
    """A regression: Eq. 7's mask applied to the synthetic features instead of the real."""
    syn_domains = real_d[:len(syn_y)]
    syn = self.real_embedding(model, masking, draw, syn_x, syn_domains, generator)
    return mmd_loss(model.embed(real_x).detach(), real_y, syn, syn_y, n_classes)


@pytest.mark.parametrize("change", ["p_mask 0.5", "lambda 10", "mask on the synthetic side"])
def test_a_deliberate_change_of_the_method_fails_the_check(change, ci_run, monkeypatch):
    runner, cells = ci_run
    sections = runner.sections
    if change == "p_mask 0.5":
        monkeypatch.setattr(runner, "sections", dataclasses.replace(
            sections, masking=dataclasses.replace(sections.masking, p_mask=0.5)))
    elif change == "lambda 10":
        monkeypatch.setattr(runner, "sections", dataclasses.replace(
            sections, masking=dataclasses.replace(sections.masking, lam=10.0)))
    else:
        monkeypatch.setattr(methods.CADM, "matching_loss", masked_synthetic_side)
    changed, reference = printed_terms(runner, cells), reference_terms()
    assert changed["cadm"] != reference["cadm"]
    assert changed["mmd"] == reference["mmd"]  # the baseline does not depend on CADM's settings
