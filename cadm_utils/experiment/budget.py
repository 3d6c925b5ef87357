"""A run that fits a time budget (short slices of GPU time, cluster jobs with a wall-time limit): the
next unfinished cells in a fixed priority order, none started that the measured cost of
earlier cells says cannot finish, and an export of what was made (records, experts,
synthetic sets) that `merge_export` brings back. The export is rewritten after every finished
cell, so a run killed at a call's time limit still returns the cells it finished."""
from __future__ import annotations

import io
import json
import re
import tarfile
import time
from pathlib import Path

from ..errors import ConfigError
from ..runtime import write_atomic
from .records import append_record, load_records, matching

PART_BYTES = 16 * 2 ** 20
# An export may hold at most 8 files of 16 MiB, 64 MiB together (what a remote GPU
# machine may send back). A generation of 3 parts, plus the previous one while the new one
# is written, plus the step timings and a log, stays within both.
MAX_PARTS = 3
EXPORT_BYTES = MAX_PARTS * PART_BYTES
TAR_BLOCK, TAR_RECORD = 512, 10240
STAGE_ORDER = ("table1", "table2", "table3", "table4")
# checks that decide how the rest should run: their rows follow Table 1's cells
FIRST_STAGES = ("loop", "eval_protocol")
BASELINES = ("mmd_irm", "mmd_fact", "mmd_dam")


def parse_duration(text: str) -> float:
    """'11m', '90s', '1h', '1h30m' or plain seconds → seconds (ConfigError otherwise)."""
    text = str(text).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds = float(text)
    else:
        parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
        if not parts or not any(parts.groups()):
            raise ConfigError(f"--time-budget: '{text}' is not a duration such as 11m or 90s")
        hours, minutes, secs = (int(g or 0) for g in parts.groups())
        seconds = 3600 * hours + 60 * minutes + secs
    if seconds <= 0:
        raise ConfigError(f"--time-budget must be positive, got '{text}'")
    return seconds


def priority(cell, targets: list[str]) -> tuple:
    """The priority order: Table 1 at IPC 10 with mmd and cadm (first target first), then
    random and the full-data row, then IPC 1, then the baselines, then Tables 2, 3, 4. The
    variant rows of a FIRST_STAGES check follow their method's Table 1 cell of the split."""
    if cell.stage in FIRST_STAGES:
        stage = 0
    else:
        stage = STAGE_ORDER.index(cell.stage) if cell.stage in STAGE_ORDER else len(STAGE_ORDER)
    name = cell.method.family  # a variant row counts as its method
    if name in ("mmd", "cadm") and cell.ipc == 10:
        group = 0
    elif name in ("random", "full"):
        group = 1
    elif name in BASELINES:
        group = 3
    else:
        group = 2
    target = targets.index(cell.target) if cell.target in targets else len(targets)
    return (stage, group, cell.ipc != 10, target, bool(cell.overrides), cell.method.name)


def estimate(runner, cell, seeds: int, records: list[dict]) -> float | None:
    """Measured cost of a cell like this one (same method, IPC and network), or None when
    nothing comparable has run yet: its evaluations, plus a distillation only if its set is
    not on disk and an expert's training only if its experts are not (a variant row that
    only changes the evaluation, or the loop, reuses them)."""
    from .pipeline import missing_products

    alike = matching(records, method=cell.method.name, ipc=cell.ipc, net=cell.net) or \
        matching(records, ipc=cell.ipc, net=cell.net)
    if not alike:
        return None
    experts, sets = missing_products(runner, [cell])
    cost = seeds * sum(r.get("eval_s", 0.0) for r in alike) / len(alike)
    if sets:
        cost += max(r.get("distill_s", 0.0) for r in alike)
    if experts:
        cost += max(r.get("pretrain_s", 0.0) for r in alike)
    return cost


def run_budgeted(runner, cells, budget_s: float, export_dir=None, log=print) -> list[dict]:
    """Run whole cells in priority order until the next one would not finish in time."""
    from .pipeline import make_missing

    start = time.time()
    targets = [t for d in runner.profile["datasets"].values() for t in d["targets"]]
    earlier = load_records(runner.records_path)
    todo = sorted((c for c in cells if runner.for_cell(c).seeds_to_run(c, earlier)),
                  key=lambda c: priority(c, targets))
    before = {str(p) for p in product_files(runner)}
    new_records = []
    for cell in todo:
        elapsed = time.time() - start
        seeds = runner.for_cell(cell).seeds_to_run(cell, earlier + new_records)
        if not seeds:  # the same table entry in another stage (e.g. CADM in Tables 1, 2)
            continue
        cost = estimate(runner, cell, len(seeds), earlier + new_records)
        if cost is not None and elapsed + cost > budget_s:
            log(f"budget: stop before {cell.label} (needs ~{cost:.0f} s, "
                f"{budget_s - elapsed:.0f} s left)")
            break
        make_missing(runner, [cell])
        records = runner.for_cell(cell).run_cell(cell, seeds)
        new_records += records
        log(f"budget: {cell.label}: {len(records)} seeds in {time.time() - start - elapsed:.0f} s")
        if export_dir is not None:
            made = [p for p in product_files(runner) if str(p) not in before]
            export(runner, new_records, made, Path(export_dir), log)
    return new_records


def product_files(runner) -> list[Path]:
    return sorted(p for kind in ("experts", "synthetic") for p in (runner.run_dir / kind).glob("*.pt"))


def tar_bytes(size: int) -> int:
    """Bytes one member of `size` takes in a tar stream (header plus padded content)."""
    return TAR_BLOCK + -(-size // TAR_BLOCK) * TAR_BLOCK


def fitting_products(records_bytes: int, products: list[Path], log=print) -> list[Path]:
    """Synthetic sets first (small; later evaluations and the analysis need them), then
    experts, each while the stream stays within EXPORT_BYTES; the rest is named in the log
    (a later run remakes a missing product)."""
    room = EXPORT_BYTES - TAR_RECORD - 2 * TAR_BLOCK - tar_bytes(records_bytes)
    if room < 0:
        raise ConfigError(f"the records alone ({records_bytes / 2 ** 20:.0f} MiB) exceed the "
                          f"{EXPORT_BYTES / 2 ** 20:.0f} MiB export")
    chosen = []
    for path in sorted(products, key=lambda p: p.parent.name != "synthetic"):
        size = tar_bytes(path.stat().st_size)
        if size <= room:
            chosen.append(path)
            room -= size
        else:
            log(f"export: left out {path.parent.name}/{path.name} "
                f"({path.stat().st_size / 2 ** 20:.0f} MiB): no room in {EXPORT_BYTES / 2 ** 20:.0f} MiB")
    return chosen


def export(runner, records: list[dict], products: list[Path], folder: Path, log=print) -> list[Path]:
    """records.jsonl plus the products that fit, as one tar stream cut into parts of at most
    16 MiB, written as a new generation (`<profile>-export.g<G>.tar.part<i>of<N>`); the
    earlier generations are deleted only once the new one is whole, so a kill at any moment leaves
    one whole export."""
    lines = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("records.jsonl")
        info.size = len(lines)
        tar.addfile(info, io.BytesIO(lines))
        for path in fitting_products(len(lines), products, log):
            tar.add(path, arcname=f"{path.parent.name}/{path.name}")
    data = buffer.getvalue()
    folder.mkdir(parents=True, exist_ok=True)
    old = export_parts(folder)  # whole generations and any cut off earlier
    generation = max((g for g, _, _, _ in old), default=-1) + 1
    starts = range(0, max(len(data), 1), PART_BYTES)
    paths = []
    for number, index in enumerate(starts):
        path = folder / (f"{runner.profile['name']}-export.g{generation}.tar"
                         f".part{number}of{len(starts)}")
        write_atomic(path, lambda tmp, part=data[index:index + PART_BYTES]: tmp.write_bytes(part))
        paths.append(path)
    for _, _, _, part in old:
        part.unlink()
    return paths


def export_parts(folder: Path) -> list[tuple[int, int, int, Path]]:
    """(generation, part, parts in the generation, path) of every export part in `folder`."""
    found = []
    for path in Path(folder).glob("*-export.g*.tar.part*"):
        match = re.search(r"-export\.g(\d+)\.tar\.part(\d+)of(\d+)$", path.name)
        if match:
            found.append((*(int(g) for g in match.groups()), path))
    return found


def export_generations(folder: Path) -> dict[int, list[Path]]:
    """The whole export generations in `folder`, generation -> its parts in order (one cut
    off mid-write, a `partIofN` missing, is left out)."""
    found: dict[int, dict[int, Path]] = {}
    for generation, number, total, path in export_parts(folder):
        found.setdefault((generation, total), {})[number] = path
    return {g: [parts[i] for i in range(total)] for (g, total), parts in found.items()
            if sorted(parts) == list(range(total))}


def read_export(folder: Path) -> list[tuple[str, bytes]]:
    """The members of the newest complete generation in `folder`."""
    generations = export_generations(folder)
    if not generations:
        raise ConfigError(f"no complete export (*-export.gN.tar.partIofN) in {folder}")
    data = b"".join(p.read_bytes() for p in generations[max(generations)])
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]


def merge_export(runner, folder: Path) -> tuple[int, int]:
    """Bring an export into results/<profile>/records.jsonl (records already there are not
    added twice) and runs/<profile>/ (the products); returns (records added, products)."""
    known = {json.dumps(r, sort_keys=True) for r in load_records(runner.records_path)}
    added = products = 0
    for name, content in read_export(folder):
        if name == "records.jsonl":
            for line in content.decode().splitlines():
                if line and line not in known:
                    append_record(runner.records_path, json.loads(line))
                    added += 1
            continue
        kind, file = name.split("/", 1)
        if kind not in ("experts", "synthetic") or "/" in file:
            raise ConfigError(f"unexpected file in the export: {name}")
        target = runner.run_dir / kind / file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        products += 1
    return added, products
