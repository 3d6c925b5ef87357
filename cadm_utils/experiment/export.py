"""The export of a budgeted run, the form in which records and products travel back from a
machine that returns only a few files of limited size: one tar stream (records.jsonl, then
the synthetic sets and experts that fit) cut into parts `<profile>-export.g<G>.tar.part<i>of<N>`,
written as a new generation after every finished cell; `merge_export` brings the newest
whole generation into results/ and runs/."""
from __future__ import annotations

import io
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..runtime import write_atomic
from .records import append_record, load_records

MIB = 2 ** 20
TAR_BLOCK, TAR_RECORD = 512, 10240


@dataclass(frozen=True)
class ExportLimits:
    """What an export may be (the command line's --export-part-mib, --export-max-mib): parts
    of at most `part_bytes`, at most `max_bytes` together (None: no limit)."""
    part_bytes: int
    max_bytes: int | None = None


def product_files(runner) -> list[Path]:
    return sorted(p for kind in ("experts", "synthetic") for p in (runner.run_dir / kind).glob("*.pt"))


def tar_bytes(size: int) -> int:
    """Bytes one member of `size` takes in a tar stream (header plus padded content)."""
    return TAR_BLOCK + -(-size // TAR_BLOCK) * TAR_BLOCK


def fitting_products(records_bytes: int, products: list[Path], max_bytes: int | None,
                     log=print) -> list[Path]:
    """Synthetic sets first (small; later evaluations and the analysis need them), then
    experts, each while the stream stays within `max_bytes`; the rest is named in the log
    (a later run remakes a missing product)."""
    if max_bytes is None:
        return list(products)
    room = max_bytes - TAR_RECORD - 2 * TAR_BLOCK - tar_bytes(records_bytes)
    if room < 0:
        raise ConfigError(f"the records alone ({records_bytes / MIB:.0f} MiB) exceed the "
                          f"{max_bytes / MIB:.0f} MiB export")
    chosen = []
    for path in sorted(products, key=lambda p: p.parent.name != "synthetic"):
        size = tar_bytes(path.stat().st_size)
        if size <= room:
            chosen.append(path)
            room -= size
        else:
            log(f"export: left out {path.parent.name}/{path.name} "
                f"({path.stat().st_size / MIB:.0f} MiB): no room in {max_bytes / MIB:.0f} MiB")
    return chosen


def export(runner, records: list[dict], products: list[Path], folder: Path,
           limits: ExportLimits, log=print) -> list[Path]:
    """records.jsonl plus the products that fit `limits`, as one tar stream cut into parts
    of at most limits.part_bytes, written as a new generation
    (`<profile>-export.g<G>.tar.part<i>of<N>`); the earlier generations are deleted only
    once the new one is whole, so a kill at any moment leaves one whole export."""
    lines = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("records.jsonl")
        info.size = len(lines)
        tar.addfile(info, io.BytesIO(lines))
        for path in fitting_products(len(lines), products, limits.max_bytes, log):
            tar.add(path, arcname=f"{path.parent.name}/{path.name}")
    data = buffer.getvalue()
    folder.mkdir(parents=True, exist_ok=True)
    old = export_parts(folder)  # whole generations and any cut off earlier
    generation = max((g for g, _, _, _ in old), default=-1) + 1
    part = limits.part_bytes
    starts = range(0, max(len(data), 1), part)
    paths = []
    for number, index in enumerate(starts):
        path = folder / (f"{runner.profile.name}-export.g{generation}.tar"
                         f".part{number}of{len(starts)}")
        write_atomic(path, lambda tmp, chunk=data[index:index + part]: tmp.write_bytes(chunk))
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
