"""Device choice: CUDA with bf16 autocast and channels_last when present, else plain CPU."""
from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import torch


def pick_device(requested: str | None = None) -> torch.device:
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# The CUDA path (bf16 autocast, channels_last) by default on CUDA only; a profile can force
# it on the CPU (`cuda_path: true`) so that a dtype or memory-format error shows here first.
_CUDA_PATH = {"force": False}


def use_cuda_path(force: bool) -> None:
    _CUDA_PATH["force"] = bool(force)
    # oneDNN's channels_last weight gradient of a strided 1x1 convolution (a ResNet
    # shortcut) corrupts memory with 2 threads and an odd batch on AVX-512 CPUs (seen with
    # torch 2.11 and 2.14.1 on AMD EPYC); torch's own CPU kernels do not. CUDA uses cuDNN.
    torch.backends.mkldnn.enabled = not force


def _cuda_path(device: torch.device) -> bool:
    return device.type == "cuda" or _CUDA_PATH["force"]


def autocast(device: torch.device):
    if _cuda_path(device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    model = model.to(device)
    if _cuda_path(device):  # about 10x slower on the CPU, so CUDA only unless forced
        model = model.to(memory_format=torch.channels_last)
    return model


def to_float(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (N,3,H,W) to floats in [0, 1] on the device, in the default float type
    (float64 under the float64 profiles)."""
    x = images.to(device, non_blocking=True)
    dtype = torch.get_default_dtype()
    return x.to(dtype).div_(255) if x.dtype == torch.uint8 else x.to(dtype)


def upcast(x: torch.Tensor) -> torch.Tensor:
    """bf16/fp16 (autocast) to float32 for losses; float32 and float64 stay as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def set_precision(precision: str) -> None:
    """The profile's float type for new tensors and models (float64: CPU checks that must
    not depend on the processor's summation order)."""
    torch.set_default_dtype(torch.float64 if precision == "float64" else torch.float32)


@contextlib.contextmanager
def temporarily(get, put, value):
    """put(value) inside the block; afterwards what get() gave before."""
    before = get()
    put(value)
    try:
        yield
    finally:
        put(before)


def default_dtype(dtype: torch.dtype):
    """Inside: new tensors and models in `dtype`; afterwards the float type as it was."""
    return temporarily(torch.get_default_dtype, torch.set_default_dtype, dtype)


def torch_threads(threads: int):
    """Inside: torch's intra-op threads set to `threads`; afterwards as they were (CPU
    training drifts with the number of threads, so a rerun uses the original's)."""
    return temporarily(torch.get_num_threads, torch.set_num_threads, threads)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({os.cpu_count()} cores)"


def write_atomic(path: Path, write) -> None:
    """Call write(tmp) for a temporary file beside `path`, then rename it into place, so an
    interruption never leaves a half-written file under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    write(tmp)
    tmp.replace(path)


def save_atomic(obj, path: Path) -> None:
    write_atomic(path, lambda tmp: torch.save(obj, tmp))


@contextlib.contextmanager
def product_lock(path: Path):
    """Held while the product file `path` is looked for and, where missing, made: a second
    process that wants the same file (an overlapping run of the same profile) waits here,
    then finds it made and loads it. An advisory lock on a file in `.locks/` beside the
    product's folder (the product folders hold products only), released when the holder
    ends, even by a crash."""
    import fcntl

    path = Path(path)
    lock = path.parent.parent / ".locks" / f"{path.parent.name}-{path.name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def git_commit() -> str:
    """The checkout's commit; where the tree travelled without .git (a GPU machine), the
    CADM_COMMIT the caller passed along."""
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                             capture_output=True, text=True, timeout=5)
        commit = out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return commit or os.environ.get("CADM_COMMIT", "unknown")


def file_sha256(path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def writable_folder(folder, option: str) -> None:
    """Make sure files can be written in `folder` before any long work: create it (and its
    parents) and a probe file in it, then remove the probe and every folder made here.
    DataError (one line, naming `option`) where a file stands in the path or the place is
    not writable; nothing is left behind either way."""
    from .errors import DataError

    folder = Path(folder)
    blocking = next((p for p in [folder, *folder.parents] if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise DataError(f"{option} {folder}: {blocking} is a file, not a folder")
    made = [p for p in [folder, *folder.parents] if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise DataError(f"{option} {folder}: cannot write there ({error.strerror or error})"
                        ) from None
    finally:
        for path in made:  # deepest first
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
