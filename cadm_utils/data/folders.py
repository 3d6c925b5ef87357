"""Real data sets in DomainBed's folder layout (<root>/<folder>/<domain>/<class>/<image>):
their specs, the folder scan, decoding with an on-disk cache, and the official split lists.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..runtime import save_atomic
from .base import TRAIN, UNLISTED, VAL, MultiDomainData, random_split

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}

# DomainNet-Sub: the paper names no classes, so we fix the first 100 DomainNet classes in
# case-insensitive alphabetical order (docs/data.md). Folder names as DomainBed ships them.
DOMAINNET_SUB_CLASSES = (
    "aircraft_carrier", "airplane", "alarm_clock", "ambulance", "angel", "animal_migration",
    "ant", "anvil", "apple", "arm", "asparagus", "axe", "backpack", "banana", "bandage",
    "barn", "baseball", "baseball_bat", "basket", "basketball", "bat", "bathtub", "beach",
    "bear", "beard", "bed", "bee", "belt", "bench", "bicycle", "binoculars", "bird",
    "birthday_cake", "blackberry", "blueberry", "book", "boomerang", "bottlecap", "bowtie",
    "bracelet", "brain", "bread", "bridge", "broccoli", "broom", "bucket", "bulldozer", "bus",
    "bush", "butterfly", "cactus", "cake", "calculator", "calendar", "camel", "camera",
    "camouflage", "campfire", "candle", "cannon", "canoe", "car", "carrot", "castle", "cat",
    "ceiling_fan", "cell_phone", "cello", "chair", "chandelier", "church", "circle",
    "clarinet", "clock", "cloud", "coffee_cup", "compass", "computer", "cookie", "cooler",
    "couch", "cow", "crab", "crayon", "crocodile", "crown", "cruise_ship", "cup", "diamond",
    "dishwasher", "diving_board", "dog", "dolphin", "donut", "door", "dragon", "dresser",
    "drill", "drums", "duck",
)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    folder: str  # DomainBed folder under the data root
    domains: tuple[str, ...]
    letters: tuple[str, ...]  # paper abbreviations, e.g. "ACS→P"
    val_fraction: float  # used when no official split lists exist
    classes: tuple[str, ...] | None = None  # None: read from the folders
    other_classes_allowed: bool = False  # DomainNet-Sub keeps 100 of 345 folders
    split_lists: bool = False  # PACS: official *_kfold.txt lists when present


REAL_DATASETS = {
    "pacs": DatasetSpec(
        "pacs", "PACS", ("art_painting", "cartoon", "photo", "sketch"), ("A", "C", "P", "S"),
        0.1, ("dog", "elephant", "giraffe", "guitar", "horse", "house", "person"),
        split_lists=True),
    "vlcs": DatasetSpec(
        "vlcs", "VLCS", ("Caltech101", "LabelMe", "SUN09", "VOC2007"), ("C", "L", "S", "V"),
        0.3, ("bird", "car", "chair", "dog", "person")),
    "officehome": DatasetSpec(
        "officehome", "office_home", ("Art", "Clipart", "Product", "Real World"),
        ("A", "C", "P", "R"), 0.1),
    "domainnet_sub": DatasetSpec(
        "domainnet_sub", "domain_net",
        ("clipart", "infograph", "painting", "quickdraw", "real", "sketch"),
        ("C", "I", "P", "Q", "R", "S"), 0.2, DOMAINNET_SUB_CLASSES, other_classes_allowed=True),
}


# Where the domain folders may sit under <root>/<folder>: DomainBed's layout puts them there,
# DomainDrop's (its README) under kfold/, with the split lists in pacs_label/.
IMAGE_SUBFOLDERS = ("", "kfold")
SPLIT_LIST_FOLDERS = ("splits", "pacs_label", "")


def image_base(spec: DatasetSpec, root: Path) -> Path:
    """The folder holding the domain folders: <root>/<folder>, or its kfold/ (DomainDrop)."""
    if not root.is_dir():
        raise DataError(f"data root not found: {root}")
    for sub in IMAGE_SUBFOLDERS:
        base = root / spec.folder / sub
        if any((base / domain).is_dir() for domain in spec.domains):
            return base
    raise DataError(f"wrong layout: no domain folder under {root / spec.folder} (expected "
                    f"<root>/{spec.folder}/<domain>/<class>/<image>, or DomainDrop's "
                    f"<root>/{spec.folder}/kfold/<domain>/<class>/<image>)")


def scan_folder(spec: DatasetSpec, root: Path) -> list[tuple[str, str, str, int]]:
    """List (domain, class, file name, size) for every image; raise DataError on a bad layout."""
    base = image_base(spec, root)
    present = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    for name in present:
        if name not in spec.domains and name not in SPLIT_LIST_FOLDERS + IMAGE_SUBFOLDERS:
            raise DataError(f"unknown domain folder: {base / name} "
                            f"(expected {', '.join(spec.domains)})")
    files = []
    classes_by_domain = {}
    for domain in spec.domains:
        domain_dir = base / domain
        if not domain_dir.is_dir():
            raise DataError(f"missing domain folder: {domain_dir}")
        class_dirs = sorted(p.name for p in domain_dir.iterdir() if p.is_dir())
        wanted = _wanted_classes(spec, domain_dir, class_dirs)
        classes_by_domain[domain] = set(wanted)
        for class_name in wanted:
            class_files = _image_files(domain_dir / class_name)
            if not class_files:
                raise DataError(f"empty class folder: {domain_dir / class_name}")
            files += [(domain, class_name, entry.name, file_stamp(entry))
                      for entry in class_files]
    reference = classes_by_domain[spec.domains[0]]
    for domain, classes in classes_by_domain.items():
        if classes != reference:
            odd = sorted(classes ^ reference)[0]
            raise DataError(f"class '{odd}' is not in every domain: check {base / domain}")
    return files


def file_stamp(entry: os.DirEntry) -> list[int]:
    """What the decoded-image cache keys a file by besides its path: its size and its
    modification time (ns), so that a changed or replaced image is decoded again."""
    stat = entry.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _wanted_classes(spec: DatasetSpec, domain_dir: Path, class_dirs: list[str]) -> list[str]:
    if spec.classes is None:
        return class_dirs
    for class_name in spec.classes:
        if class_name not in class_dirs:
            raise DataError(f"missing class folder: {domain_dir / class_name}")
    if not spec.other_classes_allowed:
        for class_name in class_dirs:
            if class_name not in spec.classes:
                raise DataError(f"unknown class folder: {domain_dir / class_name} "
                                f"(expected {', '.join(spec.classes)})")
    return sorted(spec.classes)


def _image_files(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as entries:
        return sorted((e for e in entries if e.is_file() and not e.name.startswith(".")
                       and Path(e.name).suffix.lower() in IMAGE_SUFFIXES), key=lambda e: e.name)


def cache_key(spec: DatasetSpec, base: Path, files: list, resolution: int) -> str:
    """The decoded images' cache entry: the folder, and each file's path, size and
    modification time (scan_folder), at this resolution."""
    digest = hashlib.sha1(json.dumps([spec.name, str(Path(base).resolve()), resolution,
                                      files]).encode()).hexdigest()
    return f"{spec.name}-{resolution}px-{digest[:16]}"


def cached_decode(spec: DatasetSpec, base: Path, files: list, resolution: int,
                  cache_dir: Path, progress: bool) -> torch.Tensor:
    path = cache_dir / f"{cache_key(spec, base, files, resolution)}.pt"
    if path.exists():
        return torch.load(path, weights_only=True)
    images = decode_images([base / d / c / n for d, c, n, _ in files], resolution, progress)
    save_atomic(images, path)  # an interrupted run leaves no half-written cache entry
    return images


def decode_images(paths: list[Path], resolution: int, progress: bool = True) -> torch.Tensor:
    from PIL import Image
    from tqdm import tqdm

    out = np.empty((len(paths), resolution, resolution, 3), dtype=np.uint8)
    for i, path in enumerate(tqdm(paths, desc="decoding images", disable=not progress,
                                  mininterval=1.0)):
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")
                if image.size != (resolution, resolution):
                    image = image.resize((resolution, resolution), Image.BICUBIC)
                out[i] = np.asarray(image)
        except Exception as exc:  # PIL raises several types for broken files
            raise DataError(f"unreadable image: {path} ({type(exc).__name__})") from None
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


# ----------------------------------------------------------------------------- splits

def assign_splits(spec: DatasetSpec, root: Path, rel_paths: list[str], labels: torch.Tensor,
                  domains: torch.Tensor, seed: int) -> torch.Tensor:
    lists = find_split_lists(root, spec) if spec.split_lists else None
    if lists is not None:
        return split_from_lists(rel_paths, *lists)
    return random_split(labels, domains, spec.val_fraction, seed)


def find_split_lists(root: Path, spec: DatasetSpec) -> tuple[list[Path], list[Path]] | None:
    for folder in (root / "splits", *(root / spec.folder / sub for sub in SPLIT_LIST_FOLDERS)):
        train = sorted(folder.glob("*_train_kfold.txt"))
        val = sorted(folder.glob("*_crossval_kfold.txt"))
        if train and val:
            return train, val
    return None


def read_split_list(path: Path) -> set[str]:
    """Relative paths named in an official list; labels are ignored (folder names rule)."""
    names = set()
    for line in path.read_text().splitlines():
        if line.strip():
            names.add(line.split()[0])
    return names


def split_from_lists(rel_paths: list[str], train_lists: list[Path],
                     val_lists: list[Path]) -> torch.Tensor:
    train = set().union(*(read_split_list(p) for p in train_lists))
    val = set().union(*(read_split_list(p) for p in val_lists)) - train
    codes = [TRAIN if p in train else VAL if p in val else UNLISTED for p in rel_paths]
    return torch.tensor(codes, dtype=torch.int8)


def default_cache_dir() -> Path:
    return Path(os.environ.get("CADM_CACHE_DIR", Path.home() / ".cache" / "cadm_utils"))


def load_folder_dataset(spec: DatasetSpec, data_root: str | Path, resolution: int = 64,
                        seed: int = 0, cache_dir: str | Path | None = None,
                        progress: bool = True) -> MultiDomainData:
    """Scan, decode (cached) and split a real data set under `data_root`."""
    files = scan_folder(spec, Path(data_root))
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    images = cached_decode(spec, image_base(spec, Path(data_root)), files, resolution, cache,
                           progress)
    class_names = sorted({f[1] for f in files})
    labels = torch.tensor([class_names.index(f[1]) for f in files])
    domains = torch.tensor([spec.domains.index(f[0]) for f in files])
    rel_paths = [f"{d}/{c}/{n}" for d, c, n, _ in files]
    split = assign_splits(spec, Path(data_root), rel_paths, labels, domains, seed)
    return MultiDomainData(spec.name, images, labels, domains, split, class_names,
                           list(spec.domains), list(spec.letters), rel_paths)
