"""Type stub of fastbp._core, the compiled kernels (fastbp/_core.pyx).

Private: fastbp/_api.py and fastbp/training.py call these after fastbp/_checks.py has checked and
converted every argument (C-contiguous arrays of one float dtype, float32 or float64, finite, shapes
consistent with `widths`); the kernels check nothing themselves.
"""
import numpy as np

# (activation code, output code, sample weights or None): the codes are the positions in
# fastbp._checks.ACTIVATIONS and fastbp._checks.OUTPUTS; the sample weights (N,) C-contiguous, of
# the weights' dtype.
_Spec = tuple[int, int, np.ndarray | None]
# What the training kernels minimise beside the error measure (their Loss, fastbp/_loss.pxi):
# (decay lambda / N, scikit-learn's alpha, the total weight alpha is divided by, grad_scale,
# loss_scale, NumPy's sum block), as fastbp._api.loss_spec builds it.
_Loss = tuple[float, float, float, float, float, int]
# X as the kernels read it: a C-contiguous (N, d(0)) array, or a sparse X's checked CSR arrays
# (fastbp._sparse.SparseRows: data, indices, indptr, shape, input_layout).
_Inputs = object

# Units per block of a packed weight panel (the same for every instruction set).
RB: int
# The largest number of samples one micro-kernel call handles (the widest vector set's block).
MAX_SAMPLE_BLOCK: int

def select_kernels(cap: str = "") -> str:
    """Pick the micro-kernels: the best set this CPU runs, at most the set named `cap` (in
    kernel_sets()' order; "" or an unknown name: no cap); return the name of the set chosen."""
    ...

def kernel_sets() -> list[tuple[str, bool]]:
    """[(name, whether this CPU runs it)] of the kernel sets built in, the best first."""
    ...

def openmp_enabled() -> bool:
    """Whether this build has OpenMP (False: a serial build)."""
    ...

def openmp_max_threads() -> int:
    """omp_get_max_threads() (1 in a serial build)."""
    ...

def input_layout_of(X: _Inputs) -> int:
    """The InputLayout a network's layout for X needs (0 dense; 1 CSR from its nonzeros; 2 CSR
    written out a tile at a time)."""
    ...

def run(
    weights: list[np.ndarray],
    widths: list[int],
    spec: _Spec,
    X: _Inputs,
    Y: np.ndarray | None,
    outputs: np.ndarray | None,
    mode: int,
    num_threads: int,
    tile: int,
    chunk: int,
    slots_per_thread: int,
    grads: list[np.ndarray] | None = None,
    scale: float = 1.0,
    accumulate: bool = False,
    sweep: int = 0,
    panel: int = 0,
    screen_inputs: bool = False,
) -> float:
    """Run the batch (mode 0 forward into `outputs`, 1 error, 2 gradient into `grads`, times
    `scale`, added with `accumulate`); return the sum of the errors w_n e_n (0.0 in forward
    mode). With `screen_inputs`, X is screened tile by tile: NaN, and `grads` untouched, when an
    input is NaN or infinite."""
    ...

def backprop_sample(
    weights: list[np.ndarray],
    widths: list[int],
    spec: _Spec,
    x: np.ndarray,
    y: np.ndarray,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """One sample through the tile steps: ([x(0), ..., x(L)], [delta(1), ..., delta(L)])."""
    ...

def tanh(x: np.ndarray) -> None:
    """The kernels' tanh, in place, on a 64-byte aligned contiguous array whose length is a multiple
    of the sample block (a test hook)."""
    ...

def exp(x: np.ndarray) -> None:
    """The kernels' exp, in place, on an array as for `tanh` (a test hook)."""
    ...

def log(x: np.ndarray) -> None:
    """The kernels' log of values >= 1, in place, on an array as for `tanh` (a test hook)."""
    ...

def log1p_exp(x: np.ndarray) -> None:
    """The kernels' log(1 + exp(-|x|)), in place, on an array as for `tanh` (a test hook)."""
    ...

def logistic(x: np.ndarray) -> None:
    """The kernels' logistic function, in place, on an array as for `tanh` (a test hook)."""
    ...

def sgd_epoch(
    weights: list[np.ndarray],
    widths: list[int],
    spec: _Spec,
    X: _Inputs,
    Y: np.ndarray,
    order: np.ndarray,
    batch_size: int,
    lr: float,
    momentum: float,
    velocity: list[np.ndarray] | None,
    objective: _Loss,
    tile: int,
    chunk: int,
    rule: int = 0,
    moment2: list[np.ndarray] | None = None,
    beta2: float = 0.999,
    eps: float = 1e-8,
    steps: int = 0,
    num_threads: int = 1,
    slots: int = 1,
    sweep: int = 0,
    panel: int = 0,
) -> tuple[int, float, float]:
    """One epoch of mini-batch SGD (rule 0), Nesterov (1) or Adam (2) in place on `weights` (and
    `velocity`, `moment2`); `order` is an intp permutation of the samples; `objective` the Loss of
    each step (fastbp._api.loss_spec). Returns (Adam's step count after the epoch, the epoch's
    summed L2 and error parts of scikit-learn's loss). A batch of two chunks or more has its
    chunks computed on up to `num_threads` threads, `slots` per round; the result does not depend
    on either."""
    ...

def first_nonfinite(a: np.ndarray) -> int:
    """Flat index of the first NaN or infinity in a C-contiguous float32/float64 array, or -1."""
    ...

def ready(
    weights: object, X: object, y: object, max_width: int, x_threads: int = 1
) -> list[int] | None:
    """widths [d(0), ..., d(L)] when weights, X (and y, unless None) need no conversion and pass
    every check, else None (the quick path of fastbp._checks.check_batch; it never raises)."""
    ...

def full_batch_epochs(
    weights: list[np.ndarray],
    widths: list[int],
    spec: tuple,
    X: _Inputs,
    Y: np.ndarray,
    num_threads: int,
    tile: int,
    chunk: int,
    slots_per_thread: int,
    rule: int,
    params: np.ndarray,
    objective: _Loss,
    w: np.ndarray,
    g: np.ndarray,
    v: np.ndarray | None,
    steps: np.ndarray | None,
    g_prev: np.ndarray | None,
    trial: np.ndarray | None,
    state: np.ndarray,
    k: int,
    E_in: np.ndarray,
    E_aug: np.ndarray,
    lr: np.ndarray,
    accepted: np.ndarray,
    result: np.ndarray,
    sweep: int = 0,
    panel: int = 0,
) -> None:
    """Up to k epochs of gd (rule 0), Nesterov gd (1), variable-lr (2) or rprop (3) in place on
    the flat state vectors; writes the epochs kept and the status into `result`."""
    ...

def sum_squares_pairwise(a: np.ndarray, block: int) -> float:
    """sum a^2 in float64, in the order of NumPy's sum in blocks of `block` (a test hook)."""
    ...

def out_ready(out: object, weights: list[np.ndarray]) -> bool:
    """True when `out` passes every check of `out=` and the kernel can write it as it is (the
    quick path of fastbp.gradient; it never raises)."""
    ...

def _random_splits(on: bool) -> None:
    """Split every shared step's samples among the threads at random (a test hook: no split
    changes a bit of a step)."""
    ...
