"""Profiles: YAML files in profiles/ that override the defaults of settings.py (smoke, paper)."""
from __future__ import annotations

from pathlib import Path

import yaml

from .errors import ConfigError
from .settings import resolve_profile

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILE_DIR = REPO_ROOT / "profiles"


def profile_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        return path
    return PROFILE_DIR / f"{name_or_path}.yaml"


def load_profile(name_or_path: str | Path) -> dict:
    path = profile_path(name_or_path)
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.yaml")))
        raise ConfigError(f"profile not found: {path} (known profiles: {known})")
    try:
        profile = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"profile {path} is not valid YAML: {error}") from None
    return resolve_profile(profile)


def pretrain_epochs(profile: dict, dataset: str) -> int:
    epochs = profile["pretrain"]["epochs"]
    return int(epochs.get(dataset, epochs["default"])) if isinstance(epochs, dict) else int(epochs)
