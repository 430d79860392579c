"""fit_many and Network.fit(restarts=K): several networks at once, one per thread, each exactly the
network that fit would have trained alone."""
import _thread
import time

import numpy as np
import pytest

import fastbp
from _helpers import bitwise_equal, copies, multiclass, regression


def starts(widths, k, dtype="float64"):
    return [fastbp.init_weights(widths, seed=10 + i, dtype=dtype) for i in range(k)]


@pytest.mark.parametrize("method,common,own", [
    ("sgd", dict(batch_size=4, momentum=0.5, epochs=15), [dict(learning_rate=0.05),
                                                          dict(learning_rate=0.02, seed=3),
                                                          dict(nesterov=True)]),
    ("adam", dict(batch_size=8, epochs=15, learning_rate=0.01), [{}, dict(beta1=0.8), {}]),
    ("variable-lr", dict(epochs=30), [{}, dict(lr_increase=1.2), {}]),
    ("cg", dict(epochs=10, weight_decay=0.1), [{}, {}, {}]),
    ("lbfgs", dict(epochs=10, validation_fraction=0.25), [{}, {}, {}]),
])
@pytest.mark.parametrize("num_threads", [1, 2])
def test_each_network_is_the_one_fit_trains_alone(method, common, own, num_threads):
    if method == "lbfgs":
        pytest.importorskip("scipy")
    widths, output, X, y = multiclass()
    many = starts(widths, 3)
    alone = [copies(w) for w in many]
    histories = fastbp.fit_many(many, X, y, output=output, method=method, options=own,
                                num_threads=num_threads, **common)
    for w, w_alone, o, h in zip(many, alone, own, histories):
        h_alone = fastbp.fit(w_alone, X, y, output=output, method=method, **common, **o)
        assert bitwise_equal(w, w_alone)
        assert h.E_in == h_alone.E_in and h.E_val == h_alone.E_val
        assert h.stop_reason == h_alone.stop_reason


def test_restarts_keep_the_best_network():
    widths, output, X, y = multiclass()
    net = fastbp.Network(widths, output=output, seed=1)
    w0 = copies(net.weights)
    h = net.fit(X, y, method="sgd", learning_rate=0.05, batch_size=4, epochs=10, restarts=3,
                validation_fraction=0.25)
    assert len(net.restart_histories) == 3 and h is net.history
    finals = [r.E_val[-1] for r in net.restart_histories]
    best = int(np.argmin(finals))
    assert h is net.restart_histories[best]
    # restart 0 started from the network's own weights, the others from seeded fresh ones
    first = copies(w0)
    h0 = fastbp.fit(first, X, y, output=output, method="sgd", learning_rate=0.05, batch_size=4,
                    epochs=10, validation_fraction=0.25)
    assert h0.E_val == net.restart_histories[0].E_val
    again = fastbp.Network(widths, output=output, seed=1)
    again.fit(X, y, method="sgd", learning_rate=0.05, batch_size=4, epochs=10, restarts=3,
              validation_fraction=0.25)
    assert bitwise_equal(again.weights, net.weights)
    assert fastbp.error(net.weights, X, y, output=output) <= max(
        r.E_in[-1] for r in net.restart_histories) * (1 + 1e-12)


def test_restarts_without_validation_compare_E_in():
    widths, output, X, y = regression(30)
    net = fastbp.Network(widths, output=output, seed=1)
    h = net.fit(X, y, method="gd", epochs=20, restarts=4)
    assert h.E_in[-1] == min(r.E_in[-1] for r in net.restart_histories)
    assert fastbp.error(net.weights, X, y, output=output) == pytest.approx(h.E_in[-1], rel=1e-12)


def test_ctrl_c_stops_every_network_after_its_epoch(sigint_raises):
    widths, output, X, y = regression(200)
    many = starts(widths, 2)
    seen = [[], []]

    def watcher(k):
        def callback(history):
            seen[k].append(len(history))
            if k == 0 and len(history) == 3:
                # until network 1 is under way too (a busy machine may start its thread late)
                for _ in range(6000):
                    if seen[1]:
                        break
                    time.sleep(0.01)
                _thread.interrupt_main()       # what Ctrl-C does to the waiting main thread
                time.sleep(0.2)
        return callback

    histories = fastbp.fit_many(many, X, y, output=output, method="sgd", epochs=100000,
                                batch_size=1, num_threads=2,
                                options=[dict(callback=watcher(0)), dict(callback=watcher(1))])
    assert all(h.stop_reason == "interrupted" for h in histories)
    for k, h in enumerate(histories):
        # the epoch under way when Ctrl-C came is completed and kept, then the network stops
        assert 1 <= len(h) < 100000 and len(h) - 1 <= seen[k][-1] <= len(h), (k, len(h), seen)
        again = fastbp.init_weights(widths, seed=10 + k)
        fastbp.fit(again, X, y, output=output, method="sgd", epochs=len(h), batch_size=1)
        assert bitwise_equal(many[k], again)


def test_ctrl_c_right_after_a_network_is_started_keeps_what_it_did(monkeypatch, sigint_raises):
    """Ctrl-C may land in the main thread between starting a network and noting it (CI once saw
    a network that had trained reported as never started): every network's weights must still
    be those of fit with its history's epochs."""
    from concurrent.futures import ThreadPoolExecutor
    widths, output, X, y = regression(200)
    many = starts(widths, 2)
    submit = ThreadPoolExecutor.submit
    calls = []

    def submit_then_interrupt(self, fn, *args, **kwargs):
        future = submit(self, fn, *args, **kwargs)
        calls.append(future)
        if len(calls) == 2:
            time.sleep(0.3)                  # network 1 is well under way
            raise KeyboardInterrupt
        return future

    monkeypatch.setattr(ThreadPoolExecutor, "submit", submit_then_interrupt)
    histories = fastbp.fit_many(many, X, y, output=output, method="sgd", epochs=100000,
                                batch_size=1, num_threads=2)
    assert len(calls) == 2
    assert all(h.stop_reason == "interrupted" for h in histories)
    assert len(histories[1]) >= 1
    for k, h in enumerate(histories):
        again = fastbp.init_weights(widths, seed=10 + k)
        fastbp.fit(again, X, y, output=output, method="sgd", epochs=len(h), batch_size=1)
        assert bitwise_equal(many[k], again), (k, len(h))


def test_an_error_in_one_network_stops_the_others_and_is_raised():
    widths, output, X, y = regression(200)
    many = starts(widths, 2)
    seen = [0, 0]

    def watcher(k):
        def callback(history):
            seen[k] = len(history)
            if k == 0 and len(history) == 5:
                raise RuntimeError("network 0 gives up")
        return callback

    with pytest.raises(RuntimeError, match="network 0 gives up"):
        fastbp.fit_many(many, X, y, output=output, method="sgd", epochs=100000, batch_size=1,
                        num_threads=2,
                        options=[dict(callback=watcher(0)), dict(callback=watcher(1))])
    assert seen[0] == 5 and seen[1] < 100000


def test_bad_input_changes_no_network():
    widths, output, X, y = regression(10)
    many = starts(widths, 3)
    before = [copies(w) for w in many]
    with pytest.raises(ValueError, match=r"network 2: learning_rate must be > 0, got -1"):
        fastbp.fit_many(many, X, y, output=output, method="gd",
                        options=[{}, {}, dict(learning_rate=-1)])
    with pytest.raises(ValueError, match=r"options must be a list of 3 dicts, one per network, "
                                         r"got list of length 2"):
        fastbp.fit_many(many, X, y, output=output, options=[{}, {}])
    with pytest.raises(ValueError, match=r"give num_threads .* to fit_many"):
        fastbp.fit_many(many, X, y, output=output, num_threads=1,
                        options=[{}, {"num_threads": 2}, {}])
    with pytest.raises(ValueError, match=r"network 1: weights\[1\] has shape"):
        fastbp.fit_many([many[0], [many[1][0], np.zeros((3, 1))]], X, y, output=output)
    shared = [many[0], many[0]]
    with pytest.raises(ValueError, match=r"share memory"):
        fastbp.fit_many(shared, X, y, output=output)
    with pytest.raises(TypeError, match=r"weights must be a non-empty list of networks"):
        fastbp.fit_many([], X, y)
    net = fastbp.Network(widths, output=output)
    with pytest.raises(ValueError, match=r"restarts must be at least 1, got 0"):
        net.fit(X, y, restarts=0)
    for w, b in zip(many, before):
        assert bitwise_equal(w, b)


# ------------------------------------------------------------------------------------------------
# fastbp.Network objects, the object users hold, as well as lists of weight arrays

@pytest.mark.parametrize("method", ["sgd", "gd"])
def test_networks_train_as_their_own_fit_would(method):
    widths, output, X, y = multiclass()
    nets = [fastbp.Network(widths, output=output, seed=k) for k in range(3)]
    alone = [fastbp.Network(widths, output=output, seed=k) for k in range(3)]
    histories = fastbp.fit_many(nets, X, y, method=method, epochs=8, num_threads=2,
                                options=[{}, dict(learning_rate=0.05), {}])
    assert len(histories) == 3
    for net, other, own, h in zip(nets, alone, [{}, dict(learning_rate=0.05), {}], histories):
        h_alone = other.fit(X, y, method=method, epochs=8, **own)
        assert bitwise_equal(net.weights, other.weights)       # updated in place
        assert h.E_in == h_alone.E_in and len(h) == 8
        assert net.history is h                                # kept, as Network.fit keeps it


def test_networks_keep_their_units_and_mix_with_weight_lists():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 2))
    Y = np.eye(3)[np.arange(40) % 3]
    net = fastbp.Network([2, 5, 3], output="softmax", activation="relu", seed=0)
    twin = fastbp.Network([2, 5, 3], output="softmax", activation="relu", seed=0)
    plain = fastbp.init_weights([2, 5, 3], seed=1)
    plain_alone = copies(plain)
    h_net, h_plain = fastbp.fit_many([net, plain], X, Y, method="adam", epochs=5,
                                     batch_size=8)
    twin.fit(X, Y, method="adam", epochs=5, batch_size=8)
    assert bitwise_equal(net.weights, twin.weights)           # softmax and relu, its own units
    fastbp.fit(plain_alone, X, Y, method="adam", epochs=5, batch_size=8)
    # a weight list takes the default units (tanh output: these targets are fine for it too)
    assert bitwise_equal(plain, plain_alone)
    assert h_net is net.history and len(h_plain) == 5


def test_networks_warm_start_from_their_last_fit():
    widths, output, X, y = regression(30)
    nets = [fastbp.Network(widths, output=output, seed=k) for k in range(2)]
    straight = [fastbp.Network(widths, output=output, seed=k) for k in range(2)]
    fastbp.fit_many(nets, X, y, method="adam", epochs=4, shuffle=False, batch_size=8)
    fastbp.fit_many(nets, X, y, method="adam", epochs=6, shuffle=False, batch_size=8,
                    warm_start=True)
    for net, other in zip(nets, straight):
        other.fit(X, y, method="adam", epochs=10, shuffle=False, batch_size=8)
        assert bitwise_equal(net.weights, other.weights)


def test_network_mistakes_in_fit_many_change_nothing():
    widths, output, X, y = regression(10)
    nets = [fastbp.Network(widths, output=output, seed=k) for k in range(2)]
    before = [copies(n.weights) for n in nets]
    with pytest.raises(ValueError, match=r"network 0: output='tanh' was given, but this "
                                         r"Network's output is 'linear'"):
        fastbp.fit_many(nets, X, y, output="tanh")
    with pytest.raises(ValueError, match=r"network 0: activation='relu' was given, but this "
                                         r"Network's activation is 'tanh'"):
        fastbp.fit_many(nets, X, y, output="linear", activation="relu", options=[{}, {}])
    with pytest.raises(ValueError, match=r"network 0: warm_start=True .* has not been fitted"):
        fastbp.fit_many(nets, X, y, warm_start=True)
    with pytest.raises(ValueError, match=r"network 1: warm_start=True means a Network's own"):
        fastbp.fit_many([nets[0], copies(nets[1].weights)], X, y,
                        options=[{}, dict(warm_start=True)])
    with pytest.raises(ValueError, match=r"share memory"):
        fastbp.fit_many([nets[0], nets[0]], X, y)
    with pytest.raises(TypeError, match=r"got Network \(one network: fit_many takes a list of "
                                        r"them, fit_many\(\[net, \.\.\.\]\)\)"):
        fastbp.fit_many(nets[0], X, y)
    with pytest.raises(TypeError, match=r"got a list of 2 2-D arrays: the weights of one "
                                        r"network\? fit trains one network"):
        fastbp.fit_many(nets[0].weights, X, y)
    for n, b in zip(nets, before):
        assert bitwise_equal(n.weights, b) and n.history is None
