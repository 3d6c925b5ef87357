"""Every setting of a run in one place: the defaults, the typed schema a profile is checked
against before any work starts, and the code constants that enter the cache keys.

A profile (profiles/*.yaml) overrides any default; `resolve_profile` returns the full
settings with every value checked, or raises ConfigError naming the key.
"""
from __future__ import annotations

import copy

from .errors import ConfigError

# ---------------------------------------------------------------------------- defaults
# The reference behaviours are the defaults; each names the file it follows.
DEFAULTS = {
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
    "model": {"width": 64, "stem": "auto", "grl_weight": 0.25},
    "pretrain": {
        "epochs": 60, "batch_size": 128, "lr": 0.01,
        # CADM's expert trained with DomainDrop's masks active: one random block per step
        # with probability P_active, survivors rescaled (DomainDrop train_domain.py)
        "masked": True,
        # DomainDrop's KL between two masked passes (train_domain.py: weight 1.5, T 5)
        "mask_kl_weight": 1.5,
        "experts": 1,           # NCFM's pool of pretrained models (num_premodel; 20 there)
        # "last": the last epoch's weights; "best_val": the epoch with the best accuracy on
        # the source domains' held-out images (DomainDrop train_domain.py, save_model "best")
        "keep": "last",
        # method/train.py PROTOCOLS: "dm" (SGD, lr ×0.1 at half the epochs) or "domaindrop"
        # (Nesterov SGD, lr ×0.1 after 0.8 of the epochs), the optimiser of the code CADM's
        # masked pretraining follows
        "protocol": "dm",
        # CADM's expert: "trained", the domain heads as pretrained behind the reversal layer
        # (DomainDrop models/LayerDiscriminator.py); "refit", each head refitted afterwards
        # by a linear fit on the frozen backbone's pooled source features (method/mechanism.py).
        # The stop-gradient reading of the paper's "truncate the gradients" is
        # model.grl_weight: 0 (the domain loss then trains the heads only)
        "heads": "trained",
    },
    "distill": {
        "steps": 1000, "real_per_class": 128, "factor": 2, "checkpoint_every": 100,
        # Adam on pixels at NCFM's rate (its AdamW: lr_img 0.01 × lr_scale_adam 0.1), which
        # goes with its per-class steps: on the bench split (source val) per-class steps
        # reach 70.1 at 0.001 and 49.8 at 0.01; one step on all classes at 0.01: 70.4
        "lr": 0.001,
        # NCFM condenser/compute_loss.py: a matching step, then `calib_steps` calibration
        # steps (iter_calib); "summed": one step on L_match + L_reg + λ L_cons
        "phases": "separate", "calib_steps": 1,
        # NCFM utils/utils.py update_feature_extractor: matching on l·init + (1−l)·trained
        "interpolate": True,
        # what the interpolation covers: "all", every floating tensor (parameters, BatchNorm
        # statistics, domain heads), matching in eval mode; "parameters", NCFM's
        # (utils/utils.py update_feature_extractor interpolates parameters() only and never
        # calls eval(): BatchNorm on batch statistics), the domain heads kept as trained
        # so that Eq. 5 scores come from the trained expert's heads
        "interpolation": "all",
        # NCFM: color + crop + cutout on normalised images; "dsa": one of DSA's six ops on
        # [0, 1] pixels (the behaviour before the reference behaviours were built)
        "augment": "ncfm",
        # NCFM condenser/compute_loss.py loops over the classes: one optimiser step per class
        # in each phase; CADM draws a block for "each matching and regularization step"
        # (paper, Implementation Details), so each class step has its own mask draw.
        # "all": one step on all classes per phase, one draw shared by the phases
        "class_steps": "per_class",
    },
    # the full-data reference row (Tables 1 and 4): ResNet-18s trained on every source
    # training image like the experts; epochs 0 = the experts' pretraining length
    "full_data": {"epochs": 0},
    "masking": {
        "p_mask": 0.33, "p_active": 0.8, "lam": 100.0,
        "rescale": True,        # DomainDrop models/resnet_domain.py, recover_flag
        "kl": "temperature",    # DomainDrop loss/KL_Loss.py; "symmetric": Eq. 9 as printed
        "kl_temperature": 5.0,  # DomainDrop train_domain.py, KL_Loss_T
    },
    "evaluate": {"steps": 0, "epochs": 0, "batch_size": 256, "lr": 0.01, "seeds": 3,
                 "stack_seeds": False,
                 # method/train.py PROTOCOLS: DM's SGD schedule; "ncfm": NCFM's evaluation
                 # (AdamW, its adamw_lr 0.001, cut-mix), behind DM's on the source val
                 # images of the bench and pacs-cpu profiles at their lengths (docs/findings)
                 "protocol": "dm"},
    "analysis": {"umap_class": 0, "umap_real_per_domain": 100, "channels": 32},
}
REQUIRED = ("name", "datasets", "stages")

CHOICES = {
    "precision": ("float32", "float64"),
    "launcher": ("local", "submitit", "submitit-local"),
    "model.stem": ("auto", "small", "strided", "imagenet"),
    "distill.phases": ("separate", "summed"),
    "distill.augment": ("ncfm", "dsa"),
    "distill.class_steps": ("per_class", "all"),
    "masking.kl": ("temperature", "symmetric"),
    "evaluate.protocol": ("dm", "ncfm"),
    "pretrain.keep": ("last", "best_val"),
    "pretrain.protocol": ("dm", "domaindrop"),
    "pretrain.heads": ("trained", "refit"),
    "distill.interpolation": ("all", "parameters"),
}
# (minimum, maximum, maximum excluded) of numeric settings; ints where the default is an int
RANGES = {
    "seed": (0, None), "workers": (1, None), "slurm.timeout_min": (1, None),
    "model.width": (1, None), "model.grl_weight": (0, None),
    "pretrain.epochs": (1, None), "pretrain.batch_size": (2, None),
    "pretrain.lr": (1e-12, None), "pretrain.mask_kl_weight": (0, None),
    "pretrain.experts": (1, None), "full_data.epochs": (0, None),
    "distill.steps": (0, None), "distill.real_per_class": (1, None), "distill.lr": (1e-12, None),
    "distill.factor": (1, None), "distill.checkpoint_every": (1, None),
    "distill.calib_steps": (0, None),
    "masking.p_mask": (0, 1, True), "masking.p_active": (0, 1), "masking.lam": (0, None),
    "masking.kl_temperature": (1e-12, None),
    "evaluate.steps": (0, None), "evaluate.epochs": (0, None), "evaluate.batch_size": (2, None),
    "evaluate.lr": (1e-12, None), "evaluate.seeds": (1, None),
    "analysis.umap_class": (0, None), "analysis.umap_real_per_domain": (1, None),
    "analysis.channels": (1, None), "analysis.ipc": (1, None),
}
DATASET_KEYS = {"resolution": (8, None)}
STAGE_KEYS = ("datasets", "targets", "methods", "ipcs", "full_data", "ablation", "nets",
              "variants", "claims", "title")


# Settings added after results were committed, with the value that reproduces the code
# before them: at that value a setting stays out of the cache keys, so the earlier products
# and records stay valid; at any other value it enters them like every setting.
KEYED_UNLESS = {"distill.class_steps": "all", "evaluate.protocol": "dm",
                "pretrain.keep": "last", "pretrain.protocol": "dm",
                "pretrain.heads": "trained", "distill.interpolation": "all",
                "full_data.epochs": 0}
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
    low, high, open_high = (*bounds, False)[:3] if len(bounds) == 2 else bounds
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (integer and not isinstance(value, int)):
        _fail(name, key, f"must be {'an integer' if integer else 'a number'}, got {value!r}")
    if low is not None and value < low:
        _fail(name, key, f"must be at least {low}, got {value!r}")
    if high is not None and (value >= high if open_high else value > high):
        _fail(name, key, f"must be {'below' if open_high else 'at most'} {high}, got {value!r}")
    return value


def _check_leaf(name: str, key: str, value, default):
    if key in CHOICES:
        if value not in CHOICES[key]:
            _fail(name, key, f"must be one of {', '.join(CHOICES[key])}, got {value!r}")
        return value
    if key == "pretrain.epochs" and isinstance(value, dict):
        if "default" not in value:
            _fail(name, key, "given per data set needs a 'default' entry")
        return {k: check_number(name, f"{key}.{k}", v, RANGES[key], True) for k, v in value.items()}
    if key in RANGES:
        integer = isinstance(default, int) and not isinstance(default, bool) \
            or key in ("analysis.ipc",)
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


def resolve_profile(raw: dict) -> dict:
    """The profile's settings over the defaults, every value checked (ConfigError names the
    key). Data-set names, methods and networks are checked by the pipeline's planner."""
    if not isinstance(raw, dict):
        raise ConfigError("a profile must be a YAML mapping")
    missing = [key for key in REQUIRED if key not in raw]
    name = str(raw.get("name", "?"))
    if missing:
        raise ConfigError(f"profile '{name}' lacks {', '.join(missing)}")
    rest = {k: v for k, v in raw.items() if k not in ("name", "datasets", "stages", "analysis")}
    profile = _merge(name, {k: v for k, v in DEFAULTS.items() if k != "analysis"}, rest)
    profile["name"] = name
    profile["datasets"] = _check_datasets(name, raw["datasets"])
    profile["stages"] = _check_stages(name, raw["stages"])
    if "analysis" in raw:
        analysis = dict(raw["analysis"])
        fixed = {k: analysis.pop(k) for k in ("dataset", "target") if k in analysis}
        ipc = analysis.pop("ipc", 1)
        profile["analysis"] = {**_merge(name, DEFAULTS["analysis"], analysis, "analysis."),
                               **fixed, "ipc": check_number(name, "analysis.ipc", ipc,
                                                            RANGES["analysis.ipc"], True)}
    evaluate = profile["evaluate"]
    if (evaluate["steps"] > 0) == (evaluate["epochs"] > 0):
        _fail(name, "evaluate", "needs exactly one of steps and epochs (a positive integer)")
    if profile["precision"] == "float64" and profile["cuda_path"]:
        _fail(name, "cuda_path", "(bf16 autocast) cannot be combined with precision float64")
    if profile["precision"] == "float64" and profile["device"] not in (None, "cpu"):
        _fail(name, "precision", "float64 is for the CPU only")
    return profile


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


def _check_stages(name: str, stages) -> dict:
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


# Settings outside a section that a variant row may override: `seed` re-seeds the whole
# pipeline of a cell (experts, initial images, distillation draws), a replicate of its set.
TOP_LEVEL_OVERRIDES = ("seed",)


def _check_variants(name: str, key: str, variants) -> dict:
    """Named rows of setting overrides, e.g. {summed: {distill.phases: summed}}; every
    override is checked like the profile value it replaces."""
    if not isinstance(variants, dict) or not variants:
        _fail(name, key, f"must map row names to setting overrides, got {variants!r}")
    out = {}
    for row, overrides in variants.items():
        overrides = dict(overrides or {})
        for path, value in overrides.items():
            if path in TOP_LEVEL_OVERRIDES:
                _check_leaf(name, str(path), value, DEFAULTS[path])
                continue
            section, _, leaf = str(path).partition(".")
            if section not in DEFAULTS or not isinstance(DEFAULTS[section], dict) or \
                    leaf not in DEFAULTS[section]:
                _fail(name, f"{key}.{row}", f"overrides an unknown setting '{path}'")
            _check_leaf(name, str(path), value, DEFAULTS[section][leaf])
        out[str(row)] = overrides
    return out


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
