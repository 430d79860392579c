"""gd, variable-lr and rprop run blocks of epochs in one kernel call (fastbp._methods.KernelEpochs):
the weights, every History field, the stop epoch and the carried state must be bitwise those of
the epoch-by-epoch NumPy path (fastbp._methods.KERNEL_EPOCHS = False)."""
import _thread
import threading
import warnings

import numpy as np
import pytest

import fastbp
from _helpers import bitwise_equal
from fastbp import _core, _methods

METHODS = {
    "gd": ("gd", {"learning_rate": 0.05}),
    "gd-momentum": ("gd", {"learning_rate": 0.05, "momentum": 0.9}),
    "gd-nesterov": ("gd", {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}),
    "variable-lr": ("variable-lr", {"learning_rate": 0.5}),
    "rprop": ("rprop", {}),
}
# (widths, N): the book's 2-10-1 on 364 samples, no hidden layer, deep, one-unit layers, and one
# big enough for two threads (several chunks)
SHAPES = [([2, 10, 1], 364), ([3, 1], 50), ([4, 3, 3, 3, 2], 100), ([1, 1, 1], 20),
          ([5, 30, 3], 1500)]


def data(widths, N, dtype, output, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, widths[0]))
    dL = widths[-1]
    if output == "tanh":
        y = np.sign(rng.standard_normal((N, dL)))
    elif output == "linear":
        y = rng.standard_normal((N, dL))
    elif output == "logistic":
        y = (rng.random((N, dL)) < 0.5).astype(float)
    else:                                   # softmax: one-hot rows
        y = np.eye(dL)[rng.integers(0, dL, N)]
    return X.astype(dtype), y.astype(dtype)


def same_floats(a, b):
    """Equal bit for bit (repr round-trips a float; NaN equals NaN, -0.0 differs from 0.0)."""
    return [repr(float(x)) for x in a] == [repr(float(x)) for x in b]


def assert_same_fit(a, b):
    (wa, ha), (wb, hb) = a, b
    assert bitwise_equal(wa, wb)
    assert ha.epoch == hb.epoch
    for name in ("E_in", "E_aug", "E_val", "learning_rate"):
        assert same_floats(getattr(ha, name), getattr(hb, name)), name
    assert ha.accepted == hb.accepted
    assert len(ha.time) == len(hb.time) == len(ha)
    assert ha.stop_reason == hb.stop_reason
    assert ha.best_epoch == hb.best_epoch
    assert set(ha.start) == set(hb.start)
    assert same_floats(ha.start.values(), hb.start.values())
    assert set(ha.state) == set(hb.state)
    for key, value in ha.state.items():
        other = hb.state[key]
        if isinstance(value, np.ndarray):
            assert value.dtype == other.dtype and value.tobytes() == other.tobytes(), key
        elif isinstance(value, float):
            assert same_floats([value], [other]), key
        else:
            assert value == other, key


def fit_both(monkeypatch, widths, N, dtype, method, output="tanh", weights=None, **options):
    """(weights, history) of the epoch-by-epoch path, then of the kernel's blocks."""
    X, y = data(widths, N, dtype, output)
    w0 = weights if weights is not None else fastbp.init_weights(widths, seed=1, dtype=dtype)
    out = []
    for kernel in (False, True):
        monkeypatch.setattr(_methods, "KERNEL_EPOCHS", kernel)
        w = [a.copy() for a in w0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            h = fastbp.fit(w, X, y, output, method, **options)
        out.append((w, h))
    return out


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "-".join(map(str, s[0])))
@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("num_threads", [1, 2])
@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
@pytest.mark.parametrize("output", ["tanh", "linear"])
def test_blocks_equal_epoch_by_epoch(monkeypatch, shape, name, dtype, num_threads, weight_decay,
                                     output):
    widths, N = shape
    method, options = METHODS[name]
    epochs = 20 if N > 1000 else 60
    a, b = fit_both(monkeypatch, widths, N, dtype, method, output, epochs=epochs,
                    num_threads=num_threads, weight_decay=weight_decay, **options)
    assert_same_fit(a, b)
    assert len(b[1]) == epochs or b[1].stop_reason in ("converged", "diverged")


@pytest.mark.parametrize("activation", ["relu", "logistic", "identity"])
@pytest.mark.parametrize("output", ["logistic", "softmax", "tanh"])
@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_other_units(monkeypatch, activation, output, name, dtype):
    method, options = METHODS[name]
    a, b = fit_both(monkeypatch, [3, 6, 3], 200, dtype, method, output, epochs=40,
                    activation=activation, weight_decay=0.01, **options)
    assert_same_fit(a, b)


@pytest.mark.parametrize("name", list(METHODS))
def test_sample_weight(monkeypatch, name):
    method, options = METHODS[name]
    sw = np.random.default_rng(3).random(364)
    a, b = fit_both(monkeypatch, [2, 10, 1], 364, np.float64, method, epochs=50,
                    sample_weight=sw, weight_decay=0.02, **options)
    assert_same_fit(a, b)


@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_tol_stops_inside_a_block_at_the_same_epoch(monkeypatch, name, dtype):
    method, options = METHODS[name]
    a, b = fit_both(monkeypatch, [2, 10, 1], 364, dtype, method, epochs=5000, tol=1e-4,
                    **options)
    assert a[1].stop_reason == "tol" and 1 < len(a[1]) < 5000
    assert_same_fit(a, b)


def test_blocks_are_many_epochs_long_for_the_books_problem():
    """The point of it all: [2, 10, 1] on 364 samples runs hundreds of epochs per kernel call."""
    X, y = data([2, 10, 1], 364, np.float64, "tanh")
    obj = fastbp.training.DataObjective([2, 10, 1], np.float64, X, y, "tanh", 1)
    opts = fastbp.training.FitOptions.check("gd", epochs=2000)
    method = _methods.GradientDescent(obj, opts, None, obj.flat(fastbp.init_weights([2, 10, 1])))

    class Trainer:
        validation = None

    assert method.block_size(Trainer()) >= 100


@pytest.mark.parametrize("name", list(METHODS))
def test_callback_sees_every_epoch(monkeypatch, name):
    method, options = METHODS[name]
    seen = {False: [], True: []}

    def callback_for(kernel):
        def callback(history):
            seen[kernel].append((len(history), history.E_in[-1]))
            return len(history) < 37        # stops at epoch 37
        return callback

    X, y = data([2, 10, 1], 364, np.float64, "tanh")
    out = []
    for kernel in (False, True):
        monkeypatch.setattr(_methods, "KERNEL_EPOCHS", kernel)
        w = fastbp.init_weights([2, 10, 1], seed=1)
        h = fastbp.fit(w, X, y, "tanh", method, epochs=100, callback=callback_for(kernel),
                       **options)
        out.append((w, h))
    assert_same_fit(*out)
    assert out[1][1].stop_reason == "callback" and len(out[1][1]) == 37
    assert [n for n, _ in seen[True]] == list(range(1, 38))
    assert seen[True] == seen[False]


@pytest.mark.parametrize("name", list(METHODS))
def test_validation_and_early_stopping(monkeypatch, name):
    method, options = METHODS[name]
    a, b = fit_both(monkeypatch, [2, 10, 1], 364, np.float64, method, epochs=80,
                    validation_fraction=0.3, early_stopping=True, patience=5, **options)
    assert len(b[1].E_val) == len(b[1])
    assert_same_fit(a, b)


# (plain gd carries no state, and warm_start refuses its history: "has no v")
@pytest.mark.parametrize("name", ["gd-momentum", "gd-nesterov", "variable-lr", "rprop"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_warm_start_continues_exactly(monkeypatch, name, dtype):
    """30 epochs, then 45 more from the history, equal 75 in one fit (in both paths)."""
    method, options = METHODS[name]
    X, y = data([2, 10, 1], 364, dtype, "tanh")
    results = []
    for kernel in (False, True):
        monkeypatch.setattr(_methods, "KERNEL_EPOCHS", kernel)
        w = fastbp.init_weights([2, 10, 1], seed=1, dtype=dtype)
        h1 = fastbp.fit(w, X, y, "tanh", method, epochs=30, **options)
        h2 = fastbp.fit(w, X, y, "tanh", method, epochs=45, warm_start=h1, **options)
        whole = fastbp.init_weights([2, 10, 1], seed=1, dtype=dtype)
        h = fastbp.fit(whole, X, y, "tanh", method, epochs=75, **options)
        assert bitwise_equal(w, whole)
        assert same_floats(h1.E_in + h2.E_in, h.E_in)
        assert same_floats(h1.learning_rate + h2.learning_rate, h.learning_rate)
        results.append((w, h2))
    assert_same_fit(*results)


@pytest.mark.parametrize("name", ["gd", "gd-momentum", "rprop", "variable-lr"])
def test_divergence_stops_at_the_same_epoch(monkeypatch, name):
    method, options = METHODS[name]
    options = dict(options)
    if method == "rprop":
        options.update(step_initial=1e3, step_max=1e300, step_increase=1e10)
    else:
        options["learning_rate"] = 1e6 if method == "gd" else 1e300
    X, y = data([2, 10, 1], 364, np.float64, "linear")
    X *= 1e3
    out = []
    for kernel in (False, True):
        monkeypatch.setattr(_methods, "KERNEL_EPOCHS", kernel)
        w = fastbp.init_weights([2, 10, 1], seed=1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            h = fastbp.fit(w, X, y, "linear", method, epochs=300, **options)
        out.append((w, h))
        messages = [str(c.message) for c in caught if c.category is RuntimeWarning]
        if h.stop_reason == "diverged":
            assert len(messages) == 1 and f"epoch {len(h) + 1}" in messages[0]
    assert_same_fit(*out)
    if method == "gd":
        assert out[1][1].stop_reason == "diverged"


def test_variable_lr_converges_the_same(monkeypatch):
    """Once the step no longer changes w, variable-lr stops ("converged") at the same epoch."""
    a, b = fit_both(monkeypatch, [1, 1], 8, np.float32, "variable-lr", "linear", epochs=20000,
                    learning_rate=0.1)
    assert_same_fit(a, b)
    assert b[1].stop_reason == "converged"


@pytest.mark.parametrize("name", ["gd", "variable-lr"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_blocks_equal_epoch_by_epoch_over_numpys_buffer(monkeypatch, name, dtype):
    """More weights than NumPy 1.x's buffer (8192): the penalty sums as the installed NumPy."""
    method, options = METHODS[name]
    widths = [2, 96, 96, 1]
    # weights over four decades, so that the order of the sum shows in its rounding
    weights = [w * 10.0 ** np.random.default_rng(l).uniform(-3, 1, w.shape).astype(dtype)
               for l, w in enumerate(fastbp.init_weights(widths, seed=1, dtype=dtype))]
    a, b = fit_both(monkeypatch, widths, 64, dtype, method, weights=weights, epochs=8,
                    weight_decay=0.05, **options)
    assert sum(w.size for w in a[0]) > 8192
    assert_same_fit(a, b)


@pytest.mark.parametrize("n", [1, 5, 7, 8, 9, 100, 128, 129, 300, 4097, 100003])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sum_squares_is_numpys(n, dtype):
    """The penalty's sum of squares rounds as the installed NumPy's (NumPy 1.x sums in blocks of
    np.getbufsize() elements, NumPy 2 pairwise over the whole array)."""
    a = (np.random.default_rng(n).standard_normal(n) * 10.0 ** np.linspace(-3, 3, n)).astype(dtype)
    assert (_core.sum_squares_pairwise(a, fastbp._api.numpy_sum_block())
            == float(np.square(a, dtype=np.float64).sum()))


@pytest.mark.parametrize("block", [0, 8, 129, 4096, 8192])
def test_sum_squares_in_blocks(block):
    """NumPy 1.x's order, whichever NumPy is installed: a pairwise sum per block, the blocks
    added in turn (each block is at most 8192 elements, a pairwise sum on any NumPy); float32
    (whose rounding tells the orders apart) and float64."""
    for dtype in (np.float32, np.float64):
        a = (np.random.default_rng(7).standard_normal(100003)
             * 10.0 ** np.linspace(-3, 3, 100003)).astype(dtype)
        squares = np.square(a, dtype=np.float64)
        if block == 0:
            # NumPy 1.x: one buffer holds the whole array (NumPy 2 ignores the buffer size)
            old = np.setbufsize(1 << 20)
            try:
                expected = float(squares.sum())
            finally:
                np.setbufsize(old)
        else:
            expected = 0.0
            for k in range(0, a.size, block):
                expected += float(squares[k:k + block].sum())
        assert _core.sum_squares_pairwise(a, block) == expected
    # the orders do differ here, so the test tells them apart
    assert (_core.sum_squares_pairwise(a.astype(np.float32), 8192)
            != _core.sum_squares_pairwise(a.astype(np.float32), 0))


@pytest.mark.parametrize("name", ["gd", "variable-lr", "rprop"])
@pytest.mark.parametrize("delay", [0.3, 0.8])
def test_ctrl_c_keeps_a_consistent_history(sigint_raises, name, delay):
    """Ctrl-C during a long run: fit returns the epochs completed, and the weights are those of a
    fit with that many epochs (the block under way when it came is completed and kept)."""
    method, options = METHODS[name]
    X, y = data([2, 10, 1], 364, np.float64, "tanh")
    w = fastbp.init_weights([2, 10, 1], seed=1)
    timer = threading.Timer(delay, _thread.interrupt_main)
    timer.start()
    try:
        h = fastbp.fit(w, X, y, "tanh", method, epochs=10_000_000, **options)
    finally:
        timer.cancel()
    assert h.stop_reason == "interrupted"
    assert 1 <= len(h) < 10_000_000
    assert h.epoch == list(range(1, len(h) + 1))
    assert len(h.E_in) == len(h.E_aug) == len(h.learning_rate) == len(h.accepted) == len(h)
    again = fastbp.init_weights([2, 10, 1], seed=1)
    h2 = fastbp.fit(again, X, y, "tanh", method, epochs=len(h), **options)
    assert bitwise_equal(w, again)
    assert same_floats(h.E_in, h2.E_in)


@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize("after", [True, False], ids=["after-the-kernel", "before-it"])
@pytest.mark.parametrize("callback", [True, False], ids=["epoch-by-epoch", "blocks"])
def test_ctrl_c_around_a_kernel_call(monkeypatch, name, after, callback):
    """KeyboardInterrupt surfacing as the 4th kernel call returns keeps its epochs (they are
    complete); surfacing before it starts keeps the 3 blocks before. Either way the weights are
    those of the history's last epoch."""
    method, options = METHODS[name]
    X, y = data([2, 10, 1], 364, np.float64, "tanh")
    real = fastbp._api.full_batch_epochs
    calls = [0]

    def interrupted(*a, **k):
        calls[0] += 1
        if calls[0] == 4 and not after:
            raise KeyboardInterrupt
        real(*a, **k)
        if calls[0] == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(fastbp._api, "full_batch_epochs", interrupted)
    # blocks of 9 epochs (the fixed cost per epoch dwarfs the rest)
    monkeypatch.setattr(_methods, "_EPOCH_FLOPS", 1 << 40)
    monkeypatch.setattr(_methods, "_BLOCK_FLOPS", 9 * ((1 << 40) + 8 * 41 * 364))
    w = fastbp.init_weights([2, 10, 1], seed=1)
    extra = {"callback": lambda h: None} if callback else {}
    h = fastbp.fit(w, X, y, "tanh", method, epochs=1000, **extra, **options)
    per_block = 1 if callback else 9
    assert h.stop_reason == "interrupted"
    assert len(h) == (4 if after else 3) * per_block
    monkeypatch.setattr(fastbp._api, "full_batch_epochs", real)
    again = fastbp.init_weights([2, 10, 1], seed=1)
    h2 = fastbp.fit(again, X, y, "tanh", method, epochs=len(h), **options)
    assert bitwise_equal(w, again)
    assert same_floats(h.E_in, h2.E_in)


@pytest.mark.parametrize("name", ["gd", "variable-lr", "rprop"])
def test_progress_bar_counts_every_epoch(monkeypatch, name):
    """progress=True keeps the blocks (the bar moves by a block's epochs at a time)."""
    updates = []

    class Bar:
        def __init__(self, total, **kw):
            self.total = total

        def update(self, n):
            updates.append(n)

        def set_postfix(self, *a, **k):
            pass

        def close(self):
            pass

    monkeypatch.setattr(fastbp.training, "_import_tqdm", lambda: Bar)
    method, options = METHODS[name]
    a, b = fit_both(monkeypatch, [2, 10, 1], 364, np.float64, method, epochs=700, progress=True,
                    **options)
    assert_same_fit(a, b)
    assert sum(updates) == len(a[1]) + len(b[1])
    assert len(updates) < len(a[1]) + len(b[1])           # the kernel's blocks: fewer updates
