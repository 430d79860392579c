"""Every kernel set this CPU runs against the baseline set: the same gradient, error, forward
pass and single-sample backprop (1e-12 relative in float64, 1e-5 in float32; a delta where the
output nears its target to that times its cancellation) for every hidden activation and output,
and the same SGD epoch.

The sets are taken from fastbp._core.kernel_sets() at collection time, so the comparison covers
whatever the build has (AVX2 and AVX-512 on x86-64; on aarch64 today only 'baseline', so there is
nothing to compare and the test is skipped, saying so; a NEON set is compared as soon as it is
built in). Each set runs in a subprocess under FASTBP_SIMD=<its name>, which also checks that the
set asked for is the one that ran; the subprocess saves its results and this process compares them.
tools/test_aarch64.sh runs this file under QEMU.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from _helpers import kernel_set_env, rel_err
from fastbp import _core

HERE = os.path.dirname(os.path.abspath(__file__))
OTHER_SETS = [name for name, runs in _core.kernel_sets() if runs and name != "baseline"]

# Run in a subprocess from tests/ (so that test_activations' problems are importable): every
# activation and output, both dtypes, shapes narrower and wider than a vector and a register block,
# batches of one sample, of a few, and of more than one tile.
CODE = """
import sys
import numpy as np
import fastbp
from fastbp import _api
from test_activations import PAIRS, problem, sample_weights, valid
assert _api.ISA == sys.argv[1], (_api.ISA, sys.argv[1])
out = {}
for dt in ("float64", "float32"):
    for a, o in PAIRS:
        for widths in ([5, 17, 9, 2], [1, 2], [12, 40, 33, 7], [3, 70, 1]):
            if not valid(widths, o):
                continue
            for n in (1, 7, 150):
                w, X, y = problem(widths, n, a, o, dtype=dt)
                sw = sample_weights(n).astype(dt) if n > 1 else None
                key = f"{dt}/{a}/{o}/{widths}/{n}"
                kw = dict(output=o, activation=a)
                e, g = fastbp.gradient(w, X, y, sample_weight=sw, **kw)
                out[key + "/error"] = np.array(e)
                out[key + "/error_fn"] = np.array(fastbp.error(w, X, y, sample_weight=sw, **kw))
                for l, gl in enumerate(g):
                    out[key + f"/grad{l}"] = gl
                out[key + "/forward"] = fastbp.forward(w, X, **kw)
                xs, deltas = fastbp.backprop(w, X[-1], y[-1], **kw)
                for l, v in enumerate(xs):
                    out[key + f"/backprop_x{l}"] = v
                for l, v in enumerate(deltas):
                    out[key + f"/backprop_delta{l}"] = v
    # one SGD epoch (mini-batches of 10, momentum), from the same start under each set
    w, X, y = problem([6, 20, 3], 120, "tanh", "linear", dtype=dt)
    fastbp.fit(w, X, y, output="linear", method="sgd", epochs=1, batch_size=10, learning_rate=0.05,
               momentum=0.5, shuffle=False)
    for l, v in enumerate(w):
        out[f"{dt}/sgd/w{l}"] = v
np.savez(sys.argv[2], **out)
print("ok")
"""


def _results(name, path):
    # the fastbp this process imported, whether installed or built in place
    env = kernel_set_env(name)
    res = subprocess.run([sys.executable, "-c", CODE, name, str(path)], cwd=HERE, env=env,
                         capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr[-3000:]
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("name", OTHER_SETS or [pytest.param(
    None, marks=pytest.mark.skip(reason=f"no kernel set but baseline runs here: "
                                        f"{_core.kernel_sets()}"))])
def test_kernel_set_agrees_with_baseline(name, tmp_path):
    base = _results("baseline", tmp_path / "baseline.npz")
    other = _results(name, tmp_path / f"{name}.npz")
    assert sorted(base) == sorted(other)
    worst = {}
    for key, b in base.items():
        o = other[key]
        assert o.dtype == b.dtype and o.shape == b.shape, key
        tol = 1e-12 if key.startswith("float64") else 1e-5
        case, what = key.rsplit("/", 1)
        if what.startswith("backprop_delta"):
            # one sample's delta(L) = x(L) - y cancels where the output is near its target: both
            # sets' x(L) agree to tol relative to |x(L)|, their deltas to tol times
            # |x(L)| / |delta(L)| relative to |delta(L)| (and so every delta(l) back from it)
            L = sum(k.startswith(case + "/backprop_delta") for k in base)
            x_out, d_out = base[f"{case}/backprop_x{L}"], base[f"{case}/backprop_delta{L - 1}"]
            tol *= max(1.0, float(np.abs(x_out).max() / max(np.abs(d_out).max(), 1e-300)))
        err = rel_err(o, b) if np.any(b) else float(np.abs(o).max())
        assert err <= tol, (key, err, tol)
        kind = key.split("/")[0]
        worst[kind] = max(worst.get(kind, 0.0), err)
    print(f"{name} against baseline, the largest relative difference: {worst}")
