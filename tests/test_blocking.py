"""The cache blocking (fastbp._api._blocking: samples per tile, per forward/backward sweep, rows per
panel of the gradient update, chosen from the L2 cache size): every blocking against the reference
and finite differences, 1 thread == 2 threads bitwise, the SGD epoch, and the L2 detection with its
FASTBP_L2_BYTES override."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastbp
from _helpers import bitwise_equal, copies, make_problem, rel_err
from fastbp import _api, _checks, reference

# every blocking the policy can choose, and a few more: (tile, sweep, panel rows)
BLOCKINGS = [(64, 64, 0), (64, 64, 8), (128, 64, 16), (128, 128, 0), (256, 64, 24),
             (32, 32, 0), (256, 128, 8)]
# the L2 sizes whose plans the tests force: below, at and above each of the policy's thresholds
L2_SIZES = [256 << 10, 512 << 10, 1 << 20, 2 << 20, 32 << 20]

SHAPES = {
    "one-unit": [1, 1, 1],
    "no-hidden": [3, 2],
    "small": [2, 3, 1],
    "multi-output": [4, 6, 3],
    "B": [8, 32, 32, 1],
    "deep": [3] + [5] * 8 + [2],
    "wide-odd": [13, 37, 11, 5],
    "wide-input": [300, 40, 10],
}
TOL = {"float64": 1e-12, "float32": 1e-5}


@pytest.fixture
def forced(monkeypatch):
    """force(tile, sweep, panel): every plan from now on uses that blocking."""
    def force(tile, sweep, panel):
        monkeypatch.setattr(_api, "_blocking", lambda widths, itemsize, l2: (tile, sweep, panel))
        _api._layout_plan.cache_clear()
    yield force
    _api._layout_plan.cache_clear()


@pytest.fixture
def l2(monkeypatch):
    """l2(bytes): plan as on a CPU with that L2 cache per core (the policy itself, unforced)."""
    def set_l2(nbytes):
        monkeypatch.setattr(_api, "L2_BYTES", nbytes)
    yield set_l2
    _api._layout_plan.cache_clear()


def _unit_pair(widths, activation, output):
    out = widths[:-1] + [max(2, widths[-1])] if output == "softmax" else list(widths)
    return out


def _targets(rng, n, width, output, dtype):
    if output == "softmax":
        y = rng.dirichlet(np.ones(width), n)
    elif output == "logistic":
        y = rng.uniform(0, 1, (n, width))
    elif output == "poisson":
        y = rng.poisson(1.5, (n, width)).astype(float)
    else:
        y = rng.uniform(-0.9, 0.9, (n, width))
    return y.astype(dtype)


def _check_against_reference(widths, n, dtype, activation, output, seed, threads=1):
    weights, X, _ = make_problem(widths, n, dtype=dtype, seed=seed)
    y = _targets(np.random.default_rng(seed), n, widths[-1], output, dtype)
    tol = TOL[dtype]
    e, grads = fastbp.gradient(weights, X, y, output=output, activation=activation,
                               num_threads=threads)
    e_ref, grads_ref = reference.gradient(weights, X, y, output=output, activation=activation)
    assert abs(e - e_ref) <= tol * max(abs(e_ref), 1e-30)
    for g, g_ref in zip(grads, grads_ref):
        assert rel_err(g, g_ref) < tol
    out = fastbp.forward(weights, X, output, activation)
    assert rel_err(out, reference.forward(weights, X, output, activation)) < tol
    e2 = fastbp.error(weights, X, y, output, num_threads=threads, activation=activation)
    assert abs(e2 - e_ref) <= tol * max(abs(e_ref), 1e-30)


@pytest.mark.parametrize("blocking", BLOCKINGS)
@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_every_blocking_matches_reference(forced, blocking, name, dtype):
    forced(*blocking)
    widths = SHAPES[name]
    for n in (1, 63, 200, 3 * _api._plan(widths, 10**9, 2, 8)[2] + 45):
        _check_against_reference(widths, n, dtype, "tanh", "tanh", seed=n, threads=2)


@pytest.mark.parametrize("blocking", BLOCKINGS)
@pytest.mark.parametrize("activation", _checks.ACTIVATIONS)
@pytest.mark.parametrize("output", _checks.OUTPUTS)
def test_every_blocking_every_unit(forced, blocking, activation, output):
    forced(*blocking)
    widths = _unit_pair([20, 24, 12, 3], activation, output)
    _check_against_reference(widths, 333, "float64", activation, output, seed=7)


@pytest.mark.parametrize("blocking", BLOCKINGS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_every_blocking_two_threads_equal_one(forced, blocking, dtype):
    forced(*blocking)
    widths = [40, 24, 17, 3]
    n = 4 * _api._plan(widths, 10**9, 2, 8)[2] + 77
    weights, X, y = make_problem(widths, n, dtype=dtype, seed=11)
    sw = np.random.default_rng(3).uniform(0, 2, n).astype(dtype)
    e1, g1 = fastbp.gradient(weights, X, y, num_threads=1, sample_weight=sw)
    e2, g2 = fastbp.gradient(weights, X, y, num_threads=2, sample_weight=sw)
    assert e1 == e2
    assert bitwise_equal(g1, g2)


@pytest.mark.parametrize("blocking", BLOCKINGS)
def test_every_blocking_finite_differences(forced, blocking):
    forced(*blocking)
    weights, X, y = make_problem([5, 7, 6, 2], 150, seed=2)
    assert fastbp.check_gradient(weights, X, y, num_threads=2) < 1e-6


@pytest.mark.parametrize("blocking", BLOCKINGS)
def test_every_blocking_same_as_default_up_to_rounding(forced, blocking):
    """A blocking changes which samples a partial sum holds, nothing else: results within a few
    ulp of the default blocking's (bitwise equal where every column is a whole vector)."""
    widths = [30, 32, 16]
    weights, X, y = make_problem(widths, 700, seed=5)
    e0, g0 = fastbp.gradient(weights, X, y, num_threads=1)
    forced(*blocking)
    e1, g1 = fastbp.gradient(weights, X, y, num_threads=1)
    assert abs(e1 - e0) <= 1e-14 * abs(e0)
    for a, b in zip(g0, g1):
        assert rel_err(a, b) < 1e-13


@pytest.mark.parametrize("blocking", BLOCKINGS)
@pytest.mark.parametrize("rule", ["sgd", "adam"])
def test_every_blocking_sgd_epoch(forced, blocking, rule):
    """The epoch kernel runs the same chunks and tiles: its weights match a step-by-step epoch of
    fastbp.gradient under the same blocking, and 2 threads equal 1 bitwise."""
    forced(*blocking)
    widths = [12, 20, 9, 2]
    chunk = _api._plan(widths, 10**9, 2, 8)[2]
    n = 5 * chunk + 31
    weights, X, y = make_problem(widths, n, seed=9)
    order = np.random.default_rng(1).permutation(n)
    batch = 2 * chunk + 13
    runs = []
    for threads in (1, 2):
        w = copies(weights)
        m = [np.zeros_like(a) for a in w]
        s = [np.zeros_like(a) for a in w] if rule == "adam" else None
        res = _api.sgd_epoch(w, widths, X, y, order, batch, 0.01, 0.9, m, 0.0, "tanh",
                             rule=rule, moment2=s, num_threads=threads)
        runs.append((w, m, res))
    assert bitwise_equal(runs[0][0], runs[1][0])
    assert runs[0][2] == runs[1][2]
    if rule == "sgd":
        # the same epoch, step by step: v <- 0.9 v - lr g, w <- w + v
        w = copies(weights)
        v = [np.zeros_like(a) for a in w]
        for b0 in range(0, n, batch):
            rows = order[b0:b0 + batch]
            _, g = fastbp.gradient(w, X[rows], y[rows], num_threads=1)
            for a, va, ga in zip(w, v, g):
                va *= 0.9
                va -= 0.01 * ga
                a += va
        for a, b in zip(runs[0][0], w):
            assert rel_err(a, b) < 1e-12


@pytest.mark.parametrize("nbytes", L2_SIZES)
@pytest.mark.parametrize("widths", [[784, 256, 256, 10], [64, 128, 128, 10],
                                    [16] + [64] * 8 + [1], [8, 32, 32, 1], [300, 40, 10]])
@pytest.mark.parametrize("itemsize", [8, 4])
def test_policy_gives_valid_blockings(l2, nbytes, widths, itemsize):
    l2(nbytes)
    tile, sweep, panel = _api._blocking(tuple(widths), itemsize, nbytes)
    _, plan_tile, chunk, _ = _api._plan(widths, 10**6, 1, itemsize)
    assert plan_tile == tile
    assert tile % sweep == 0 and sweep % 16 == 0     # every kernel set's sample block divides it
    assert chunk % tile == 0
    assert panel >= 0 and panel % 8 == 0


def test_default_l2_keeps_todays_plan():
    """On a 2 MiB L2 (the machine the defaults were tuned on) the plan is fastbp 0.x's: tiles of
    64 samples, one sweep, no panels, so results there are bitwise those of before."""
    for widths in ([784, 256, 256, 10], [64, 128, 128, 10], [16] + [64] * 8 + [1], [8, 32, 32, 1]):
        for itemsize in (4, 8):
            assert _api._blocking(tuple(widths), itemsize, 2 << 20) == (64, 64, 0)


@pytest.mark.parametrize("nbytes", L2_SIZES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_policy_at_every_l2_matches_reference(l2, nbytes, dtype):
    l2(nbytes)
    for widths in ([300, 40, 10], [8, 32, 32, 1], [3] + [5] * 8 + [2]):
        _check_against_reference(widths, 1100, dtype, "tanh", "linear", seed=4, threads=2)


# ------------------------------------------------------------------------------------------------
# L2 detection

def test_detect_l2_override(tmp_path):
    assert _api._detect_l2({"FASTBP_L2_BYTES": "524288"}) == (524288, "FASTBP_L2_BYTES")
    assert _api._detect_l2({"FASTBP_L2_BYTES": " 1048576 "}) == (1048576, "FASTBP_L2_BYTES")


@pytest.mark.parametrize("bad", ["abc", "0", "-5", "1.5", "512K"])
def test_detect_l2_bad_override_warns_and_is_ignored(bad):
    with pytest.warns(RuntimeWarning, match="FASTBP_L2_BYTES"):
        nbytes, source = _api._detect_l2({"FASTBP_L2_BYTES": bad})
    assert source != "FASTBP_L2_BYTES" and nbytes > 0


def test_detect_l2_from_sysfs(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sysconf", lambda name: -1)
    for i, (level, kind, size) in enumerate([("1", "Data", "32K"), ("1", "Instruction", "32K"),
                                             ("2", "Unified", "512K"), ("3", "Unified", "32M")]):
        d = tmp_path / f"index{i}"
        d.mkdir()
        (d / "level").write_text(level + "\n")
        (d / "type").write_text(kind + "\n")
        (d / "size").write_text(size + "\n")
    assert _api._detect_l2({}, sysfs=str(tmp_path)) == (512 << 10, "sysfs")
    assert _api._detect_l2({}, sysfs=str(tmp_path / "missing")) == (_api._DEFAULT_L2_BYTES,
                                                                    "default")


def test_parse_cache_size():
    assert _api._parse_cache_size("2048K\n") == 2 << 20
    assert _api._parse_cache_size("1M") == 1 << 20
    assert _api._parse_cache_size("65536") == 65536


def test_env_override_reaches_the_plan_and_show_config():
    code = ("import fastbp, io; from fastbp import _api; s = io.StringIO(); "
            "fastbp.show_config(file=s); print(_api.L2_BYTES, _api.L2_SOURCE); print(s.getvalue())")
    env = dict(os.environ, FASTBP_L2_BYTES=str(512 << 10))
    # from tests/: `python -c` puts the current folder first on sys.path, and from the checkout's
    # root that is the unbuilt source folder, not the installed fastbp
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=os.path.dirname(os.path.abspath(__file__))).stdout
    assert out.splitlines()[0] == f"{512 << 10} FASTBP_L2_BYTES"
    assert "L2 cache:         512 KiB per core (from FASTBP_L2_BYTES)" in out


def test_show_config_names_the_l2_and_the_blocking():
    import io
    s = io.StringIO()
    fastbp.show_config(file=s)
    text = s.getvalue()
    assert f"L2 cache:         {_api.L2_BYTES // 1024} KiB per core (from {_api.L2_SOURCE})" in text
    assert "blocking" in text


@pytest.mark.parametrize("itemsize", [8, 4])
def test_small_l2_panels_a_wide_input_layer(itemsize):
    """On a 512 KiB L2 the gradient update of D's 785 x 256 first layer goes in panels (whose x(0)
    tile, 400 KB of doubles, would otherwise be read from beyond L2 once per column block)."""
    tile, sweep, panel = _api._blocking((784, 256, 256, 10), itemsize, 512 << 10)
    assert (tile, sweep) == (64, 64)
    assert panel == _api._PANEL_BYTES // (64 * itemsize)
    assert _api._blocking((8, 32, 32, 1), itemsize, 512 << 10) == (64, 64, 0)


@pytest.mark.parametrize("blocking", BLOCKINGS)
@pytest.mark.parametrize("method", ["gd", "variable-lr", "rprop"])
def test_every_blocking_full_batch_epochs(forced, monkeypatch, blocking, method):
    """The full-batch methods' kernel blocks of epochs use the blocking `gradient` uses: their
    weights and history are bitwise those of epoch-by-epoch training under it, on 1 and 2
    threads."""
    from fastbp import _methods
    forced(*blocking)
    widths = [12, 20, 9, 2]
    n = 3 * _api._plan(widths, 10**9, 2, 8)[2] + 17
    weights, X, y = make_problem(widths, n, seed=5)
    fits = []
    for kernel, threads in ((False, 1), (True, 1), (True, 2)):
        monkeypatch.setattr(_methods, "KERNEL_EPOCHS", kernel)
        w = copies(weights)
        h = fastbp.fit(w, X, y, method=method, epochs=6, num_threads=threads)
        fits.append((w, h.E_in, h.E_aug))
    for w, E_in, E_aug in fits[1:]:
        assert bitwise_equal(w, fits[0][0]) and E_in == fits[0][1] and E_aug == fits[0][2]
