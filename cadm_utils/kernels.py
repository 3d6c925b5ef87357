"""The CPU kernels the nbval references (tests/notebooks/) were written with. ATen's
AVX-512 kernels round some float64 operations differently from its AVX2 ones (log_softmax
among them), and training amplifies that past the printed digits: on an AVX-512 machine an
IRM expert's source val read 31.8 against 31.0, Table 3 cells moved up to 2.3 points. No
torch import here: the pin must be set before torch loads, and processes started later
(notebook kernels) inherit it."""
from __future__ import annotations

import os
import platform

REFERENCE_CAPABILITY = "avx2"


def pin_reference_kernels(environ=os.environ) -> None:
    """On x86-64, ATen's AVX2 kernels unless the caller chose others; a CPU without AVX2
    falls back silently to what it has."""
    if platform.machine().lower() in ("x86_64", "amd64"):
        environ.setdefault("ATEN_CPU_CAPABILITY", REFERENCE_CAPABILITY)
