"""A run that fits a time budget (GPU windows, cluster jobs with a wall-time limit): the
next unfinished cells in a fixed priority order, none started that the measured cost of
earlier cells says cannot finish, and an export of what was made (records, experts,
synthetic sets) as at most 8 files of at most 16 MiB that `merge_export` brings back."""
from __future__ import annotations

import io
import json
import re
import tarfile
import time
from pathlib import Path

from ..errors import ConfigError
from .records import append_record, load_records, matching

PART_BYTES = 16 * 2 ** 20
MAX_PARTS = 8
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
    """The issue's order: Table 1 at IPC 10 with mmd and cadm (first target first), then
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


def cell_cost(record: dict) -> float:
    """Seconds a record's evaluation took, plus its share of what made its products."""
    return record.get("eval_s", 0.0) + record.get("distill_s", 0.0) + record.get("pretrain_s", 0.0)


def estimate(cell, seeds: int, records: list[dict]) -> float | None:
    """Measured cost of a cell like this one (same method, IPC and network), or None when
    nothing comparable has run yet."""
    alike = matching(records, method=cell.method.name, ipc=cell.ipc, net=cell.net) or \
        matching(records, ipc=cell.ipc, net=cell.net)
    if not alike:
        return None
    per_seed = sum(r.get("eval_s", 0.0) for r in alike) / len(alike)
    making = max(r.get("distill_s", 0.0) + r.get("pretrain_s", 0.0) for r in alike)
    return seeds * per_seed + making


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
        cost = estimate(cell, len(seeds), earlier + new_records)
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
        export(runner, new_records, made, Path(export_dir))
    return new_records


def product_files(runner) -> list[Path]:
    return sorted(p for kind in ("experts", "synthetic") for p in (runner.run_dir / kind).glob("*.pt"))


def export(runner, records: list[dict], products: list[Path], folder: Path) -> list[Path]:
    """records.jsonl plus the products, as one tar stream cut into parts of at most 16 MiB
    (at most 8; ConfigError names the size when they would not fit)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        lines = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode()
        info = tarfile.TarInfo("records.jsonl")
        info.size = len(lines)
        tar.addfile(info, io.BytesIO(lines))
        for path in products:
            tar.add(path, arcname=f"{path.parent.name}/{path.name}")
    data = buffer.getvalue()
    parts = [data[i:i + PART_BYTES] for i in range(0, len(data), PART_BYTES)] or [b""]
    if len(parts) > MAX_PARTS:
        raise ConfigError(f"export of {len(data) / 2 ** 20:.0f} MiB needs {len(parts)} parts of "
                          f"16 MiB, more than {MAX_PARTS}: run a shorter budget")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, part in enumerate(parts):
        path = folder / f"{runner.profile['name']}-export.tar.part{index}"
        path.write_bytes(part)
        paths.append(path)
    return paths


def merge_export(runner, folder: Path) -> tuple[int, int]:
    """Bring an export into results/<profile>/records.jsonl (records already there are not
    added twice) and runs/<profile>/ (the products); returns (records added, products)."""
    parts = sorted(Path(folder).glob("*-export.tar.part*"), key=lambda p: int(p.suffix[5:]))
    if not parts:
        raise ConfigError(f"no export parts (*-export.tar.partN) in {folder}")
    data = b"".join(p.read_bytes() for p in parts)
    known = {json.dumps(r, sort_keys=True) for r in load_records(runner.records_path)}
    added = products = 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        for member in tar.getmembers():
            content = tar.extractfile(member).read()
            if member.name == "records.jsonl":
                for line in content.decode().splitlines():
                    if line and line not in known:
                        append_record(runner.records_path, json.loads(line))
                        added += 1
                continue
            kind, name = member.name.split("/", 1)
            if kind not in ("experts", "synthetic") or "/" in name:
                raise ConfigError(f"unexpected file in the export: {member.name}")
            target = runner.run_dir / kind / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            products += 1
    return added, products
