"""Sparse inputs (issue 24): fastbp on scipy.sparse X against scikit-learn and PyTorch, and the
density from which fastbp's tile path beats its nonzeros path.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/sparse.py \
        [--quick] [--only a,b,c,d] [--rounds R] [--threads T] [--dtype float64[,float32]] \
        [--out PNG] [--json PATH]

Run it from the checkout's root with the fastbp to measure importable (e.g. `PYTHONPATH=.`); every
child process it starts imports the same fastbp as the parent. Sections:

(a) TF-IDF-like text (`tfidf_like`). A CSR matrix of 20000 training rows (plus 5000 held out) x
    100000 columns at density 0.1 % and 1 %: each row a class of 20 (uniform) and a length
    (log-normal around density x d(0)); its columns distinct, drawn from a Zipf-Mandelbrot
    popularity (p ∝ (rank + 10)^-1, the ranks shuffled over the columns, as a vocabulary in
    alphabetical order: some columns are in most rows, most in few), one draw in ten from its
    class's topic (1000 columns of the class, the same popularity over them); values log-normal
    term weights times the column's smoothed idf, each row scaled to unit L2 norm
    (TfidfVectorizer's norm="l2"); the label the row's class, a random one for 10 % of the rows
    (learnable, not separable: 5000 rows at 0.1 % gave a held-out accuracy of 0.64).
    `MLPClassifier(hidden_layer_sizes=(128,), solver="adam", batch_size=200, max_iter=5,
    random_state=0)` from scikit-learn and from fastbp.sklearn (the same parameters,
    `num_threads=--threads`), ConvergenceWarning suppressed.
(b) A ColumnTransformer pipeline (`onehot_frame`): a pandas DataFrame of 100000 training rows
    (plus 20000 held out), 8 categorical columns of string levels (10 to 1000 levels, geometric,
    skewed frequencies) and 5 numeric columns; `ColumnTransformer([OneHotEncoder(
    handle_unknown="ignore") on the categorical, StandardScaler() on the numeric],
    sparse_threshold=1.0)` (a CSR matrix of about 2070 columns, 13 nonzeros a row) into
    `MLPClassifier((64, 32), solver="adam", batch_size=200, max_iter=5, random_state=0)`; 10
    classes. What Pipeline.fit does, timed as a whole and in its parts: the ColumnTransformer's
    fit_transform, then the classifier's fit.
    For (a) and (b) every fit runs in a fresh process (`--child`), the contenders in turn, who goes
    first alternating round by round, --rounds rounds. The child loads the data (written once by
    the parent, uncompressed .npz / pickle), imports the estimator, makes a tiny warm-up fit on
    the first 200 rows (hidden (2,), 1 epoch: what a first fit loads, modules and thread pools, is
    not the fit's memory), gives the C heap's free pages back (glibc's malloc_trim: memory freed
    by then but kept by malloc would be reused by the fit unseen), resets its peak RSS
    (/proc/self/clear_refs, where Linux allows it) and notes its RSS: "the data's" memory. It then
    fits, and reports the fit time, its peak RSS less that RSS (for (b): less the RSS after the
    ColumnTransformer's output was made, trimmed likewise, i.e. the classifier's fit on its CSR
    input), and the accuracy on the held-out rows. The peak is VmHWM
    (/proc/self/status), not getrusage's ru_maxrss: on Linux a child's ru_maxrss starts at its
    parent's peak (fork copies it, exec keeps it), which hid the fits' peaks below this script's
    own. Printed: median fit times and the speed-up scikit-learn / fastbp (target >= 3x), both
    scores and whether they agree within 0.01, the median peak memories, their ratio fastbp /
    scikit-learn (target <= 1.2) and their difference (where both fits need only a few MiB, as
    the small network of (b), the ratio is mostly noise: see the difference).
(c) fastbp.gradient on the training matrix of (a) (both densities), network [100000, 128, 20], ReLU
    hidden units, softmax output (mean cross-entropy), one-hot y, --dtype (default float64):
      fastbp        sparse_crossover(2.0): the first layer from the nonzeros
      fastbp tiles  sparse_crossover(0.0): the dense kernels on a tile of rows written out dense
      torch csr / torch coo  PyTorch eager: X as torch.sparse_csr_tensor / sparse_coo_tensor
                    (coalesced), X @ W1 + b1, relu, @ W2 + b2, F.cross_entropy, autograd.grad
                    of W1, b1, W2, b2; torch.set_num_threads(--threads)
    checked against each other first (fastbp's E_in and gradient: tiles and torch within 1e-10
    relative in float64, 1e-4 in float32), then timed in turn (--rounds rounds, each contender
    enough calls a round to last --min-sample seconds). PyTorch's tensors are made outside the
    timing; fastbp's calls take the scipy matrix as a user passes it (its check of X timed). The
    dense path is not timed on the whole matrix (20000 x 100000 float64 is 16 GB): on the first
    --dense-rows rows (default 1000, 0.8 GB dense) "fastbp" and "fastbp dense" (X.toarray() of
    those rows, made outside the timing) are timed in turn, a row of their own. Target: fastbp
    >= 3x the faster torch. GFLOP/s of the nonzeros path: 2 nnz d(1) (forward) + 2 nnz d(1)
    (dE/dW(1)) + 6 (d(1) + 1) d(2) N (the layer above), over the median time.
(d) The crossover: fastbp.gradient on random CSR matrices (uniform columns, N = 4000, values
    standard normal) of d(0) in {1000, 10000} x d(1) in {64, 256}, 10 softmax outputs, ReLU,
    --dtype, at densities 0.001, 0.003, 0.01, 0.03, 0.1, 0.3: sparse_crossover(2.0) (nonzeros)
    against sparse_crossover(0.0) (tiles), in turn. Printed per shape: the time ratio
    tiles / nonzeros at each density, the first density from which the tile path wins at every
    density above, and where the ratio crosses 1 (interpolated in log density). fastbp's default
    crossover is what these say (fastbp._sparse).

Needs scikit-learn and SciPy; pandas for (b) and PyTorch for (c)'s torch rows, each skipped with
a note when missing; matplotlib for the PNG.

--quick: small sizes (a: 1500 x 5000; b: 4000 rows; c: (a)'s matrices; d: d(0) in {300, 1000},
d(1) 32, N 800, three densities), 1 round: a check that the script runs (< 60 s), not figures.
Full run: estimated before it starts, progress printed as it goes. Output: a markdown table per
section, a PNG (--out, default bench/results/sparse.png) and a JSON record (--json, default
bench/results/sparse.json).
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import math
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import (  # noqa: E402
    blas_limit,
    cpu_info,
    fastbp_private,
    fma_peaks,
    fma_peaks_text,
    fmt_time,
    usable_cpus,
    warn_openblas_env,
    write_record,
)

SCORE_TOL = 0.01          # scores "equal": within this accuracy
SPEEDUP_TARGET = 3.0      # fastbp.sklearn >= 3x scikit-learn's fit; fastbp.gradient >= 3x torch
MEMORY_TARGET = 1.2       # fastbp's fit peak <= 1.2x scikit-learn's
DENSITIES_D = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
CHECK_TOL = {"float64": 1e-10, "float32": 1e-4}

SIZES = {
    False: {"a": dict(n=20_000, n_test=5_000, d=100_000, densities=(0.001, 0.01), classes=20),
            "b": dict(n=100_000, n_test=20_000),
            "d": dict(n=4_000, d0=(1_000, 10_000), d1=(64, 256), densities=DENSITIES_D)},
    True: {"a": dict(n=1_500, n_test=500, d=5_000, densities=(0.001, 0.01), classes=20),
           "b": dict(n=4_000, n_test=1_000),
           "d": dict(n=800, d0=(300, 1_000), d1=(32,), densities=(0.003, 0.03, 0.3))},
}
MLP_A = dict(hidden_layer_sizes=(128,), solver="adam", batch_size=200, max_iter=5)
MLP_B = dict(hidden_layer_sizes=(64, 32), solver="adam", batch_size=200, max_iter=5)
LEVELS_B = tuple(int(round(v)) for v in np.geomspace(10, 1000, 8))
HIDDEN_C, CLASSES_D = 128, 10


def log(msg) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------

def tfidf_like(n, d, density, classes=20, seed=0, topic_fraction=0.1, topic_words=1000,
               label_noise=0.1, dtype=np.float64):
    """(X, y): a TF-IDF-like (n, d) scipy.sparse CSR matrix of about density x n x d stored
    entries and its labels 0..classes-1 (the module docstring, (a)).

    Each row has a class (uniform) and a length (log-normal around density x d); its columns are
    distinct, drawn from a Zipf-Mandelbrot popularity p ∝ (rank + 10)^-1 over the whole
    vocabulary (the ranks shuffled over the columns, as a vocabulary in alphabetical order), or
    with probability `topic_fraction` from its class's topic: `topic_words` columns of the
    class (at most d / (2 classes)), the same popularity over them. Values: log-normal term
    weights times the column's smoothed idf, each row scaled to unit L2 norm, indices sorted.
    y: the row's class, replaced by a uniform one for a `label_noise` fraction of the rows
    (learnable, not separable)."""
    import scipy.sparse as sp
    rng = np.random.default_rng(seed)

    def zipf_cdf(k):
        cdf = np.cumsum((np.arange(k, dtype=np.float64) + 10.0) ** -1.0)
        return cdf / cdf[-1]
    cdf, topic_words = zipf_cdf(d), max(1, min(topic_words, d // (2 * classes)))
    topic_cdf = zipf_cdf(topic_words)
    column_of_rank = rng.permutation(d).astype(np.int64)
    topics = np.stack([rng.choice(d, topic_words, replace=False) for _ in range(classes)])
    label = rng.integers(0, classes, n)
    sigma = 0.6
    mean = density * d
    lengths = rng.lognormal(math.log(mean) - sigma ** 2 / 2, sigma, n)
    lengths = np.clip(np.rint(lengths * (mean * n / lengths.sum())), 1, max(1, d // 2))
    lengths = lengths.astype(np.int64)
    keys = np.empty(0, dtype=np.int64)                 # row * d + column, sorted, distinct
    need = lengths
    for _ in range(60):                                # draw again where a row drew a repeat
        if not need.any():
            break
        rows = np.repeat(np.arange(n, dtype=np.int64), need)
        cols = column_of_rank[np.minimum(np.searchsorted(cdf, rng.random(rows.size),
                                                         side="right"), d - 1)]
        topical = rng.random(rows.size) < topic_fraction
        r = np.minimum(np.searchsorted(topic_cdf, rng.random(int(topical.sum())),
                                       side="right"), topic_words - 1)
        cols[topical] = topics[label[rows[topical]], r]
        new = np.unique(rows * d + cols)
        if keys.size:
            pos = np.searchsorted(keys, new)
            seen = keys[np.minimum(pos, keys.size - 1)] == new
            new, pos = new[~seen], pos[~seen]
            keys = np.insert(keys, pos, new)           # a merge: keys stays sorted
        else:
            keys = new
        need = lengths - np.bincount(keys // d, minlength=n)
    rows, cols = keys // d, keys % d
    del keys
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    df = np.bincount(cols, minlength=d)
    idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
    values = rng.lognormal(0.0, 1.0, cols.size) * idf[cols]
    norms = np.sqrt(np.add.reduceat(values * values, indptr[:-1]))
    values /= np.repeat(norms, np.diff(indptr))
    itype = np.int32 if cols.size < 2 ** 31 and d < 2 ** 31 else np.int64
    X = sp.csr_matrix((values.astype(dtype), cols.astype(itype), indptr.astype(itype)),
                      shape=(n, d))
    X.has_sorted_indices = True
    noisy = rng.random(n) < label_noise
    y = np.where(noisy, rng.integers(0, classes, n), label)
    return X, y


@functools.lru_cache(maxsize=2)
def text_problem(n, n_test, d, density, classes, seed=0):
    """(X_train, y_train, X_test, y_test) of section (a): one tfidf_like matrix of n + n_test rows
    and its labels, split (kept for section (c): the same call returns the same objects, not to
    be modified)."""
    X, y = tfidf_like(n + n_test, d, density, classes, seed)
    return X[:n], y[:n], X[n:], y[n:]


def onehot_frame(n, levels=LEVELS_B, n_numeric=5, classes=10, seed=0):
    """(DataFrame, y) of section (b): columns cat0..cat7 of string levels ("c3_17"; level k of a
    column drawn with p ∝ (k + 2)^-1.1), num0..num4 (normal and log-normal, various scales), and
    labels of a random model (a per-level effect of every categorical column plus a linear term
    of the numeric ones, Gumbel noise)."""
    import pandas as pd
    rng = np.random.default_rng(seed)
    frame, logits = {}, np.zeros((n, classes))
    for j, k in enumerate(levels):
        p = (np.arange(k) + 2.0) ** -1.1
        codes = rng.choice(k, n, p=p / p.sum())
        names = np.array([f"c{j}_{i}" for i in range(k)], dtype=object)
        frame[f"cat{j}"] = names[codes]
        logits += rng.standard_normal((k, classes))[codes] * 0.6
    for j in range(n_numeric):
        z = rng.standard_normal(n)
        frame[f"num{j}"] = np.exp(z) * 10 ** j if j % 2 else z * 10 ** j + 5 * j
        logits += np.outer(z, rng.standard_normal(classes)) * 0.6
    y = np.argmax(1.5 * logits + rng.gumbel(size=logits.shape), axis=1)
    return pd.DataFrame(frame), y


def onehot_pipeline_parts(mlp):
    """(ColumnTransformer, mlp): what make_pipeline(ct, mlp) holds (section (b))."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    cats = [f"cat{j}" for j in range(len(LEVELS_B))]
    nums = [f"num{j}" for j in range(5)]
    ct = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), cats),
                            ("num", StandardScaler(), nums)], sparse_threshold=1.0)
    return ct, mlp


def random_csr(n, d, density, seed=0, dtype=np.float64):
    """Section (d)'s matrices: columns uniform, distinct within a row, about density x d a row;
    values standard normal."""
    import scipy.sparse as sp
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=density, format="csr", random_state=rng, dtype=dtype,
                  data_rvs=rng.standard_normal)
    X.sort_indices()
    return X


# --------------------------------------------------------------------------------------------------
# Fits in fresh processes: sections (a) and (b)
# --------------------------------------------------------------------------------------------------

def _rss() -> int:
    """This process's resident set, bytes (/proc/self/statm; 0 where there is none)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _reset_peak() -> bool:
    """Reset the peak RSS (ru_maxrss, VmHWM) to the current RSS: Linux >= 4.0 (clear_refs 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _trim() -> bool:
    """Give the C heap's free pages back to the system (glibc's malloc_trim), so that the RSS is
    the memory in use: memory freed before a fit (loading, the warm-up, a transform) but kept by
    malloc would otherwise be reused by the fit unseen, and its peak read too low. False where
    there is no glibc."""
    import ctypes
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


def _peak() -> int:
    """This process's peak resident set since it started or since _reset_peak, bytes: VmHWM of
    /proc/self/status. Not getrusage's ru_maxrss, which on Linux is also at least the parent's
    peak when this process was started (fork copies it, exec keeps it): a child of a big parent
    would report the parent's peak. ru_maxrss only where /proc is not there."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    import resource
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb * (1 if sys.platform == "darwin" else 1024)


def child(spec) -> dict:
    """One fit in this (fresh) process: spec = {"section": "a"|"b", "data": path, "side":
    "sklearn"|"fastbp", "params": {...}, "threads": T}. Returns the record the parent prints."""
    rss_start = _rss()
    if spec["section"] == "a":
        import scipy.sparse as sp
        with np.load(spec["data"]) as f:
            parts = [sp.csr_matrix((f[f"{s}_data"], f[f"{s}_indices"], f[f"{s}_indptr"]),
                                   shape=tuple(f[f"{s}_shape"])) for s in ("train", "test")]
            X, X_test = parts
            y, y_test = f["train_y"], f["test_y"]
    else:
        with open(spec["data"], "rb") as fh:
            X, y, X_test, y_test = pickle.load(fh)
    from sklearn.exceptions import ConvergenceWarning
    if spec["side"] == "fastbp":
        from fastbp.sklearn import MLPClassifier
        params = dict(spec["params"], num_threads=spec["threads"])
    else:
        from sklearn.neural_network import MLPClassifier
        params = dict(spec["params"])
    est = MLPClassifier(random_state=0, **params)
    ct = onehot_pipeline_parts(est)[0] if spec["section"] == "b" else None
    # a warm-up: a tiny fit on the first rows loads what a fit loads on first use (modules, thread
    # pools): not the fit's memory
    with blas_limit(spec["threads"]), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tiny = dict(params, hidden_layer_sizes=(2,), max_iter=1)
        rows = min(X.shape[0], 200)
        Xw = onehot_pipeline_parts(None)[0].fit_transform(X[:rows]) if ct is not None else X[:rows]
        MLPClassifier(random_state=0, **tiny).fit(Xw, y[:rows])
        del Xw
    gc.collect()
    trimmed = _trim()
    rss_data = _rss()
    reset = _reset_peak()
    out = {"rss_start": rss_start, "rss_data": rss_data, "peak_reset": reset,
           "malloc_trim": trimmed}
    with blas_limit(spec["threads"]), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        if ct is not None:
            X = ct.fit_transform(X)
            out["transform_s"] = time.perf_counter() - t0
            out["transform_peak_extra"] = _peak() - rss_data
            gc.collect()
            _trim()                             # the transform's freed temporaries: not the data
            rss_data = _rss()
            out["rss_transformed"] = rss_data
            out["peak_reset"] = reset = reset and _reset_peak()
            out["shape_transformed"] = list(X.shape)
            out["nnz_transformed"] = int(X.nnz)
            out["format_transformed"] = getattr(X, "format", "dense")
        t1 = time.perf_counter()
        est.fit(X, y)
        t2 = time.perf_counter()
        peak = _peak()
    out["mlp_fit_s"] = t2 - t1
    # (b): the pipeline's fit, what Pipeline.fit does: the transform, then the classifier's fit
    out["fit_s"] = out["mlp_fit_s"] + out.get("transform_s", 0.0)
    out["peak_extra"] = peak - rss_data
    # without a reset the peak may be the data's loading: then the fit's is not known
    out["peak_is_fit"] = bool(reset or peak > out["rss_data"])
    with blas_limit(spec["threads"]):
        out["score"] = float(est.score(ct.transform(X_test) if ct is not None else X_test,
                                       y_test))
    out["n_iter"] = int(est.n_iter_)
    return out


def _child_env():
    """The environment of a child: the parent's fastbp first on its path."""
    import fastbp
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastbp.__file__)))
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}


def run_child(spec, timeout=None) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=_child_env(),
                          timeout=timeout)
    if done.returncode != 0:
        return {"error": f"child exited with {done.returncode}: " + done.stderr[-1500:]}
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": "no record from the child: " + (done.stdout + done.stderr)[-1500:]}


def fits_in_turn(section, data_path, params, threads, rounds, label):
    """{side: [child records]}: each side fitted in a fresh process, `rounds` times, in turn, who
    goes first alternating."""
    sides = ["sklearn", "fastbp"]
    out = {s: [] for s in sides}
    for r in range(rounds):
        for side in (sides if r % 2 == 0 else sides[::-1]):
            t0 = time.perf_counter()
            rec = run_child({"section": section, "data": data_path, "side": side,
                             "params": params, "threads": threads})
            out[side].append(rec)
            what = (rec["error"].splitlines()[-1] if "error" in rec else
                    f"fit {fmt_time(rec['fit_s'])}, peak +{rec['peak_extra'] / 2**20:.0f} MiB, "
                    f"score {rec['score']:.4f}")
            log(f"  {label} round {r + 1}/{rounds} {side:7s}: {what} "
                f"(process {fmt_time(time.perf_counter() - t0)})")
    return out


def _median(recs, key):
    vals = [r[key] for r in recs if key in r]
    return float(statistics.median(vals)) if vals else None


def summarize_fits(name, recs, extra):
    """A section (a)/(b) row: medians, ratios and the targets' verdicts."""
    row = {"problem": name, **extra, "runs": recs}
    for side in ("sklearn", "fastbp"):
        ok = [r for r in recs[side] if "error" not in r]
        row[f"{side}_errors"] = [r["error"] for r in recs[side] if "error" in r]
        row[f"{side}_fit_s"] = _median(ok, "fit_s")
        row[f"{side}_mlp_fit_s"] = _median(ok, "mlp_fit_s")
        row[f"{side}_times_s"] = [r["fit_s"] for r in ok]
        row[f"{side}_peak_bytes"] = _median(ok, "peak_extra")
        row[f"{side}_data_bytes"] = _median(ok, "rss_data")
        row[f"{side}_score"] = ok[-1]["score"] if ok else None
        row[f"{side}_n_iter"] = ok[-1]["n_iter"] if ok else None
        row[f"{side}_peak_is_fit"] = all(r["peak_is_fit"] for r in ok) if ok else None
    sk, fb = row["sklearn_fit_s"], row["fastbp_fit_s"]
    row["speedup"] = sk / fb if sk and fb else None
    sk, fb = row["sklearn_mlp_fit_s"], row["fastbp_mlp_fit_s"]
    row["speedup_mlp"] = sk / fb if sk and fb else None
    s_sk, s_fb = row["sklearn_score"], row["fastbp_score"]
    row["scores_equal"] = (bool(abs(s_sk - s_fb) <= SCORE_TOL)
                           if s_sk is not None and s_fb is not None else None)
    m_sk, m_fb = row["sklearn_peak_bytes"], row["fastbp_peak_bytes"]
    row["memory_ratio"] = m_fb / m_sk if m_sk and m_fb is not None and m_sk > 0 else None
    row["met"] = bool(row["speedup"] is not None and row["speedup"] >= SPEEDUP_TARGET
                      and row["scores_equal"] and row["memory_ratio"] is not None
                      and row["memory_ratio"] <= MEMORY_TARGET)
    return row


def section_a(sizes, threads, rounds, tmp, seed=0):
    import scipy.sparse as sp
    rows = []
    for density in sizes["densities"]:
        t0 = time.perf_counter()
        X, y, X_test, y_test = text_problem(sizes["n"], sizes["n_test"], sizes["d"], density,
                                            sizes["classes"], seed)
        log(f"(a) density {density:g}: X {X.shape[0]} x {X.shape[1]}, nnz {X.nnz} (density "
            f"{X.nnz / (X.shape[0] * X.shape[1]):.5f}), made in "
            f"{fmt_time(time.perf_counter() - t0)}")
        path = os.path.join(tmp, f"a-{density:g}.npz")
        arrays = {}
        for s, M, labels in (("train", X, y), ("test", X_test, y_test)):
            M = sp.csr_matrix(M)
            arrays.update({f"{s}_data": M.data, f"{s}_indices": M.indices,
                           f"{s}_indptr": M.indptr, f"{s}_shape": np.array(M.shape),
                           f"{s}_y": labels})
        np.savez(path, **arrays)
        extra = {"section": "a", "density": density,
                 "density_stored": X.nnz / (X.shape[0] * X.shape[1]), "shape": list(X.shape),
                 "nnz": int(X.nnz), "n_test": X_test.shape[0], "params": MLP_A,
                 "classes": sizes["classes"], "data_bytes": int(X.data.nbytes + X.indices.nbytes
                                                               + X.indptr.nbytes)}
        del X, X_test, arrays
        recs = fits_in_turn("a", path, MLP_A, threads, rounds, f"(a) {density:g}")
        os.unlink(path)
        rows.append(summarize_fits(f"tfidf {density:g}", recs, extra))
    return rows


def section_b(sizes, threads, rounds, tmp, seed=0):
    t0 = time.perf_counter()
    n, n_test = sizes["n"], sizes["n_test"]
    df, y = onehot_frame(n + n_test, seed=seed)
    log(f"(b) DataFrame {n} + {n_test} rows, levels {LEVELS_B}, made in "
        f"{fmt_time(time.perf_counter() - t0)}")
    path = os.path.join(tmp, "b.pkl")
    with open(path, "wb") as fh:
        pickle.dump((df.iloc[:n].reset_index(drop=True), y[:n],
                     df.iloc[n:].reset_index(drop=True), y[n:]), fh, protocol=5)
    del df
    recs = fits_in_turn("b", path, MLP_B, threads, rounds, "(b)")
    os.unlink(path)
    ok = [r for side in recs.values() for r in side if "shape_transformed" in r]
    extra = {"section": "b", "rows": n, "n_test": n_test, "levels": list(LEVELS_B),
             "params": MLP_B, "classes": 10,
             "shape": ok[0]["shape_transformed"] if ok else None,
             "nnz": ok[0]["nnz_transformed"] if ok else None,
             "format": ok[0]["format_transformed"] if ok else None}
    if ok:
        extra["density_stored"] = extra["nnz"] / (extra["shape"][0] * extra["shape"][1])
    return [summarize_fits("onehot pipeline", recs, extra)]


# --------------------------------------------------------------------------------------------------
# fastbp.gradient: sections (c) and (d)
# --------------------------------------------------------------------------------------------------

def _crossover_fn():
    import fastbp
    fn = getattr(fastbp, "sparse_crossover", None)
    if fn is None:
        from fastbp._sparse import sparse_crossover as fn
    return fn


@contextlib.contextmanager
def crossover(density):
    """fastbp's sparse crossover set to `density` for the duration."""
    fn = _crossover_fn()
    old = fn(density)
    try:
        yield
    finally:
        fn(old)


def fastbp_call(weights, X, Y, threads, density):
    """fastbp.gradient with the sparse crossover at `density` (2.0: the nonzeros path, 0.0: the
    tile path) for the call only."""
    import fastbp

    def run():
        with crossover(density):
            return fastbp.gradient(weights, X, Y, output="softmax", activation="relu",
                                   num_threads=threads)
    return run


def torch_call(weights, X, labels, threads, layout):
    """PyTorch eager on X as a sparse CSR or COO tensor (section (c)); returns (run, convert,
    note): run() the timed call, convert its result to fastbp's (E_in, grads)."""
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")            # "beta" and invariant-check notices
        if layout == "csr":
            Xt = torch.sparse_csr_tensor(torch.from_numpy(X.indptr.astype(np.int64)),
                                         torch.from_numpy(X.indices.astype(np.int64)),
                                         torch.from_numpy(np.asarray(X.data,
                                                                     dtype=weights[0].dtype)),
                                         size=X.shape)
        else:
            C = X.tocoo()
            Xt = torch.sparse_coo_tensor(
                torch.from_numpy(np.vstack([C.row, C.col]).astype(np.int64)),
                torch.from_numpy(C.data.astype(weights[0].dtype)), size=X.shape).coalesce()
    params = []
    for w in weights:
        params.append(torch.from_numpy(np.ascontiguousarray(w[1:])).requires_grad_())
        params.append(torch.from_numpy(np.ascontiguousarray(w[0])).requires_grad_())
    yt = torch.from_numpy(labels.astype(np.int64))

    def run():
        h = Xt @ params[0] + params[1]
        for l in range(1, len(weights)):
            h = torch.relu(h) @ params[2 * l] + params[2 * l + 1]
        loss = F.cross_entropy(h, yt)
        return loss, torch.autograd.grad(loss, params)

    def convert(result):
        loss, g = result
        return float(loss.detach()), [np.vstack([g[2 * l + 1].numpy()[None, :],
                                                 g[2 * l].numpy()])
                                      for l in range(len(weights))]
    return run, convert


def rel_error(got, want) -> float:
    """The larger of E_in's relative difference and, over layers, max|g - g0| / max|g0|."""
    (E, gs), (E0, gs0) = got, want
    err = abs(float(E) - float(E0)) / max(abs(float(E0)), 1e-300)
    for g, g0 in zip(gs, gs0):
        g, g0 = np.asarray(g, np.float64), np.asarray(g0, np.float64)
        err = max(err, float(np.max(np.abs(g - g0))) / max(float(np.max(np.abs(g0))), 1e-300))
    return err


def calibrate(fn, min_sample) -> int:
    """Calls of fn a timed sample makes so that it lasts at least min_sample seconds (one call
    timed; fn already warmed up)."""
    t0 = time.perf_counter()
    fn()
    return max(1, math.ceil(min_sample / max(time.perf_counter() - t0, 1e-9)))


def first_call(fn):
    """(fn(), seconds): the check's call, which is also the warm-up."""
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def time_in_turn(fns, rounds, min_sample, first=None):
    """{name: [seconds a call, one per round]}: every fn (warmed up) timed each round, in turn,
    who goes first rotating; a round's sample is k calls / k, k calibrated once per fn (from its
    first call's seconds, `first[name]`, when that call lasted min_sample or more: a slow call
    is not made once more only to be calibrated). The garbage collector is off while timing."""
    names = list(fns)
    first = first or {}
    inner = {name: (1 if first.get(name, 0.0) >= min_sample
                    else calibrate(fns[name], min_sample)) for name in names}
    out = {name: [] for name in names}
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for r in range(rounds):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                fn, m = fns[name], inner[name]
                t0 = time.perf_counter()
                for _ in range(m):
                    fn()
                out[name].append((time.perf_counter() - t0) / m)
    finally:
        if enabled:
            gc.enable()
    return out


def torch_available() -> str | None:
    """None when torch imports, else why not."""
    try:
        import torch  # noqa: F401
    except Exception as exc:          # an optional peer: any import failure skips it
        return f"torch not importable ({type(exc).__name__}: {exc})"
    return None


def gradient_flops(nnz, widths, n) -> int:
    """Section (c)'s count: 2 nnz d(1) forward + 2 nnz d(1) for dE/dW(1) + 6 x the weights and
    biases of the layers above x N."""
    above = sum((a + 1) * b for a, b in zip(widths[1:-1], widths[2:]))
    return 4 * nnz * widths[1] + 6 * above * n


def section_c(sizes, dtypes, threads, rounds, min_sample, dense_rows, seed=0):
    import fastbp
    why_no_torch = torch_available()
    rows = []
    for density in sizes["densities"]:
        t0 = time.perf_counter()
        X64, y, _, _ = text_problem(sizes["n"], sizes["n_test"], sizes["d"], density,
                                    sizes["classes"], seed)
        log(f"(c) density {density:g}: X {X64.shape[0]} x {X64.shape[1]}, nnz {X64.nnz}, ready in "
            f"{fmt_time(time.perf_counter() - t0)} ((a)'s, when (a) ran)")
        n, classes = X64.shape[0], sizes["classes"]
        Y64 = np.eye(classes)[y]
        for dtype in dtypes:
            X = X64.astype(dtype)
            Y = Y64.astype(dtype)
            widths = [X.shape[1], HIDDEN_C, classes]
            weights = fastbp.init_weights(widths, seed=seed + 1, dtype=dtype)
            fns = {"fastbp": fastbp_call(weights, X, Y, threads, 2.0),
                   "fastbp tiles": fastbp_call(weights, X, Y, threads, 0.0)}
            converts = {}
            notes = []
            if why_no_torch:
                notes.append(why_no_torch + ": no torch rows")
            else:
                for layout in ("csr", "coo"):
                    try:
                        run, conv = torch_call(weights, X, y, threads, layout)
                        fns[f"torch {layout}"] = run
                        converts[f"torch {layout}"] = conv
                    except Exception as exc:       # a layout this torch lacks: say, go on
                        notes.append(f"torch {layout}: {type(exc).__name__}: {exc}")
            # the check, which is also every contender's warm-up
            want, t_first = first_call(fns["fastbp"])
            errors, first = {"fastbp": 0.0}, {"fastbp": t_first}
            for name in list(fns):
                if name == "fastbp":
                    continue
                got, first[name] = first_call(fns[name])
                got = converts[name](got) if name in converts else got
                errors[name] = rel_error(got, want)
                if not errors[name] <= CHECK_TOL[str(np.dtype(dtype))]:
                    notes.append(f"{name} DISAGREES with fastbp ({errors[name]:.2e}): not timed")
                    del fns[name]
            log(f"(c) {density:g} {np.dtype(dtype).name}: agreement with fastbp "
                + ", ".join(f"{k} {v:.1e}" for k, v in errors.items() if k != "fastbp")
                + f"; timing {', '.join(fns)} in turn, {rounds} rounds")
            times = time_in_turn(fns, rounds, min_sample, first)
            med = {k: float(statistics.median(v)) for k, v in times.items()}
            torch_names = [k for k in med if k.startswith("torch")]
            best_torch = min(torch_names, key=med.get) if torch_names else None
            flops = gradient_flops(X.nnz, widths, n)
            row = {"section": "c", "density": density, "dtype": np.dtype(dtype).name,
                   "shape": list(X.shape), "nnz": int(X.nnz), "widths": widths,
                   "times_s": times, "median_s": med, "check_errors": errors, "notes": notes,
                   "flops": flops, "gflops": flops / med["fastbp"] / 1e9,
                   "best_torch": best_torch,
                   "speedup_torch": med[best_torch] / med["fastbp"] if best_torch else None,
                   "speedup_tiles": med["fastbp tiles"] / med["fastbp"]}
            row["met"] = bool(row["speedup_torch"] is not None
                              and row["speedup_torch"] >= SPEEDUP_TARGET)
            if dense_rows:
                m = min(dense_rows, n)
                Xs = X[:m]
                Xd = Xs.toarray()
                Ys = Y[:m]
                sub = {"fastbp": fastbp_call(weights, Xs, Ys, threads, 2.0),
                       "fastbp dense": lambda Xd=Xd, Ys=Ys, w=weights: fastbp.gradient(
                           w, Xd, Ys, output="softmax", activation="relu",
                           num_threads=threads)}
                (a, ta), (b, tb) = first_call(sub["fastbp"]), first_call(sub["fastbp dense"])
                sub_times = time_in_turn(sub, rounds, min_sample,
                                         {"fastbp": ta, "fastbp dense": tb})
                row["dense_subset"] = {
                    "rows": m, "check_error": rel_error(a, b), "times_s": sub_times,
                    "median_s": {k: float(statistics.median(v)) for k, v in sub_times.items()},
                    "nnz": int(Xs.nnz)}
                ds = row["dense_subset"]
                ds["speedup_dense"] = ds["median_s"]["fastbp dense"] / ds["median_s"]["fastbp"]
                del Xd
            rows.append(row)
            log(f"(c) {density:g} {row['dtype']}: " + ", ".join(
                f"{k} {fmt_time(v)}" for k, v in med.items()))
    return rows


def crossover_density(densities, ratios):
    """(first, crossing): the first density from which the tile path wins (ratio tiles/nonzeros
    < 1) at it and every density above; and where the ratio crosses 1 last, interpolated in log
    density and log ratio. None where the tile path never wins; 0.0 if it always does."""
    wins = [r < 1.0 for r in ratios]
    if not any(wins):
        return None, None
    first = len(wins)
    while first > 0 and wins[first - 1]:
        first -= 1
    if first == len(wins):
        return None, None                   # the tile path wins somewhere, not at the top
    if first == 0:
        return densities[0], 0.0
    lo, hi = first - 1, first
    x0, x1 = math.log(densities[lo]), math.log(densities[hi])
    y0, y1 = math.log(ratios[lo]), math.log(ratios[hi])
    crossing = math.exp(x0 + (x1 - x0) * (0.0 - y0) / (y1 - y0))
    return densities[first], crossing


def section_d(sizes, dtypes, threads, rounds, min_sample, seed=0):
    import fastbp
    rows = []
    n = sizes["n"]
    shapes = [(d0, d1) for d0 in sizes["d0"] for d1 in sizes["d1"]]
    rng = np.random.default_rng(seed)
    for dtype in dtypes:
        for d0, d1 in shapes:
            widths = [d0, d1, CLASSES_D]
            weights = fastbp.init_weights(widths, seed=seed + 1, dtype=dtype)
            Y = np.eye(CLASSES_D, dtype=dtype)[rng.integers(0, CLASSES_D, n)]
            ratios, per = [], []
            for density in sizes["densities"]:
                X = random_csr(n, d0, density, seed, dtype)
                fns = {"nonzeros": fastbp_call(weights, X, Y, threads, 2.0),
                       "tiles": fastbp_call(weights, X, Y, threads, 0.0)}
                (a, ta), (b, tb) = first_call(fns["nonzeros"]), first_call(fns["tiles"])
                err = rel_error(a, b)
                times = time_in_turn(fns, rounds, min_sample, {"nonzeros": ta, "tiles": tb})
                med = {k: float(statistics.median(v)) for k, v in times.items()}
                ratios.append(med["tiles"] / med["nonzeros"])
                per.append({"density": density, "nnz": int(X.nnz), "times_s": times,
                            "median_s": med, "ratio": ratios[-1], "check_error": err})
            first, crossing = crossover_density(list(sizes["densities"]), ratios)
            rows.append({"section": "d", "dtype": np.dtype(dtype).name, "n": n,
                         "widths": widths, "points": per, "first_tile_win": first,
                         "crossing": crossing})
            log(f"(d) {np.dtype(dtype).name} [{d0}, {d1}, {CLASSES_D}] N={n}: tiles/nonzeros "
                + ", ".join(f"{p['density']:g}: {p['ratio']:.2f}" for p in per)
                + f"; tiles win from {first}")
    return rows


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------

def _mib(b):
    return "-" if b is None else f"{b / 2**20:.0f} MiB"


def _x(v, fmt="{:.2f}x"):
    return "-" if v is None else fmt.format(v)


def markdown_fits(rows) -> str:
    lines = ["| problem | X | sklearn fit | fastbp fit | speed-up (>= 3x) | score sklearn | "
             "score fastbp | equal (0.01) | peak sklearn | peak fastbp | ratio (<= 1.2) | "
             "fastbp - sklearn | epochs sk/fb | met |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        shape = r.get("shape") or ["?", "?"]
        X = f"{shape[0]} x {shape[1]}, nnz {r.get('nnz')}"
        if r["section"] == "b":
            X += (f" (pipeline; classifier alone: {fmt_time(r['sklearn_mlp_fit_s'])} / "
                  f"{fmt_time(r['fastbp_mlp_fit_s'])}, {_x(r['speedup_mlp'])})")
        errors = r["sklearn_errors"] + r["fastbp_errors"]
        fmt_score = "{:.4f}"
        m_sk, m_fb = r["sklearn_peak_bytes"], r["fastbp_peak_bytes"]
        diff = "-" if m_sk is None or m_fb is None else f"{(m_fb - m_sk) / 2**20:+.0f} MiB"
        lines.append(
            f"| {r['problem']} | {X} | {fmt_time(r['sklearn_fit_s'])} | "
            f"{fmt_time(r['fastbp_fit_s'])} | {_x(r['speedup'])} | "
            f"{_x(r['sklearn_score'], fmt_score)} | {_x(r['fastbp_score'], fmt_score)} | "
            f"{'-' if r['scores_equal'] is None else ('yes' if r['scores_equal'] else 'NO')} | "
            f"{_mib(r['sklearn_peak_bytes'])} | {_mib(r['fastbp_peak_bytes'])} | "
            f"{_x(r['memory_ratio'])} | {diff} | {r['sklearn_n_iter']}/{r['fastbp_n_iter']} | "
            f"{'met' if r['met'] else 'NOT met'}{' (errors: see JSON)' if errors else ''} |")
    return "\n".join(lines)


def markdown_gradient(rows) -> str:
    lines = ["| density | dtype | nnz | fastbp | GFLOP/s | fastbp tiles | torch csr | "
             "torch coo | fastbp x torch (>= 3x) | tiles / fastbp | met | notes |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        med = r["median_s"]
        notes = "; ".join(r["notes"])
        ds = r.get("dense_subset")
        if ds:
            notes = (f"first {ds['rows']} rows: fastbp {fmt_time(ds['median_s']['fastbp'])}, "
                     f"dense {fmt_time(ds['median_s']['fastbp dense'])} "
                     f"({ds['speedup_dense']:.2f}x)" + ("; " + notes if notes else ""))
        lines.append(
            f"| {r['density']:g} | {r['dtype']} | {r['nnz']} | {fmt_time(med['fastbp'])} | "
            f"{r['gflops']:.1f} | {fmt_time(med.get('fastbp tiles'))} | "
            f"{fmt_time(med.get('torch csr'))} | {fmt_time(med.get('torch coo'))} | "
            f"{_x(r['speedup_torch'])} | {_x(r['speedup_tiles'])} | "
            f"{'met' if r['met'] else 'NOT met'} | {notes} |")
    return "\n".join(lines)


def markdown_crossover(rows) -> str:
    if not rows:
        return ""
    densities = [p["density"] for p in rows[0]["points"]]
    lines = ["| dtype | widths | N | " + " | ".join(f"{d:g}" for d in densities)
             + " | tiles win from | ratio 1 at |",
             "|---|---|---|" + "---|" * len(densities) + "---|---|"]
    for r in rows:
        cells = " | ".join(f"{p['ratio']:.2f}" for p in r["points"])
        first = "never" if r["first_tile_win"] is None else f"{r['first_tile_win']:g}"
        crossing = "-" if r["crossing"] is None else f"{r['crossing']:.3g}"
        lines.append(f"| {r['dtype']} | {r['widths']} | {r['n']} | {cells} | {first} | "
                     f"{crossing} |")
    return "\n".join(lines)


def draw_chart(result, path) -> bool:
    """The PNG: fit times and peak memories of (a) and (b), (c)'s gradient times, (d)'s ratios.
    False (and a note) without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed: no PNG (pip install matplotlib)")
        return False
    fits, grads, cross = result["fits"], result["gradient"], result["crossover"]
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    (ax_t, ax_m), (ax_c, ax_d) = axes
    colors = {"sklearn": "#888", "fastbp": "#2a7"}
    for ax, key, div, ylabel in ((ax_t, "fit_s", 1.0, "fit time (s), median"),
                                 (ax_m, "peak_bytes", 2**20,
                                  "fit's peak RSS above the data (MiB), median")):
        if not fits:
            ax.text(0.5, 0.5, "(a), (b) not run", ha="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        x = np.arange(len(fits))
        for k, side in enumerate(("sklearn", "fastbp")):
            vals = [(r[f"{side}_{key}"] or 0.0) / div for r in fits]
            ax.bar(x + (k - 0.5) * 0.38, vals, 0.38, color=colors[side],
                   label="scikit-learn" if side == "sklearn" else "fastbp.sklearn")
        for i, r in enumerate(fits):
            ratio = r["speedup"] if key == "fit_s" else r["memory_ratio"]
            top = max((r[f"sklearn_{key}"] or 0.0), (r[f"fastbp_{key}"] or 0.0)) / div
            if ratio is not None:
                ax.annotate(f"{ratio:.2f}x", (i, top), ha="center", va="bottom", fontsize=8,
                            xytext=(0, 2), textcoords="offset points")
        ax.set_xticks(x, [r["problem"] for r in fits], fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_title("speed-up sklearn / fastbp (target >= 3x)" if key == "fit_s"
                     else "memory fastbp / sklearn (target <= 1.2x)", fontsize=9)
        ax.legend(fontsize=8)
    if grads:
        names = ["fastbp", "fastbp tiles", "torch csr", "torch coo"]
        x = np.arange(len(grads))
        width = 0.8 / len(names)
        for k, name in enumerate(names):
            vals = [r["median_s"].get(name, np.nan) for r in grads]
            ax_c.bar(x + (k - (len(names) - 1) / 2) * width, vals, width, label=name)
        ax_c.set_yscale("log")
        ax_c.set_xticks(x, [f"{r['density']:g} {r['dtype'].replace('float', 'f')}"
                            for r in grads], fontsize=8)
        ax_c.set_ylabel("fastbp.gradient time (s), median")
        ax_c.set_title(f"(c) {grads[0]['shape'][0]} x {grads[0]['shape'][1]} CSR, "
                       f"{grads[0]['widths']} softmax", fontsize=9)
        ax_c.legend(fontsize=8)
    else:
        ax_c.text(0.5, 0.5, "(c) not run", ha="center", transform=ax_c.transAxes)
        ax_c.set_axis_off()
    if cross:
        for r in cross:
            ax_d.plot([p["density"] for p in r["points"]], [p["ratio"] for p in r["points"]],
                      marker="o", label=f"{r['widths']} {r['dtype'].replace('float', 'f')}")
        ax_d.axhline(1.0, color="k", lw=1)
        ax_d.axvline(result["meta"]["default_crossover"], color="gray", ls="--",
                     label="fastbp's crossover now")
        ax_d.set_xscale("log")
        ax_d.set_yscale("log")
        ax_d.set_xlabel("density")
        ax_d.set_ylabel("time tiles / nonzeros (< 1: the tile path wins)")
        ax_d.set_title(f"(d) crossover, N = {cross[0]['n']}", fontsize=9)
        ax_d.legend(fontsize=7)
    else:
        ax_d.text(0.5, 0.5, "(d) not run", ha="center", transform=ax_d.transAxes)
        ax_d.set_axis_off()
    meta = result["meta"]
    fig.suptitle(f"bench/sparse.py{' --quick' if meta['quick'] else ''}: {meta['cpu']}, "
                 f"fastbp on {meta['threads']} threads, {meta['rounds']} rounds in turn",
                 fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    log(f"wrote {path}")
    return True


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------

def estimate_seconds(only, sizes, rounds, dtypes, dense_gflops) -> dict:
    """A rough duration of each section, from assumed rates (measured on a loaded 2-core Zen 4
    at 5000 x 100000: scikit-learn's Adam step about 20 ns a weight, fastbp.sklearn's fit 2.5x
    faster); scikit-learn's sparse products 1 GFLOP/s; 3 s to start each child and load its data;
    the tile path at `dense_gflops`; PyTorch's sparse products 1 GFLOP/s and fastbp's nonzeros
    path 3. Printed before the run, so that the one who starts it knows what to expect; not a
    measurement."""
    out = {}
    a, b, d = sizes["a"], sizes["b"], sizes["d"]
    if "a" in only or "c" in only:
        nnzs = [a["n"] * a["d"] * dens for dens in a["densities"]]
        params_a = (a["d"] + 1) * 128 + 129 * a["classes"]
        steps = math.ceil(a["n"] / 200) * 5
    if "a" in only:
        sk = [steps * params_a * 20e-9 + 5 * 4 * nnz * 128 / 1e9 for nnz in nnzs]
        out["a"] = rounds * sum(s + s / 2.5 + 6.0 for s in sk) + sum(nnzs) * 2.5e-6
    if "b" in only:
        steps_b = math.ceil(b["n"] / 200) * 5
        sk = steps_b * 140_000 * 20e-9 + steps_b * 1e-3 + 3.0
        out["b"] = rounds * (sk + sk / 2.5 + 6.0) + 5
    if "c" in only:
        per = 0.0
        for nnz in nnzs:
            tiles = 4 * a["n"] * a["d"] * 128 / (dense_gflops * 1e9)
            torch = 2 * 4 * nnz * 128 / 1e9
            fb = 4 * nnz * 128 / 3e9
            per += (1 + rounds) * (tiles + torch + fb) + 10
        out["c"] = per * len(dtypes)
    if "d" in only:
        per = 0.0
        for d0 in d["d0"]:
            for d1 in d["d1"]:
                for dens in d["densities"]:
                    tiles = 4 * d["n"] * d0 * d1 / (dense_gflops * 1e9)
                    nz = 4 * d["n"] * d0 * dens * d1 / 3e9
                    per += (1 + rounds) * (max(tiles, 0.05) + max(nz, 0.05))
        out["d"] = per * len(dtypes)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="tiny sizes, 1 round: a check that the script runs, not figures")
    ap.add_argument("--only", default="a,b,c,d",
                    help="the sections to run, comma-separated (default a,b,c,d)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="rounds of the contenders in turn (default 3, quick 1)")
    ap.add_argument("--threads", type=int, default=usable_cpus(),
                    help="fastbp's num_threads, PyTorch's and the BLAS's (default: every usable "
                         "core)")
    ap.add_argument("--dtype", default="float64",
                    help="dtypes of sections (c) and (d): float64, float32 or float64,float32")
    ap.add_argument("--min-sample", type=float, default=None,
                    help="(c), (d): seconds a timed sample lasts at least (default 0.2, quick "
                         "0.01)")
    ap.add_argument("--dense-rows", type=int, default=None,
                    help="(c): rows of the dense comparison (default 1000, quick 200; 0: none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "sparse.png"),
                    help="the PNG (default bench/results/sparse.png)")
    ap.add_argument("--json", default=os.path.join(HERE, "results", "sparse.json"),
                    help="the JSON record (default bench/results/sparse.json)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))), flush=True)
        return None
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    if not only or set(only) - set("abcd"):
        ap.error(f"--only must name sections among a,b,c,d, got {args.only!r}")
    dtypes = [s.strip() for s in args.dtype.split(",") if s.strip()]
    if not dtypes or set(dtypes) - {"float64", "float32"}:
        ap.error(f"--dtype must be float64, float32 or both, got {args.dtype!r}")
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    min_sample = (args.min_sample if args.min_sample is not None
                  else (0.01 if args.quick else 0.2))
    dense_rows = (args.dense_rows if args.dense_rows is not None
                  else (200 if args.quick else 1000))
    if args.threads < 1 or rounds < 1 or min_sample < 0 or dense_rows < 0:
        ap.error(f"--threads and --rounds must be >= 1, --min-sample and --dense-rows >= 0; got "
                 f"{args.threads}, {rounds}, {min_sample}, {dense_rows}")
    warn_openblas_env()
    import scipy
    import sklearn

    import fastbp
    sizes = SIZES[args.quick]
    versions = {"fastbp": fastbp.__version__, "sklearn": sklearn.__version__,
                "scipy": scipy.__version__, "numpy": np.__version__}
    why_no_torch = torch_available()
    if why_no_torch is None:
        import torch
        versions["torch"] = torch.__version__
    cpu = cpu_info()
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    default_crossover = _crossover_fn()()
    peaks = fma_peaks(dtypes, [args.threads], 0.3)
    dense_gflops = 0.5 * min(v[args.threads] for v in peaks.values()) if peaks else 40.0
    log(f"bench/sparse.py{' --quick' if args.quick else ''}: sections {','.join(only)}; "
        f"fastbp {fastbp.__version__} ({fastbp_private('ISA')}, sparse crossover "
        f"{default_crossover:g}) on {args.threads} threads; {rounds} round(s) in turn; "
        f"CPU {cpu.get('model', '?')}, {usable_cpus()} usable cores; FMA peak "
        f"{fma_peaks_text(peaks)}; load average {load_start}; versions {versions}"
        + (f"; {why_no_torch}" if why_no_torch else ""))
    est = estimate_seconds(only, sizes, rounds, dtypes, dense_gflops)
    log("rough estimate of the run (assumed rates, see estimate_seconds): "
        + ", ".join(f"({k}) {fmt_time(v)}" for k, v in est.items())
        + f"; total {fmt_time(sum(est.values()))}")
    skipped = {}
    if "b" in only:
        try:
            import pandas  # noqa: F401
        except ImportError:
            skipped["b"] = "pandas not installed (pip install pandas): (b) not run"
            only = [s for s in only if s != "b"]
            log(skipped["b"])
    t_start = time.perf_counter()
    fits, grads, cross = [], [], []
    with tempfile.TemporaryDirectory(prefix="fastbp-sparse-") as tmp:
        if "a" in only:
            fits += section_a(sizes["a"], args.threads, rounds, tmp, args.seed)
        if "b" in only:
            fits += section_b(sizes["b"], args.threads, rounds, tmp, args.seed)
    with blas_limit(args.threads):
        if "c" in only:
            grads = section_c(sizes["a"], dtypes, args.threads, rounds, min_sample, dense_rows,
                              args.seed)
        if "d" in only:
            cross = section_d(sizes["d"], dtypes, args.threads, rounds, min_sample, args.seed)
    load_end = os.getloadavg() if hasattr(os, "getloadavg") else None
    tables = {}
    if fits:
        tables["fits"] = markdown_fits(fits)
        log("\n(a), (b): scikit-learn's MLPClassifier and fastbp.sklearn's, each fit in a fresh "
            "process, medians over the rounds; peak = the fit's max RSS less the RSS with the "
            "data loaded ((b): with the ColumnTransformer's output made); scores = accuracy on "
            "the held-out rows\n\n" + tables["fits"])
    if grads:
        tables["gradient"] = markdown_gradient(grads)
        log("\n(c) fastbp.gradient on (a)'s matrices, [d(0), 128, 20] relu/softmax, medians; "
            "GFLOP/s of fastbp (4 nnz d(1) + 6 x the weights above x N)\n\n"
            + tables["gradient"])
    if cross:
        tables["crossover"] = markdown_crossover(cross)
        log(f"\n(d) time of the tile path / the nonzeros path by density (< 1: tiles faster); "
            f"fastbp's crossover now {default_crossover:g}\n\n" + tables["crossover"])
    log(f"\ndone in {fmt_time(time.perf_counter() - t_start)}; load average at the start "
        f"{load_start}, at the end {load_end}")
    result = {"meta": {"quick": args.quick, "sections": only, "rounds": rounds,
                       "threads": args.threads, "dtypes": dtypes, "min_sample": min_sample,
                       "dense_rows": dense_rows, "seed": args.seed, "versions": versions,
                       "cpu": cpu.get("model", "?"), "default_crossover": default_crossover,
                       "fma_peak_gflops": peaks, "load_average": {"start": load_start,
                                                                  "end": load_end},
                       "estimate_s": est, "seconds": time.perf_counter() - t_start,
                       "torch": why_no_torch or "used", "skipped": skipped},
              "fits": fits, "gradient": grads, "crossover": cross, "tables": tables}
    if args.out:
        draw_chart(result, args.out)
    if args.json:
        write_record(args.json, result)
    return result


if __name__ == "__main__":
    main()
