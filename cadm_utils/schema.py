"""Typed settings sections: a dataclass field made with `setting` holds its default and its
check (range or choices) in one place. The sections live beside the code that reads them
(MaskingConfig in method/masking.py, PretrainConfig in method/pretraining.py, ...);
settings.py builds the profile schema and its defaults from them, and `check_fields`
runs the same checks when a section is built directly."""
from __future__ import annotations

from dataclasses import MISSING, Field, field, fields

from .errors import ConfigError


def setting(default, low=None, high=None, below: bool = False, choices=None) -> Field:
    """A section field: its default, and its check (low <= value <= high, or < high with
    `below`; or one of `choices`)."""
    return field(default=default, metadata={"low": low, "high": high, "below": below,
                                            "choices": choices})


def check_value(key: str, value, spec: Field):
    """`value` checked against the field `spec` (named `key` in the message); returns it."""
    meta, default = spec.metadata, spec.default
    if meta.get("choices") is not None:
        if value not in meta["choices"]:
            raise ConfigError(f"{key} must be one of {', '.join(meta['choices'])}, got {value!r}")
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if isinstance(default, (int, float)):
        return check_number(key, value, meta.get("low"), meta.get("high"), meta.get("below"),
                            integer=isinstance(default, int))
    return value


def check_number(key: str, value, low=None, high=None, below: bool = False,
                 integer: bool = False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (integer and not isinstance(value, int)):
        raise ConfigError(f"{key} must be {'an integer' if integer else 'a number'}, got {value!r}")
    if low is not None and value < low:
        raise ConfigError(f"{key} must be at least {low}, got {value!r}")
    if high is not None and (value >= high if below else value > high):
        raise ConfigError(f"{key} must be {'below' if below else 'at most'} {high}, got {value!r}")
    return value


def check_fields(section, prefix: str = "", skip: tuple = ()) -> None:
    """Every `setting` field of a section instance checked but those in `skip` (ConfigError
    names the first bad one)."""
    for spec in fields(section):
        if "choices" in spec.metadata and spec.name not in skip:
            check_value(f"{prefix}{spec.name}", getattr(section, spec.name), spec)


def section_defaults(section_class, leave_out: tuple = ()) -> dict:
    """{field: default} of a section class (the profile's defaults for that section)."""
    return {spec.name: spec.default for spec in fields(section_class)
            if spec.name not in leave_out and spec.default is not MISSING}


def section_field(section_class, name: str) -> Field | None:
    return next((spec for spec in fields(section_class) if spec.name == name), None)
