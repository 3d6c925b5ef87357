"""The tolerance of the nbval checks: a checked output passes when its text is the
reference's with every integer equal and every decimal within the tolerance. It is used only
on processors whose kernels round differently from the references' (their kernel
fingerprint differs; tests/conftest.py hooks it into nbval): with ATen's kernels pinned
(cadm_utils/kernels.py) the machines measured so far give the references' fingerprint and
are compared digit for digit, since a smaller change (λ = 10 instead of 100 over 3 steps
moves a loss term by 0.3 %) hides inside the tolerance. Measured on an AMD EPYC
with ATen's AVX-512 kernels instead of the references' AVX2 ones: accuracies up to 2.3
points apart (Table 3 cells near chance, two 20-step evaluations), their stds up to 1.6,
loss terms up to 6 %."""
from __future__ import annotations

import re

NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
# lines holding accuracies in percent (the tables' "mean ± std" cells, "acc 31.0 %")
PERCENT_LINE = re.compile(r"[%±]")
PERCENT_ABS, PERCENT_REL = 2.5, 0.0
OTHER_ABS, OTHER_REL = 0.01, 0.1
# kernel_fingerprint() where the references were written (ATen AVX2 kernels, torch 2.14.1);
# the same with 1 and 2 threads
REFERENCE_FINGERPRINT = "ea6b5dd61e5b"


def is_integer(token: str) -> bool:
    return not any(c in token for c in ".eE")


def line_agrees(reference: str, test: str) -> bool:
    if NUMBER.split(reference) != NUMBER.split(test):
        return False
    absolute, relative = ((PERCENT_ABS, PERCENT_REL) if PERCENT_LINE.search(reference)
                          else (OTHER_ABS, OTHER_REL))
    for ref, new in zip(NUMBER.findall(reference), NUMBER.findall(test)):
        if ref == new:
            continue
        if is_integer(ref) and is_integer(new):
            return False  # counts, shapes, seeds, ids: exact
        if abs(float(new) - float(ref)) > absolute + relative * abs(float(ref)):
            return False
    return True


def agrees(reference: str, test: str) -> bool:
    """True when `test` is `reference` up to the tolerance, line by line."""
    ref_lines, test_lines = reference.splitlines(), test.splitlines()
    return len(ref_lines) == len(test_lines) and all(
        line_agrees(r, t) for r, t in zip(ref_lines, test_lines))


def kernel_fingerprint() -> str:
    """A hash of 20 float64 SGD steps of a small convolutional network (convolutions,
    batch norm, log_softmax through cross-entropy): equal where the CPU kernels round as
    the references' did, different where they do not (ATen's AVX-512 kernels, seen)."""
    import hashlib

    import torch

    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 8, 3, stride=2, padding=1), torch.nn.BatchNorm2d(8),
            torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
            torch.nn.Linear(8, 5)).double()
    x = torch.randn(32, 3, 16, 16, generator=generator, dtype=torch.float64)
    y = torch.randint(0, 5, (32,), generator=generator)
    optimiser = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for _ in range(20):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimiser.step()
    digest = hashlib.sha1()
    for tensor in net.state_dict().values():
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]
