"""Independent jobs (experts, synthetic sets, evaluation runs) spread over CPU processes.

The networks of the CPU profiles are small, and one process with two threads leaves much
of two cores idle; two processes with one thread each finish the same jobs about 1.4x
sooner on the 2-core machine (benchmarks/workers.py). On a GPU one process is used.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Callable, Iterable

import torch
from tqdm import tqdm

_WORKER_STATE: dict = {}


def _start_worker(threads: int) -> None:
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)


def worker_cache() -> dict:
    """A dict that lives as long as the worker process (for objects costly to rebuild)."""
    return _WORKER_STATE


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def job_threads(workers: int) -> int:
    """The threads one job of `run_jobs` trains on: a worker's share, or this process's."""
    return threads_per_worker(workers) if workers > 1 else torch.get_num_threads()


def run_jobs(function: Callable, jobs: Iterable, workers: int = 1, desc: str = "jobs",
             progress: bool = True, on_result: Callable | None = None,
             launcher: dict | None = None) -> list:
    """function(job) for every job; results in job order. With workers > 1 the jobs run in
    spawned processes with cores // workers threads each; with a submitit `launcher`
    ({"kind": "submitit" or "submitit-local", "folder": ..., "slurm": {...}}) each job is a
    Slurm job (or a local submitit process). `function` must be importable (module level)
    and jobs picklable. on_result(job, result) runs in this process as each job ends."""
    jobs = list(jobs)
    results = [None] * len(jobs)
    bar = tqdm(total=len(jobs), desc=desc, disable=not progress or not jobs)
    if launcher and launcher["kind"] != "local" and jobs:
        return _run_submitit(function, jobs, launcher, on_result, bar)
    if workers <= 1 or len(jobs) <= 1:
        for index, job in enumerate(jobs):
            results[index] = function(job)
            _finish(on_result, job, results[index], bar)
        bar.close()
        return results
    threads = threads_per_worker(workers)
    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pool
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(threads,)) as pool:
        futures = {pool.submit(function, job): index for index, job in enumerate(jobs)}
        try:
            for future in as_completed(futures):
                index = futures[future]
                results[index] = future.result()
                _finish(on_result, jobs[index], results[index], bar)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    bar.close()
    return results


def _finish(on_result, job, result, bar) -> None:
    if on_result is not None:
        on_result(job, result)
    bar.update(1)


def _run_submitit(function: Callable, jobs: list, launcher: dict, on_result, bar) -> list:
    """Each job through submitit: Slurm via AutoExecutor, or its LocalExecutor (separate
    processes on this machine, for tests). A job that fails raises here with its log."""
    import submitit

    folder = launcher["folder"]
    if launcher["kind"] == "submitit-local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=launcher["slurm"]["timeout_min"])
    else:
        executor = submitit.AutoExecutor(folder=folder)
        executor.update_parameters(**{k: v for k, v in launcher["slurm"].items() if v is not None})
    submitted = [executor.submit(function, job) for job in jobs]
    results = []
    for job, handle in zip(jobs, submitted):
        results.append(handle.result())
        _finish(on_result, job, results[-1], bar)
    bar.close()
    return results
