"""Two builds of fastbp timed against each other on mini-batch epochs (bench/ab.py times the
full-batch gradient): the before/after figures of a change to the SGD/Adam step.

    python bench/ab_epoch.py OLD_DIR NEW_DIR [ROUNDS]

OLD_DIR and NEW_DIR are checkouts with their compiled module built in place (each worker process
imports fastbp from its directory through PYTHONPATH). Per case and round each build times
`fastbp.fit(..., epochs=1)` 3 times (its minimum), the builds in turn, who goes first alternating
round by round; the table gives the medians over rounds and new/old. Cases: dense tanh networks
on 4000 samples (20000 for [8, 32, 32, 1]) with adam or sgd at batch 200 (32), 1 and 2 threads,
and a sparse [60000, 64, 3] softmax network on a 5000-row CSR matrix at 0.2 % density.
As with bench/ab.py: repeat a run with the builds swapped and trust what survives both.
"""
import os
import statistics
import subprocess
import sys

CASES = [("64-100-10", "adam", 200, 1), ("64-100-10", "adam", 200, 2),
         ("40-128-64-5", "adam", 200, 1), ("40-128-64-5", "adam", 200, 2),
         ("50-256-128-10", "adam", 200, 1), ("50-256-128-10", "adam", 200, 2),
         ("50-256-128-10", "sgd", 200, 2), ("8-32-32-1", "sgd", 32, 1),
         ("sparse-60000-64-3", "adam", 200, 1)]
WORKER = r'''
import sys, time, json, warnings
import numpy as np
import fastbp
rng = np.random.default_rng(0)
def problem(name):
    if name.startswith("sparse"):
        import scipy.sparse as sp
        _, d0, h, c = name.split("-"); d0, h, c = int(d0), int(h), int(c)
        N = 5000; nnz = int(N * d0 * 0.002)
        rows = np.sort(rng.integers(0, N, nnz)); cols = rng.integers(0, d0, nnz)
        X = sp.csr_matrix((rng.random(nnz), (rows, cols)), shape=(N, d0))
        return [d0, h, c], X, np.eye(c)[rng.integers(0, c, N)], "softmax"
    w = [int(v) for v in name.split("-")]
    N = 20000 if w[0] == 8 else 4000
    X = rng.standard_normal((N, w[0])); y = np.tanh(rng.standard_normal((N, w[-1])))
    return w, X, y, "tanh"
cache = {}
for line in sys.stdin:
    name, method, batch, threads, reps = line.split()
    if name not in cache: cache[name] = problem(name)
    widths, X, y, out = cache[name]
    best = 1e9
    for _ in range(int(reps)):
        w = fastbp.init_weights(widths, seed=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            fastbp.fit(w, X, y, out, method, epochs=1, batch_size=int(batch),
                       num_threads=int(threads), learning_rate=1e-3)
            best = min(best, time.perf_counter() - t0)
    print(best, flush=True)
'''
def start(path):
    env = dict(os.environ, PYTHONPATH=path, OPENBLAS_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env,
                            cwd=os.path.dirname(os.path.abspath(path)))


old, new = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
wo, wn = start(old), start(new)
res = {c: ([], []) for c in CASES}
for r in range(rounds):
    for c in CASES:
        order = [(0, wo), (1, wn)] if r % 2 == 0 else [(1, wn), (0, wo)]
        for k, w in order:
            w.stdin.write(f"{c[0]} {c[1]} {c[2]} {c[3]} 3\n")
            w.stdin.flush()
            res[c][k].append(float(w.stdout.readline()))
print("| network | method | batch | threads | old (ms) | new (ms) | new/old |")
print("|---|---|---|---|---|---|---|")
for c, (a, b) in res.items():
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"| {c[0]} | {c[1]} | {c[2]} | {c[3]} | {ma * 1e3:.1f} | {mb * 1e3:.1f} | "
          f"{mb / ma:.3f} |")
