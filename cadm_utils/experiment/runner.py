"""A run of a profile: its settings (the resolved profile and its typed sections), its
device and data, its product store, and how its independent jobs run. The verbs live in
products.py (experts, sets), evaluation.py (cells) and records.py (which records count)."""
from __future__ import annotations

import os

from ..data import Task, load_dataset, make_task
from ..errors import ConfigError
from ..runtime import pick_device, set_precision, use_cuda_path
from ..settings import Profile
from .store import ProductStore


class Runner:
    def __init__(self, profile: Profile, data_root=None, results_dir=None, run_dir=None,
                 device=None, progress: bool = True, data: dict | None = None):
        """`data`: loaded data sets to share (a variant row's runner shares its base's)."""
        self.profile = profile
        self.sections = profile.sections
        self.data_root = data_root
        self.device = pick_device(device or profile.device)
        self.progress = progress
        self.store = ProductStore(profile, self.sections, results_dir, run_dir)
        self.results_dir, self.run_dir = self.store.results_dir, self.store.run_dir
        self.records_path, self.figures_dir = self.store.records_path, self.store.figures_dir
        self._data = {} if data is None else data
        self._variants = {}
        set_precision(profile.precision)
        use_cuda_path(profile.cuda_path)
        self.spec = {"profile": profile, "data_root": data_root, "device": str(self.device),
                     "results_dir": str(self.results_dir), "run_dir": str(self.run_dir)}

    def for_cell(self, cell) -> "Runner":
        """This runner, or the one of the cell's variant row."""
        return self.variant(cell.overrides)

    def variant(self, overrides: tuple) -> "Runner":
        """The runner of a variant row (the profile with its overrides, ((path, value), ...)),
        sharing data and output folders; this runner itself without overrides. Its job
        handle stays this runner's, with the overrides carried by the job."""
        if not overrides:
            return self
        if overrides not in self._variants:
            variant = Runner(self.profile.with_overrides(dict(overrides)), self.data_root,
                             self.results_dir, self.run_dir, self.device, self.progress,
                             data=self._data)
            variant.spec = self.spec
            self._variants[overrides] = variant
        return self._variants[overrides]

    @property
    def workers(self) -> int:
        """Processes for independent jobs: the profile's `workers` (or $CADM_WORKERS) on
        the CPU, always 1 on a GPU."""
        if self.device.type != "cpu":
            return 1
        value = os.environ.get("CADM_WORKERS") or self.profile.workers
        try:
            workers = int(value)
        except ValueError:
            workers = 0
        if workers < 1:
            raise ConfigError(f"invalid number of workers '{value}': expected an integer >= 1")
        return workers

    @property
    def launcher(self) -> dict:
        """How independent jobs run: local processes, or submitit (logs in runs/<profile>/
        submitit)."""
        return {"kind": self.profile.launcher, "slurm": self.profile.slurm,
                "folder": str(self.run_dir / "submitit")}

    def job_handle(self):
        """What a job carries to find this runner: itself in-process, else its settings."""
        if self.workers == 1 and self.profile.launcher == "local":
            return self
        return self.spec

    def check_dataset(self, dataset: str) -> None:
        """ConfigError (one line) for a data set the profile does not have."""
        if dataset not in self.profile.datasets:
            raise ConfigError(f"profile '{self.profile.name}' has no data set '{dataset}' "
                              f"(its data sets: {', '.join(self.profile.datasets)})")

    def data(self, dataset: str):
        self.check_dataset(dataset)
        if dataset not in self._data:
            resolution = self.profile.datasets[dataset].resolution
            self._data[dataset] = load_dataset(dataset, self.data_root, resolution,
                                               progress=self.progress)
        return self._data[dataset]

    def task(self, dataset: str, target: str) -> Task:
        return make_task(self.data(dataset), target)
