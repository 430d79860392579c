"""Type stub of fastbp._core, the compiled kernels (fastbp/_core.pyx).

Private: fastbp/_api.py and fastbp/training.py call these after fastbp/_checks.py has checked and
converted every argument (C-contiguous arrays of one float dtype, float32 or float64, finite, shapes
consistent with `widths`); the kernels check nothing themselves.
"""
from typing import List, Optional, Tuple

import numpy as np

# Units per block of a packed weight panel (the same for every instruction set).
RB: int
# The largest number of samples one micro-kernel call handles (the widest vector set's block).
MAX_SAMPLE_BLOCK: int

def select_kernels(max_level: int) -> str:
    """Pick the micro-kernels, at most `max_level` (0 baseline, 1 AVX2+FMA, 2 AVX-512) and at most
    what this CPU runs; return the name of the set chosen ("baseline", "avx2+fma" or "avx512")."""
    ...

def cpu_level() -> int:
    """0: baseline x86-64 (or not x86-64); 1: AVX2 + FMA; 2: also AVX-512."""
    ...

def openmp_enabled() -> bool:
    """Whether this build has OpenMP (False: a serial build)."""
    ...

def openmp_max_threads() -> int:
    """omp_get_max_threads() (1 in a serial build)."""
    ...

def run(
    weights: List[np.ndarray],
    widths: List[int],
    output_linear: bool,
    X: np.ndarray,
    Y: Optional[np.ndarray],
    outputs: Optional[np.ndarray],
    mode: int,
    num_threads: int,
    tile: int,
    chunk: int,
    slots_per_thread: int,
    grads: Optional[List[np.ndarray]] = None,
    scale: float = 1.0,
    accumulate: bool = False,
) -> float:
    """Run the batch (mode 0 forward into `outputs`, 1 error, 2 gradient into `grads`, times
    `scale`, added with `accumulate`); return the sum of squared errors (0.0 in forward mode)."""
    ...

def backprop_sample(
    weights: List[np.ndarray],
    widths: List[int],
    output_linear: bool,
    x: np.ndarray,
    y: np.ndarray,
) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """One sample through the tile steps: ([x(0), ..., x(L)], [delta(1), ..., delta(L)])."""
    ...

def tanh(x: np.ndarray) -> None:
    """The kernels' tanh, in place, on a 64-byte aligned contiguous array whose length is a multiple
    of the sample block (a test hook)."""
    ...

def sgd_epoch(
    weights: List[np.ndarray],
    widths: List[int],
    output_linear: bool,
    X: np.ndarray,
    Y: np.ndarray,
    order: np.ndarray,
    batch_size: int,
    lr: float,
    momentum: float,
    velocity: Optional[List[np.ndarray]],
    decay: float,
    tile: int,
    chunk: int,
    rule: int = 0,
    moment2: Optional[List[np.ndarray]] = None,
    beta2: float = 0.999,
    eps: float = 1e-8,
    steps: int = 0,
) -> int:
    """One epoch of mini-batch SGD (rule 0), Nesterov (1) or Adam (2) in place on `weights` (and
    `velocity`, `moment2`); `order` is an intp permutation of the samples. Returns Adam's step
    count after the epoch."""
    ...

def first_nonfinite(a: np.ndarray) -> int:
    """Flat index of the first NaN or infinity in a C-contiguous float32/float64 array, or -1."""
    ...

def ready(weights: object, X: object, y: object, max_width: int) -> Optional[List[int]]:
    """widths [d(0), ..., d(L)] when weights, X (and y, unless None) need no conversion and pass
    every check, else None (the quick path of fastbp._checks.check_batch; it never raises)."""
    ...
