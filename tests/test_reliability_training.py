"""Reliability, training: exceptions other than Ctrl-C inside fit, and hostile model files
(issue 5).
"""
import io
import pickle

import numpy as np
import pytest

import fastbp
from _helpers import (
    bitwise_equal,
    copies,
    make_problem,
)
from fastbp import _api

# ================================================================================================


# Training: exceptions other than Ctrl-C, and hostile files

@pytest.mark.parametrize("exc", [RuntimeError("boom"), MemoryError("no memory"), ValueError("x")])
@pytest.mark.parametrize("method", ["gd", "sgd", "cg"])
def test_an_exception_inside_fit_leaves_the_last_completed_epoch(exc, method, monkeypatch):
    """A callback raising, or a kernel call failing (e.g. MemoryError) in the middle of an epoch:
    the exception reaches the caller and the weights are those of the last completed epoch.
    (tests/test_training.py covers KeyboardInterrupt.)"""
    _, X, y = make_problem([2, 5, 1], 40, seed=6)
    seen = []

    def callback(hist):
        seen.append(copies(weights))
        if len(hist) == 3:
            raise exc
    weights = fastbp.init_weights([2, 5, 1], seed=1)
    with pytest.raises(type(exc), match=str(exc)):
        fastbp.fit(weights, X, y, method=method, epochs=10, learning_rate=0.05, callback=callback)
    assert len(seen) == 3 and bitwise_equal(weights, seen[-1])

    # a kernel call failing in the 4th epoch (gd's epochs are kernel blocks, one epoch each
    # with a callback: fastbp._methods.KernelEpochs)
    name = {"sgd": "sgd_epoch", "gd": "full_batch_epochs"}.get(method, "gradient")
    real = getattr(_api, name)

    def failing(*args, **kw):
        if len(seen) == 3:
            raise exc
        return real(*args, **kw)
    seen.clear()
    weights = fastbp.init_weights([2, 5, 1], seed=1)
    monkeypatch.setattr(_api, name, failing)
    with pytest.raises(type(exc), match=str(exc)):
        fastbp.fit(weights, X, y, method=method, epochs=10, learning_rate=0.05,
                   callback=lambda hist: seen.append(copies(weights)))
    assert len(seen) == 3 and bitwise_equal(weights, seen[-1])


class _Payload:
    """Unpickling this runs code: it must never happen inside fastbp.load."""
    marker = None

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_load_never_unpickles(tmp_path):
    marker = tmp_path / "pwned"
    _Payload.marker = str(marker)
    net = fastbp.Network([2, 3, 1], seed=0)
    good = {"fastbp_format": np.array(1), "widths": np.array([2, 3, 1]),
            "output": np.array("tanh"), "dtype": np.array("float64"),
            "weights_0": net.weights[0], "weights_1": net.weights[1]}
    payload = np.empty((), dtype=object)
    payload[()] = _Payload()
    for key in list(good):
        path = tmp_path / f"hostile_{key}.npz"
        with open(path, "wb") as f:
            np.savez(f, **dict(good, **{key: payload}))
        with pytest.raises(ValueError, match="cannot load a fastbp model"):
            fastbp.load(path)
        assert not marker.exists()
    # a bare pickle renamed .npz
    path = tmp_path / "pickle.npz"
    path.write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(ValueError, match="cannot load a fastbp model"):
        fastbp.load(path)
    assert not marker.exists()



def test_load_survives_random_corruption():
    """Flipped bits anywhere in a saved model (600 files): a clear ValueError, or, where the flips
    hit nothing that matters (zip slack), a model bitwise equal to the saved one; never a crash,
    another exception or different weights. Cutting the file at any length: ValueError."""
    net = fastbp.Network([3, 5, 2], seed=0)
    buf = io.BytesIO()
    net.save(buf)
    data = buf.getvalue()
    rng = np.random.default_rng(0)
    refused = 0
    for _ in range(600):
        bad = bytearray(data)
        for pos in rng.integers(0, len(bad), size=rng.integers(1, 4)):
            bad[pos] ^= 1 << int(rng.integers(0, 8))
        try:
            back = fastbp.load(io.BytesIO(bytes(bad)))
        except ValueError as exc:
            assert "cannot load a fastbp model" in str(exc)
            refused += 1
        else:
            assert back.widths == net.widths and bitwise_equal(back.weights, net.weights)
    assert refused > 400
    for n in range(0, len(data), 5):
        with pytest.raises(ValueError, match="cannot load a fastbp model"):
            fastbp.load(io.BytesIO(data[:n]))


def test_load_of_a_member_flagged_encrypted_is_a_clear_error():
    net = fastbp.Network([2, 3, 1], seed=0)
    buf = io.BytesIO()
    net.save(buf)
    data = bytearray(buf.getvalue())
    central = data.index(b"PK\x01\x02")       # the first member's central directory entry
    data[central + 8] |= 1                     # general purpose flag bit 0: encrypted
    with pytest.raises(ValueError, match="cannot load a fastbp model"):
        fastbp.load(io.BytesIO(bytes(data)))
