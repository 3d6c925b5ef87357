"""The nbval tolerance (tests/nbval_tolerance.py) against outputs seen on two processors."""
import pytest

from tests.nbval_tolerance import agrees

# reference (AVX2 kernels) and an AVX-512 run of the same cells, as printed
SEEN = [
    ("embedded   in-domain  irm     #0 source-val acc  31.0 %",
     "embedded   in-domain  irm     #0 source-val acc  31.8 %"),
    ("in-domain  mmd_irm  ipc 1   images (5, 3, 32, 32)  step 0: match 1.07 reg 1.6 cons 0; "
     "last: match 2.62 reg 1.56 cons 0",
     "in-domain  mmd_irm  ipc 1   images (5, 3, 32, 32)  step 0: match 1.01 reg 1.61 cons 0; "
     "last: match 2.49 reg 1.54 cons 0"),
    ("| 1 | mmd | 23.6 ± 1.0 (2) | 20.0 ± 0.0 (2) | 23.4 ± 0.0 (2) | 15.3 ± 1.8 (2) |",
     "| 1 | mmd | 23.6 ± 1.0 (2) | 20.0 ± 0.0 (2) | 23.6 ± 0.2 (2) | 17.6 ± 3.4 (2) |"),
]


@pytest.mark.parametrize("reference, test", SEEN)
def test_what_another_processor_printed_agrees(reference, test):
    assert agrees(reference, test)


@pytest.mark.parametrize("reference, test", [
    ("images (5, 3, 32, 32)", "images (6, 3, 32, 32)"),           # a count
    ("| mmd | 23.6 ± 1.0 (2) |", "| mmd | 23.6 ± 1.0 (3) |"),     # the number of seeds
    ("| mmd | 23.6 ± 1.0 (2) |", "| cadm | 23.6 ± 1.0 (2) |"),    # a label
    ("acc 31.0 %", "acc 36.0 %"),                                 # 5 points
    ("match 1.07 reg 1.6", "match 1.25 reg 1.6"),                 # 17 % on a loss
    ("a\nb", "a"),                                                # a line missing
])
def test_a_real_change_does_not(reference, test):
    assert not agrees(reference, test)


def test_the_fingerprint_tells_kernel_choices_apart():
    """ATen's default (scalar) kernels and its AVX2 ones give different fingerprints, each
    the same with one thread and two; where AVX2 is missing there is nothing to compare."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("import torch; from tests.nbval_tolerance import kernel_fingerprint; "
            "print(torch.backends.cpu.get_cpu_capability(), kernel_fingerprint())")
    root = Path(__file__).resolve().parents[1]

    def fingerprint(capability, threads):
        env = {**os.environ, "ATEN_CPU_CAPABILITY": capability, "OMP_NUM_THREADS": threads}
        done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env,
                              capture_output=True, text=True, timeout=120, check=True)
        return done.stdout.split()

    avx2 = fingerprint("avx2", "1")
    if avx2[0] != "AVX2":
        pytest.skip("this processor has no AVX2 kernels")
    assert fingerprint("avx2", "2") == avx2
    assert fingerprint("default", "1")[1] != avx2[1]
