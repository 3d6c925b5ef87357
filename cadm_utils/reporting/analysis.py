"""The data behind the figures of one profile (Fig. 1(b), 3(a), 3(b), the synthetic grid, the
step anatomy, the untrained-step check, Fig. 1(b)'s spread per set), computed from its
products with reporting/features.py and stored under results/<profile>/analysis/."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import torch

from ..data import split_name
from ..errors import ConfigError, DataError
from ..experiment.cells import Cell, plan_cells
from ..experiment.parallel import job_threads
from ..experiment.products import expert, expert_pool, new_model, synthetic_set
from ..experiment.records import append_record, current_records, load_records, matching
from ..experiment.store import short_hash
from ..method.distill import Distillation
from ..method.masking import MaskDraw, activation_scores, channel_mask
from ..method.methods import PROPOSED, RANDOM, REFERENCE, get_method
from ..method.synthetic import SyntheticSet
from ..runtime import default_dtype, torch_threads, write_atomic
from .features import ChannelActivation, channel_activation, embeddings, grid_images, \
    score_spread, umap_2d


# ----------------------------------------------------------------------------- profile level
# Figures from products (Fig. 1(b), 3(a), 3(b), the synthetic grid) are computed once and
# stored as data under results/<profile>/analysis/ with the content ids of the synthetic
# sets they came from. They are reused only while those ids are the sets' current ones (the
# set on disk, or else the set the cell's records were made from), so that tables and
# figures always come from the same products; a fresh clone renders the stored data.

def analysis_cells(runner, methods) -> dict:
    """{method: its cell on the profile's analysis split and IPC}."""
    settings = runner.sections.analysis
    return {name: Cell("analysis", settings.dataset, settings.target, get_method(name),
                       settings.ipc) for name in methods}


def current_set_ids(runner, methods) -> dict:
    """Each method's current synthetic-set id on the analysis split (None: no set yet)."""
    records = current_records(runner)
    ids = {}
    for name, cell in analysis_cells(runner, methods).items():
        on_disk = runner.store.stored_set_id(runner.store.synthetic_path(cell).name)
        from_records = [r.get("set_id") for r in matching(
            records, dataset=cell.dataset, split=runner.task(cell.dataset, cell.target).name,
            method=name, ipc=cell.ipc, net="resnet18")]
        ids[name] = on_disk or (from_records[-1] if from_records else None)
    return ids


def stored_analysis(runner, kind: str, methods, compute) -> dict[str, dict[str, np.ndarray]]:
    """{method: {name: array}} of one analysis, from results/<profile>/analysis/ when it was
    made from the current sets, else `compute(runner, methods)` (which makes missing
    products) stored there."""
    settings = runner.store.values["analysis"]  # the stored analyses' keys hash it as stated
    key = short_hash([kind, settings, list(methods),
                      runner.store.product_hash(settings["dataset"], settings["ipc"])])
    path = runner.results_dir / "analysis" / f"{kind}-{key}.npz"
    meta_path = path.with_suffix(".json")
    wanted = current_set_ids(runner, methods)
    if path.exists() and meta_path.exists() and None not in wanted.values() and \
            json.loads(meta_path.read_text()).get("set_ids") == wanted:
        stored = np.load(path)
        return {m: {k.split("/", 1)[1]: stored[k] for k in stored.files if k.startswith(m + "/")}
                for m in methods}
    result = compute(runner, methods)
    arrays = {f"{m}/{k}": v for m, arrays in result.items() for k, v in arrays.items()}
    write_atomic(path, lambda tmp: np.savez_compressed(tmp, **arrays))
    write_atomic(meta_path, lambda tmp: tmp.write_text(json.dumps(
        {"set_ids": current_set_ids(runner, methods)}, indent=1, sort_keys=True) + "\n"))
    return result


def analysis_sets(runner, methods=(REFERENCE, PROPOSED)) -> tuple:
    """(task, {method: SyntheticSet}) for the profile's analysis split and IPC (made when
    missing)."""
    settings = runner.sections.analysis
    task = runner.task(settings.dataset, settings.target)
    sets = {name: synthetic_set(runner, cell, task)[0]
            for name, cell in analysis_cells(runner, methods).items()}
    return task, sets


def activation_by_method(runner, methods=(REFERENCE, PROPOSED)) -> dict[str, ChannelActivation]:
    """Fig. 1(b)/3(b): last-block scores of each method's decoded synthetic images, per
    source domain, all probed by the same domain heads (CADM's expert), as in the paper's
    "same synthetic data initialization" comparison."""
    stored = stored_analysis(runner, "activation", methods, _activation_arrays)
    return {m: ChannelActivation(a["scores"], a["domains"].tolist()) for m, a in stored.items()}


def _activation_arrays(runner, methods) -> dict:
    task, sets = analysis_sets(runner, methods)
    probe, _ = expert(runner, runner.sections.analysis.dataset, task, get_method(PROPOSED))
    out = {}
    for name, synthetic in sets.items():
        images, _, domains = synthetic.decoded()
        activation = channel_activation(probe, images, domains)
        out[name] = {"scores": activation.scores, "domains": np.array(activation.domains)}
    return out


def umap_by_method(runner, methods=(REFERENCE, PROPOSED)) -> dict[str, dict]:
    """Fig. 3(a): one class, real source images (a seeded sample per domain) and the
    decoded synthetic images, embedded by each method's own expert, then a joint UMAP."""
    return stored_analysis(runner, "umap", methods, _umap_panels)


def grid_by_method(runner, methods=(RANDOM, REFERENCE, PROPOSED), per_class: int = 2) -> dict:
    """Stored synthetic images for the notebooks' image grid: {method: (K, per_class, H, W, 3)}."""
    stored = stored_analysis(runner, "grid", methods,
                             lambda r, m: {name: {"images": images} for name, images in
                                           grid_images(analysis_sets(r, m)[1], per_class).items()})
    return {m: a["images"] for m, a in stored.items()}


def _umap_panels(runner, methods) -> dict[str, dict]:
    settings = runner.sections.analysis
    task, sets = analysis_sets(runner, methods)
    target_class = settings.umap_class
    generator = torch.Generator().manual_seed(0)
    real_index = []
    for d in task.source_domains:
        pool = ((task.train.labels == target_class) & (task.train.domains == d)).nonzero().flatten()
        keep = pool[torch.randperm(len(pool), generator=generator)]
        real_index.append(keep[: settings.umap_real_per_domain])
    real_index = torch.cat(real_index)
    panels = {}
    for name, synthetic in sets.items():
        model, _ = expert(runner, settings.dataset, task, get_method(name))
        images, labels, domains = synthetic.decoded()
        chosen = labels == target_class
        real = embeddings(model, task.train.images[real_index])
        fake = embeddings(model, images[chosen])
        xy = umap_2d(np.concatenate([real, fake]), seed=0)
        panels[name] = {
            "xy": xy,
            "domains": np.concatenate([task.train.domains[real_index].numpy(),
                                       domains[chosen].numpy()]),
            "is_synthetic": np.arange(len(xy)) >= len(real),
        }
    return panels


# ----------------------------------------------------------------------------- step anatomy
def step_anatomy(runner, method: str = PROPOSED) -> dict[str, np.ndarray]:
    """The first step of `method`'s distillation on the analysis split, taken apart (stored
    like the other analyses): the block the run drew and whether it is masked, the Eq. 5
    scores of the step's real batch at that block (one row per image, with its domain), the
    Eq. 6 mask the step draws, the step's loss terms, the initial and final stored images,
    and the run's loss history per term."""
    return stored_analysis(runner, "anatomy", [method],
                           lambda r, m: {m[0]: _anatomy_arrays(r, m[0])})[method]


def first_step(runner, cell, task, experts, force_mask: bool = False) -> tuple:
    """(the run, its matching model, its calibration model, the first class group's inputs)
    of the cell's distillation at step 0: `Distillation` as `distill` builds it, then the
    loop's own first draws (the expert and its interpolation, the block, the real batch, the
    augmentation). `force_mask` masks the drawn block for certain (the block is the run's)."""
    cell_runner = runner.for_cell(cell)
    config = cell_runner.store.distill_config(cell.ipc, cell.method)
    run = Distillation(experts, task, cell.method, config, cell_runner.sections.masking,
                       cell_runner.profile.seed, torch.device("cpu"))
    match_model, calib_model = run.pool.draw(run.generator)
    inputs = run.group_inputs(run.groups[0])
    if force_mask:
        inputs.draw = MaskDraw(inputs.draw.block, True)
    return run, match_model, calib_model, inputs


def _anatomy_arrays(runner, method: str) -> dict[str, np.ndarray]:
    cell = analysis_cells(runner, [method])[method]
    task = runner.task(cell.dataset, cell.target)
    synthetic, info = synthetic_set(runner, cell, task)
    pool, _ = expert_pool(runner, cell.dataset, task, cell.method)
    run, match_model, calib_model, inputs = first_step(runner, cell, task, pool)
    draw, masking = inputs.draw, runner.sections.masking
    with torch.no_grad():
        features = match_model.run_blocks(inputs.real_x, 0, draw.block + 1)
        scores = activation_scores(features, match_model.head_weight(draw.block), inputs.real_d)
        mask_generator = torch.Generator().manual_seed(0)
        mask_generator.set_state(run.generator.get_state())  # the draw the loss makes next
        mask = channel_mask(scores, masking.p_mask, mask_generator) if draw.active else \
            torch.ones_like(scores)
        match = run.matching_loss(match_model, inputs)
        calib = run.calibration_losses(calib_model, draw, inputs.syn_x, inputs.group)
    history = info["history"]
    names = ("match", "reg", "cons")
    return {"block": np.array([draw.block]), "active": np.array([draw.active]),
            "scores": scores.numpy(), "domains": inputs.real_d.numpy(), "mask": mask.numpy(),
            "terms": np.array([float(match), float(calib["reg"]), float(calib["cons"])]),
            "history": np.array([[h[k] for k in names] for h in history]),
            "history_steps": np.arange(len(history)) * max(1, info["steps"] // 50),
            "initial": run.synthetic.images.permute(0, 2, 3, 1).numpy(),
            "final": synthetic.images.permute(0, 2, 3, 1).numpy(),
            "labels": synthetic.labels.numpy()}


# ----------------------------------------------------------------------------- untrained step
def untrained_step_terms(runner, cells) -> dict[str, dict[str, float]]:
    """Each distilling method's loss terms of the first step of its distillation on the
    analysis split, before any training: the loop's own step 0 (`first_step`) with the
    expert's seeded initial weights in place of the trained expert, its drawn block masked
    for certain, in float64. Nothing here is trained, so the terms agree across processors
    far beyond 3 significant digits, while P_mask, λ or the side a mask is applied to move
    them: the notebooks' regression check of the method."""
    settings = runner.sections.analysis
    task = runner.task(settings.dataset, settings.target)
    first_cells = {cell.method.name: cell for cell in cells if cell.method.distills}
    with default_dtype(torch.float64):  # whatever the profile's precision
        return {name: _untrained_terms(runner, replace(cell, ipc=settings.ipc), task)
                for name, cell in first_cells.items()}


@torch.no_grad()
def _untrained_terms(runner, cell, task) -> dict[str, float]:
    seed = runner.for_cell(cell).profile.seed
    untrained = [(new_model(runner, task, seed), new_model(runner, task, seed))]
    run, match_model, calib_model, inputs = first_step(runner, cell, task, untrained,
                                                       force_mask=True)
    match = run.matching_loss(match_model, inputs)
    calib = run.calibration_losses(calib_model, inputs.draw, inputs.syn_x, inputs.group)
    return {"match": float(match), "reg": float(calib["reg"]),
            "lam_cons": run.masking.lam * float(calib["cons"])}


# ----------------------------------------------------------------------------- per set
def spread_units(runner, first: list[str], second: list[str], ipc: int,
                 train_probes: bool = False, skip: frozenset = frozenset()) -> list[tuple]:
    """Fig. 1(b)'s statistic of the i-th rows' sets on every split where both sets and the
    probing expert are on disk (nothing is distilled; with `train_probes` a missing probing
    expert is trained, as a set taken from sets/ comes without its expert): (split, first
    row, value, second row, value), leaving out the (split, first row, second row) units in
    `skip`. Both sets of a unit are read by the same heads, those of the expert of whichever
    row of the pair is CADM's (expert kind "domain")."""
    cells = _cells_by_row(runner, ipc)
    units = []
    for a, b in zip(first, second, strict=True):
        probe_row = next((row for row in (b, a) if any(
            c.method.has_domain_heads for c in cells.get(row, {}).values())), None)
        if probe_row is None:
            raise ConfigError(f"neither '{a}' nor '{b}' has a CADM expert whose heads could "
                              "read the sets")
        for split, cell_a in sorted(cells.get(a, {}).items()):
            cell_b, probe_cell = cells[b].get(split), cells[probe_row].get(split)
            if cell_b is None or (split, a, b) in skip:
                continue
            values = _spreads(runner, (cell_a, cell_b), probe_cell, train_probes)
            if values is not None:
                units.append((split, a, values[0], b, values[1]))
    return units


SPREAD_FILE = "spread.jsonl"  # results/<profile>/: Fig. 1(b)'s measured units, as data


def recorded_spread_units(runner, first: list[str], second: list[str], ipc: int,
                          train_probes: bool = False) -> list[tuple]:
    """Fig. 1(b)'s units of the rows' current sets, read from results/<profile>/spread.jsonl;
    a unit not recorded there for the sets that the current records name (a remade set
    needs measuring again) is measured where its sets and probing expert are on disk
    (`spread_units`) and then recorded with both sets' content ids. So a fresh clone renders
    the row without a product, and a unit is measured and recorded once."""
    path = runner.results_dir / SPREAD_FILE
    ids = _current_set_ids(runner, ipc)
    recorded = _recorded_spreads(path, ipc, ids)
    for split, a, x, b, y in spread_units(runner, first, second, ipc, train_probes=train_probes,
                                          skip=frozenset(recorded)):
        append_record(path, {"kind": "spread", "split": split, "ipc": ipc, "first": a,
                             "first_set": ids.get((a, split)), "first_value": x, "second": b,
                             "second_set": ids.get((b, split)), "second_value": y})
        recorded[(split, a, b)] = (split, a, x, b, y)
    return [recorded[(split, a, b)] for a, b in zip(first, second, strict=True)
            for split in sorted({s for s, x, y in recorded if (x, y) == (a, b)})]


def _recorded_spreads(path, ipc: int, ids: dict) -> dict[tuple, tuple]:
    """{(split, first row, second row): unit} of the recorded units whose two sets are the
    ones the current records name."""
    recorded = {}
    for r in load_records(path):
        if r.get("ipc") == ipc and r.get("first_set") == ids.get((r["first"], r["split"])) \
                and r.get("second_set") == ids.get((r["second"], r["split"])):
            recorded[(r["split"], r["first"], r["second"])] = (
                r["split"], r["first"], r["first_value"], r["second"], r["second_value"])
    return recorded


def _current_set_ids(runner, ipc: int) -> dict[tuple[str, str], str]:
    """{(row, split): content id of the set its current records evaluated}."""
    return {(r["method"], r["split"]): r.get("set_id") for r in current_records(runner)
            if r.get("ipc") == ipc and r.get("net", "resnet18") == "resnet18"}


def _cells_by_row(runner, ipc: int) -> dict[str, dict[str, object]]:
    """{row: {split: cell}} of the profile's planned cells at `ipc` (first stage wins)."""
    rows = {}
    for cell in plan_cells(runner.profile):
        if cell.ipc == ipc and cell.net == "resnet18":
            rows.setdefault(cell.method.name, {}).setdefault(
                split_name(cell.dataset, cell.target), cell)
    return rows


def _spreads(runner, cells, probe_cell, train_probe: bool = False) -> tuple[float, ...] | None:
    paths = [runner.for_cell(cell).store.synthetic_path(cell) for cell in cells]
    probe_runner = runner.for_cell(probe_cell)
    split = split_name(probe_cell.dataset, probe_cell.target)
    expert_path = probe_runner.store.expert_path(probe_cell.dataset, split, probe_cell.method)
    if not all(p.exists() for p in paths) or not (train_probe or expert_path.exists()):
        return None  # decided before any data is loaded: a fresh clone needs no data root
    task = runner.task(probe_cell.dataset, probe_cell.target)
    states = [torch.load(p, weights_only=False) for p in paths]
    made_by = states[list(cells).index(probe_cell)]["info"].get("expert_ids", [])
    with torch_threads(job_threads(runner.workers)):  # the threads the pipeline trains on
        probe, info = expert(probe_runner, probe_cell.dataset, task, probe_cell.method)
    if made_by and info["expert_id"] not in made_by:
        raise DataError(f"{expert_path.name}: expert {info['expert_id']} is not the one that "
                        f"made the set it should read ({', '.join(made_by)})")
    sets = [SyntheticSet.from_state(state["set"]) for state in states]
    return tuple(score_spread(probe, synthetic) for synthetic in sets)
