"""Profiles: YAML files in profiles/ that override the defaults of settings.py (smoke, paper).
A profile may `extends: <profile>`: it is then that profile's YAML with its own values
merged over it (mappings merged key by key, anything else replaced; a key set to null is
dropped, so that an extending profile can leave out a stage or a setting). The keys it
lists under `replace` (e.g. [stages]) are its own alone, not merged."""
from __future__ import annotations

from pathlib import Path

import yaml

from .errors import ConfigError
from .settings import Profile, resolve_profile

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILE_DIR = REPO_ROOT / "profiles"


def profile_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        return path
    return PROFILE_DIR / f"{name_or_path}.yaml"


def load_profile(name_or_path: str | Path) -> Profile:
    return resolve_profile(raw_profile(name_or_path))


def raw_profile(name_or_path: str | Path, chain: tuple = ()) -> dict:
    """The profile's YAML, with the profile it extends merged under it."""
    path = profile_path(name_or_path)
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.yaml")))
        raise ConfigError(f"profile not found: {path} (known profiles: {known})")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"profile {path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict) or "extends" not in raw:
        return raw
    base = raw.pop("extends")
    replaced = raw.pop("replace", [])
    if path.resolve() in chain:
        raise ConfigError(f"profile {path} extends itself through '{base}'")
    if not isinstance(replaced, list) or not set(replaced) <= set(raw):
        raise ConfigError(f"profile {path}: replace must list keys the profile sets, "
                          f"got {replaced!r}")
    inherited = raw_profile(base, chain + (path.resolve(),))
    return merged({k: v for k, v in inherited.items() if k not in replaced}, raw)


def merged(base: dict, own: dict) -> dict:
    """`own` over `base`: mappings merged key by key, anything else replaced, a key whose
    own value is null dropped."""
    out = dict(base)
    for key, value in own.items():
        if value is None and key in out:
            del out[key]
            continue
        both_maps = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merged(out[key], value) if both_maps else value
    return out


def pretrain_epochs(profile: Profile, dataset: str) -> int:
    """The experts' length on `dataset` (pretrain.epochs, possibly given per data set)."""
    epochs = profile.sections.pretrain.epochs
    return int(epochs.get(dataset, epochs["default"])) if isinstance(epochs, dict) else int(epochs)


def setting_source(name_or_path: str | Path, section: str, key: str) -> tuple[str, str]:
    """(file, comment) of the line that sets `section.key` in the profile or the one it
    extends (the comment says where the value comes from); ("", "") when neither sets it."""
    path = profile_path(name_or_path)
    while path.exists():
        current, base = None, None
        for line in path.read_text().splitlines():
            if line and not line[0].isspace() and ":" in line:
                current = line.split(":", 1)[0].strip()
                if current == "extends":
                    base = line.split(":", 1)[1].split("#")[0].strip()
            elif current == section and line.strip().startswith(f"{key}:"):
                return path.name, line.split("#", 1)[1].strip() if "#" in line else ""
        if base is None:
            break
        path = profile_path(base)
    return "", ""
