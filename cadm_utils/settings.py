"""Every setting of a run: the run-level defaults, the profile schema a profile is checked
against before any work starts, and the code constants that enter the cache keys.

The sections a method reads are typed dataclasses beside the code that reads them; their
field defaults are the defaults and their fields carry their checks (schema.setting):
`model` ModelConfig (method/models.py), `pretrain` PretrainConfig (method/pretraining.py),
`distill` DistillConfig (method/distill.py), `masking` MaskingConfig (method/masking.py),
`evaluate` EvaluateConfig, `full_data` FullDataConfig and `domain_gap` DomainGapConfig
(method/train.py), `analysis` AnalysisConfig (here: what the figure notebooks take apart).
A profile (profiles/*.yaml) overrides any default; `resolve_profile` returns the full
settings with every value checked, or raises ConfigError naming the key; `Sections` are the
typed sections of a resolved profile.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

from .errors import ConfigError
from .method.distill import DistillConfig
from .method.masking import MaskingConfig
from .method.models import ModelConfig
from .method.pretraining import PretrainConfig
from .method.train import DomainGapConfig, EvaluateConfig, FullDataConfig
from .schema import (check_fields, check_number as _check_number, check_value,
                     section_defaults, section_field, setting)


@dataclass(frozen=True)
class AnalysisConfig:
    """The split and set whose channels, scores and features the figure notebooks take
    apart (Fig. 1(b), 3(a), 3(b), the step anatomy): the profile's `analysis` section."""
    dataset: str = setting("")  # "": the profile's first data set
    target: str = setting("")  # "": that data set's first target
    ipc: int = setting(1, 1)
    umap_class: int = setting(0, 0)  # Fig. 3(a)'s class
    umap_real_per_domain: int = setting(100, 1)  # real images per source domain in Fig. 3(a)
    channels: int = setting(32, 1)  # Fig. 3(b)'s first channels of the last block

    def __post_init__(self):
        check_fields(self, "analysis.")


# the profile's typed sections: name -> (class, its fields that are not profile settings)
SECTIONS = {"model": (ModelConfig, ()), "pretrain": (PretrainConfig, ()),
            "distill": (DistillConfig, ("ipc", "dsa")), "masking": (MaskingConfig, ()),
            "evaluate": (EvaluateConfig, ()), "full_data": (FullDataConfig, ()),
            "domain_gap": (DomainGapConfig, ()), "analysis": (AnalysisConfig, ())}


@dataclass(frozen=True)
class Sections:
    """The typed sections of a resolved profile, what the method code receives."""
    model: ModelConfig
    pretrain: PretrainConfig
    distill: DistillConfig  # ipc 0: a cell's is `replace(distill, ipc=...)`
    masking: MaskingConfig
    evaluate: EvaluateConfig
    full_data: FullDataConfig
    domain_gap: DomainGapConfig
    analysis: AnalysisConfig

    @classmethod
    def of(cls, values: dict) -> "Sections":
        """The sections of a resolved profile's values."""
        return cls(**{name: section_class(**values[name])
                      for name, (section_class, _) in SECTIONS.items()})


# ---------------------------------------------------------------------------- defaults
# The run-level settings; the sections' defaults are read from their classes when a profile
# is resolved (`defaults()`), so a section's field is the one place of its default.
RUN_DEFAULTS = {
    "seed": 0,
    "device": None,             # auto: CUDA when present, else CPU
    "workers": 1,               # CPU processes for independent jobs
    # local: processes on this machine; submitit: one Slurm job per expert, set or
    # evaluation run (submitit-local: submitit's local executor, for tests)
    "launcher": "local",
    "slurm": {"timeout_min": 60, "slurm_partition": None, "gpus_per_node": None,
              "cpus_per_task": None},
    "precision": "float32",     # float64: CPU only, for checks that must hold on any processor
    "cuda_path": False,         # bf16 autocast + channels_last on the CPU too (tests of the GPU path)
    "compare_with_paper": False,
    # a second evaluation of the same sets, as setting overrides (e.g. {evaluate.protocol:
    # ncfm}): the report writes each headline claim under both where rows with these
    # overrides exist (reporting/report.py protocol_rows); {}: none
    "second_evaluation": {},
    # a profile whose records of the same rows were made under an earlier evaluation (e.g.
    # DSA on [0, 1] pixels): the report shows its headline claims beside; None: none
    "earlier_evaluation": None,
    # the order of a time-budgeted run (experiment/budget.py priority): `stages`, groups of
    # stages in order; `groups`, groups of rows in order, each {methods: [...], ipcs: [...]}
    # (a key left out matches every row; {} places the rows no other group names); `ipc`
    # before the other IPCs
    "budget": {"stages": [], "groups": [], "ipc": None},
}
REQUIRED = ("name", "datasets", "stages")


def defaults() -> dict:
    """Every default: the run-level ones and each section's field defaults."""
    return {**copy.deepcopy(RUN_DEFAULTS),
            **{name: section_defaults(section_class, leave_out)
               for name, (section_class, leave_out) in SECTIONS.items()}}


# checks of the run-level settings (the sections' are on their fields)
CHOICES = {
    "precision": ("float32", "float64"),
    "launcher": ("local", "submitit", "submitit-local"),
}
# (minimum, maximum) of numeric run-level settings; ints where the default is an int
RANGES = {
    "seed": (0, None), "workers": (1, None), "slurm.timeout_min": (1, None),
}
DATASET_KEYS = {"resolution": (8, None)}
STAGE_KEYS = ("datasets", "targets", "methods", "ipcs", "full_data", "ablation", "nets",
              "variants", "claims", "title", "kind", "seeds")

# What a stage is: the one place that decides it (`stage_kind`, stored in the resolved
# stage as `kind`). Planning (experiment/cells.py), tables (reporting/tables.py), summaries
# and the report's claims (reporting/report.py) read that kind; a new kind is one entry here
# plus its table renderer (its rows default to the stage's methods, its claims to the
# stage's own `claims`).
STAGE_KINDS = {
    "ablation": "Table 2: CADM with its loss terms switched on one by one (`ablation: true`)",
    "networks": "Table 3: the stage's methods evaluated on each network of `nets`",
    "variants": "each of the stage's methods under named setting overrides (`variants`)",
    "methods": "Tables 1 and 4: one row per method, the full-data row where `full_data`",
}


def stage_kind(settings: dict) -> str:
    """The stage's kind: its own `kind`, else what its keys say (ablation, then nets, then
    variants, else a methods table)."""
    if "kind" in settings:
        return settings["kind"]
    if settings.get("ablation"):
        return "ablation"
    if settings.get("nets"):
        return "networks"
    return "variants" if settings.get("variants") else "methods"


# Settings that stay out of the cache keys at this value (the behaviour of the code before
# the setting existed), so that products and records made before it stay valid; at any
# other value a setting enters the keys like every setting.
KEYED_UNLESS = {"distill.class_steps": "all", "evaluate.protocol": "dm",
                "pretrain.keep": "last", "pretrain.protocol": "dm",
                "pretrain.heads": "trained", "distill.interpolation": "all",
                "full_data.epochs": 0, "evaluate.dsa": "pixels",
                "evaluate.dsa_draws": "image", "evaluate.dsa_operations": "one"}
# evaluate settings that decide which records exist or how they are computed, not their
# values (stacked networks end where sequential ones do, tests/test_stacked.py): in no key
HOW_NOT_WHAT = ("seeds", "stack_seeds")


def key_view(section: str, values: dict) -> dict:
    """A settings section as it enters the cache keys (see KEYED_UNLESS)."""
    return {k: v for k, v in values.items()
            if f"{section}.{k}" not in KEYED_UNLESS or KEYED_UNLESS[f"{section}.{k}"] != v}


def code_constants() -> dict:
    """Constants that live in code but change numbers: they enter every product key, so an
    edit of one remakes what depends on it instead of reusing a stale product."""
    from .data import embedded
    from .method import dam, pretraining

    return {"irm": {"lambda": pretraining.IRM_LAMBDA,
                    "anneal_steps": pretraining.IRM_ANNEAL_STEPS},
            "dam": {"pseudo": dam.N_PSEUDO, "low_freq": dam.LOW_FREQ,
                    "temperature": dam.TEMPERATURE},
            "embedded": embedded.GENERATOR_SETTINGS,
            "eval_seed_offset": EVAL_SEED_OFFSET}


# Evaluation networks start from seed + this offset, so that seed 0 never starts from the
# expert's initial weights.
EVAL_SEED_OFFSET = 1000


# ---------------------------------------------------------------------------- checking

def _fail(profile_name: str, key: str, message: str):
    raise ConfigError(f"profile '{profile_name}': {key} {message}")


def check_number(name: str, key: str, value, bounds, integer: bool):
    """A run-level number checked against RANGES-style (low, high) bounds."""
    try:
        return _check_number(key, value, *bounds, integer=integer)
    except ConfigError as error:
        raise ConfigError(f"profile '{name}': {error}") from None


def _section_field(key: str):
    section, _, leaf = key.partition(".")
    return section_field(SECTIONS[section][0], leaf) if section in SECTIONS else None


def _check_leaf(name: str, key: str, value, default):
    spec = _section_field(key)
    try:
        if key == "pretrain.epochs" and isinstance(value, dict):
            if "default" not in value:
                raise ConfigError(f"{key} given per data set needs a 'default' entry")
            return {k: check_value(f"{key}.{k}", v, spec) for k, v in value.items()}
        if spec is not None:
            return check_value(key, value, spec)
    except ConfigError as error:
        raise ConfigError(f"profile '{name}': {error}") from None
    if key in CHOICES:
        if value not in CHOICES[key]:
            _fail(name, key, f"must be one of {', '.join(CHOICES[key])}, got {value!r}")
        return value
    if key in RANGES:
        integer = isinstance(default, int) and not isinstance(default, bool)
        return check_number(name, key, value, RANGES[key], integer)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            _fail(name, key, f"must be true or false, got {value!r}")
        return value
    if key == "device":
        if value is not None and not isinstance(value, str):
            _fail(name, key, f"must be a device name such as cpu or cuda, got {value!r}")
        return value
    return value


def _merge(name: str, defaults: dict, given: dict, prefix: str = "") -> dict:
    out = copy.deepcopy(defaults)
    for key, value in given.items():
        path = f"{prefix}{key}"
        if key not in defaults:
            known = ", ".join(defaults)
            _fail(name, path, f"is not a known setting (known here: {known})")
        if isinstance(defaults[key], dict) and path != "pretrain.epochs":
            if not isinstance(value, dict):
                _fail(name, path, f"must be a mapping, got {value!r}")
            out[key] = _merge(name, defaults[key], value, f"{path}.")
        else:
            out[key] = _check_leaf(name, path, value, defaults[key])
    return out


def _check_list(name: str, key: str, value, item_check=None) -> list:
    if isinstance(value, (str, int)):
        value = [value]
    if not isinstance(value, list) or not value:
        _fail(name, key, f"must be a non-empty list, got {value!r}")
    if len(set(map(str, value))) != len(value):
        _fail(name, key, f"lists an entry twice: {value!r}")
    return [item_check(v) if item_check else v for v in value]


def resolve_profile(raw: dict) -> "Profile":
    """The profile's settings over the defaults, every value checked (ConfigError names the
    key), as one typed Profile. Data-set names, methods and networks are checked by the
    pipeline's planner."""
    if not isinstance(raw, dict):
        raise ConfigError("a profile must be a YAML mapping")
    missing = [key for key in REQUIRED if key not in raw]
    name = str(raw.get("name", "?"))
    if missing:
        raise ConfigError(f"profile '{name}' lacks {', '.join(missing)}")
    rest = {k: v for k, v in raw.items()
            if k not in ("name", "datasets", "stages", "second_evaluation")}
    values = _merge(name, defaults(), rest)
    values["second_evaluation"] = _check_overrides(name, "second_evaluation",
                                                   raw.get("second_evaluation") or {})
    values["name"] = name
    values["datasets"] = _check_datasets(name, raw["datasets"])
    values["stages"] = _check_stages(name, raw["stages"], values["seed"])
    _check_budget(name, values["budget"])
    _place_analysis(name, values)
    if values["precision"] == "float64" and values["cuda_path"]:
        _fail(name, "cuda_path", "(bf16 autocast) cannot be combined with precision float64")
    if values["precision"] == "float64" and values["device"] not in (None, "cpu"):
        _fail(name, "precision", "float64 is for the CPU only")
    return Profile.of(values)


def _place_analysis(name: str, values: dict) -> None:
    """The analysis split: the profile's first data set and its first target unless set."""
    analysis, datasets = values["analysis"], values["datasets"]
    analysis["dataset"] = analysis["dataset"] or next(iter(datasets))
    if analysis["dataset"] not in datasets:
        _fail(name, "analysis.dataset", f"must be one of the profile's data sets "
                                        f"({', '.join(datasets)}), "
                                        f"got {analysis['dataset']!r}")
    analysis["target"] = analysis["target"] or datasets[analysis["dataset"]]["targets"][0]


def _check_budget(name: str, budget: dict) -> None:
    stages, groups = budget["stages"], budget["groups"]
    if not isinstance(stages, list) or not all(isinstance(g, list) for g in stages):
        _fail(name, "budget.stages", f"must be a list of lists of stage names, got {stages!r}")
    if not isinstance(groups, list) or not all(
            isinstance(g, dict) and set(g) <= {"methods", "ipcs"} for g in groups):
        _fail(name, "budget.groups", f"must be a list of {{methods: [...], ipcs: [...]}}, "
                                     f"got {groups!r}")
    if budget["ipc"] is not None:
        check_number(name, "budget.ipc", budget["ipc"], (1, None), True)


def _check_datasets(name: str, datasets) -> dict:
    if not isinstance(datasets, dict) or not datasets:
        _fail(name, "datasets", f"must map data-set names to settings, got {datasets!r}")
    out = {}
    for dataset, settings in datasets.items():
        settings = dict(settings or {})
        unknown = set(settings) - {"resolution", "targets"}
        if unknown:
            _fail(name, f"datasets.{dataset}", f"has unknown settings: {', '.join(sorted(unknown))}")
        if "resolution" in settings:
            check_number(name, f"datasets.{dataset}.resolution", settings["resolution"],
                         DATASET_KEYS["resolution"], True)
        settings["targets"] = _check_list(name, f"datasets.{dataset}.targets",
                                          settings.get("targets"), str)
        out[dataset] = settings
    return out


def _check_stages(name: str, stages, default_seed: int) -> dict:
    if not isinstance(stages, dict) or not stages:
        _fail(name, "stages", f"must map stage names to settings, got {stages!r}")
    out = {}
    for stage, settings in stages.items():
        key = f"stages.{stage}"
        if not isinstance(settings, dict):
            _fail(name, key, f"must be a mapping, got {settings!r}")
        unknown = set(settings) - set(STAGE_KEYS)
        if unknown:
            _fail(name, key, f"has unknown settings: {', '.join(sorted(unknown))}")
        settings = dict(settings)
        settings["datasets"] = _check_list(name, f"{key}.datasets", settings.get("datasets"), str)
        settings["ipcs"] = _check_list(
            name, f"{key}.ipcs", settings.get("ipcs"),
            lambda v: check_number(name, f"{key}.ipcs", v, (1, None), True))
        for optional in ("targets", "methods", "nets"):
            if optional in settings:
                settings[optional] = _check_list(name, f"{key}.{optional}", settings[optional],
                                                 str)
        if "variants" in settings:
            settings["variants"] = _check_variants(name, f"{key}.variants", settings["variants"])
        if "claims" in settings:
            settings["claims"] = _check_claims(name, f"{key}.claims", settings["claims"])
        if "seeds" in settings:
            _seeded(name, key, settings, default_seed)
        if settings.get("kind", "methods") not in STAGE_KINDS:
            _fail(name, f"{key}.kind", f"must be one of {', '.join(STAGE_KINDS)}, "
                                       f"got {settings['kind']!r}")
        settings["kind"] = stage_kind(settings)
        out[stage] = settings
    return out


def _check_claims(name: str, key: str, claims) -> list[dict]:
    """The report's rows of a stage: {label, first: [rows], second: [rows]}, "first above
    second", the i-th rows of the two lists paired (one distilled set each)."""
    if not isinstance(claims, list) or not claims:
        _fail(name, key, f"must be a list of {{label, first, second}}, got {claims!r}")
    out = []
    for claim in claims:
        if not isinstance(claim, dict) or set(claim) != {"label", "first", "second"}:
            _fail(name, key, f"needs exactly label, first and second in each entry, got {claim!r}")
        first = _check_list(name, f"{key}.first", claim["first"], str)
        second = _check_list(name, f"{key}.second", claim["second"], str)
        if len(first) != len(second):
            _fail(name, key, f"'{claim['label']}' pairs {len(first)} rows with {len(second)}")
        out.append({"label": str(claim["label"]), "first": first, "second": second})
    return out


def seed_row(row: str, seed: int, default_seed: int) -> str:
    """The name of `row` (a method, or method{variant}) re-made with pipeline seed `seed`:
    itself at the profile's seed, else method{seedN} for a method's own row and
    method{variant_seedN} for a variant's."""
    if seed == default_seed:
        return row
    method, _, variant = row.partition("{")
    return f"{method}{{{seeded_variant(variant.rstrip('}'), seed)}}}"


def seeded_variant(variant: str, seed: int) -> str:
    """A variant row's name at pipeline seed `seed`: seedN for the method's own row ("" or
    reference), variant_seedN for any other."""
    return f"{variant}_seed{seed}" if variant not in ("", "reference") else f"seed{seed}"


def _seeded(name: str, key: str, settings: dict, default_seed: int) -> None:
    """A stage's `seeds`: each of its rows once per pipeline seed (variants named as
    `seed_row` names them, with `seed` among their overrides), and each of its claims, given
    one row a side, paired over those seeds. The expanded rows and claims replace the
    stage's; `seeds` itself is consumed."""
    seeds = _check_list(name, f"{key}.seeds", settings.pop("seeds"),
                        lambda v: check_number(name, f"{key}.seeds", v, (0, None), True))
    variants = settings.get("variants") or {"reference": {}}
    expanded = {}
    for row, overrides in variants.items():
        if "seed" in overrides:
            _fail(name, f"{key}.variants.{row}", "sets seed although the stage has seeds")
        for seed in seeds:
            named = row if seed == default_seed else seeded_variant(row, seed)
            expanded[named] = overrides if seed == default_seed else {**overrides, "seed": seed}
    settings["variants"] = expanded
    claims = []
    for claim in settings.get("claims", ()):
        if len(claim["first"]) != 1:
            _fail(name, f"{key}.claims", f"'{claim['label']}' names several rows a side; in a "
                                         "stage with seeds a claim names one, paired over them")
        claims.append({"label": claim["label"],
                       **{side: [seed_row(claim[side][0], seed, default_seed) for seed in seeds]
                          for side in ("first", "second")}})
    if claims:
        settings["claims"] = claims


# Settings outside a section that a variant row may override: `seed` re-seeds the whole
# pipeline of a cell (experts, initial images, distillation draws), a replicate of its set.
TOP_LEVEL_OVERRIDES = ("seed",)


def _check_variants(name: str, key: str, variants) -> dict:
    """Named rows of setting overrides, e.g. {summed: {distill.phases: summed}}; every
    override is checked like the profile value it replaces."""
    if not isinstance(variants, dict) or not variants:
        _fail(name, key, f"must map row names to setting overrides, got {variants!r}")
    return {str(row): _check_overrides(name, f"{key}.{row}", overrides)
            for row, overrides in variants.items()}


def _check_overrides(name: str, key: str, overrides) -> dict:
    """Setting overrides {dotted path: value}, each checked like the profile value it
    replaces."""
    if not isinstance(overrides, dict):
        _fail(name, key, f"must map settings to values, got {overrides!r}")
    every = defaults()
    for path, value in overrides.items():
        if path in TOP_LEVEL_OVERRIDES:
            _check_leaf(name, str(path), value, RUN_DEFAULTS[path])
            continue
        section, _, leaf = str(path).partition(".")
        if section not in every or not isinstance(every[section], dict) or \
                leaf not in every[section]:
            _fail(name, key, f"overrides an unknown setting '{path}'")
        _check_leaf(name, str(path), value, every[section][leaf])
    return dict(overrides)


def with_overrides(profile: dict, overrides: dict) -> dict:
    """A copy of the resolved profile with dotted-path overrides applied."""
    out = copy.deepcopy(profile)
    for path, value in overrides.items():
        if path in TOP_LEVEL_OVERRIDES:
            out[path] = value
            continue
        section, leaf = path.split(".", 1)
        out[section][leaf] = value
    return out


def parse_ipcs(value) -> list[int]:
    """Command-line IPCs: comma-separated integers >= 1, none twice."""
    items = [v.strip() for v in str(value).split(",")]
    if not any(items):
        raise ConfigError("--ipc is empty: give images per class such as 1,10")
    out = []
    for item in items:
        try:
            ipc = int(item)
        except ValueError:
            raise ConfigError(f"--ipc: '{item}' is not an integer") from None
        if ipc < 1:
            raise ConfigError(f"--ipc: images per class must be at least 1, got {ipc}")
        out.append(ipc)
    if len(set(out)) != len(out):
        raise ConfigError(f"--ipc lists a value twice: {value}")
    return out


def parse_names(option: str, value) -> list[str]:
    """Command-line name lists (--methods, --targets, ...): non-empty, none twice."""
    if isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
    else:
        items = [v.strip() for v in str(value).split(",")]
    if not items or not all(items):
        raise ConfigError(f"--{option} is empty or has an empty entry: '{value}'")
    if len(set(items)) != len(items):
        raise ConfigError(f"--{option} lists a value twice: '{value}'")
    return items


# ---------------------------------------------------------------------------- the profile
@dataclass(frozen=True)
class DatasetSettings:
    """A data set of the profile: its resolution (None: the data set's own) and targets."""
    resolution: int | None
    targets: tuple[str, ...]


@dataclass(frozen=True)
class Stage:
    """One experiment of a profile: its kind (STAGE_KINDS), its rows (methods, and named
    setting overrides each, `variants`, with their pipeline seeds expanded) and the claims
    the report compares."""
    name: str
    kind: str
    datasets: list[str]
    ipcs: list[int]
    targets: list[str] | None = None
    methods: list[str] | None = None
    nets: list[str] | None = None
    variants: dict | None = None  # row name -> {setting path: value}
    claims: tuple[dict, ...] = ()  # {label, first: [rows], second: [rows]}
    title: str | None = None
    full_data: bool = False
    ablation: bool = False

    @classmethod
    def of(cls, name: str, settings: dict) -> "Stage":
        listed = {key: list(settings[key]) for key in ("targets", "methods", "nets")
                  if key in settings}
        return cls(name, settings["kind"], list(settings["datasets"]), list(settings["ipcs"]),
                   variants=settings.get("variants"), claims=tuple(settings.get("claims", ())),
                   title=settings.get("title"), full_data=bool(settings.get("full_data")),
                   ablation=bool(settings.get("ablation")), **listed)

    def targets_of(self, datasets: dict, dataset: str) -> list[str]:
        """The stage's targets on `dataset`: its own, else the profile's."""
        return self.targets or list(datasets[dataset].targets)


@dataclass(frozen=True)
class Profile:
    """A resolved profile: its typed sections, data sets and stages, and the run-level
    settings. `values` holds every resolved value as a mapping, for the cache-key view
    (experiment/store.py) and for writing the profile out again."""
    name: str
    values: dict
    sections: Sections
    datasets: dict[str, DatasetSettings]
    stages: dict[str, Stage]
    seed: int
    device: str | None
    workers: int
    launcher: str
    slurm: dict
    precision: str
    cuda_path: bool
    compare_with_paper: bool
    second_evaluation: dict
    earlier_evaluation: str | None
    budget: dict

    @classmethod
    def of(cls, values: dict) -> "Profile":
        name = values["name"]
        try:
            sections = Sections.of(values)  # the sections' own checks across their fields
        except ConfigError as error:
            raise ConfigError(f"profile '{name}': {error}") from None
        return cls(name, values, sections,
                   {d: DatasetSettings(s.get("resolution"), tuple(s["targets"]))
                    for d, s in values["datasets"].items()},
                   {stage: Stage.of(stage, s) for stage, s in values["stages"].items()},
                   **{key: values[key] for key in RUN_DEFAULTS})

    def with_overrides(self, overrides: dict) -> "Profile":
        """This profile with dotted-path overrides applied (a variant row's)."""
        return Profile.of(with_overrides(self.values, overrides))
