"""What the benchmark scripts share: data, timing, agreement checks, and a record of the machine."""
from __future__ import annotations

import gc
import math
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np

OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def warn_openblas_env() -> list[str]:
    """Warn when OpenBLAS is told to use another core type or cache size: that slows NumPy."""
    found = [f"{v}={os.environ[v]}" for v in OPENBLAS_VARS if v in os.environ]
    if found:
        warnings.warn(
            f"{' and '.join(found)} set: OpenBLAS may then run a slower kernel than this CPU "
            "allows, which slows the NumPy and scikit-learn peers and the measured matmul peak. "
            "For benchmarking run: "
            "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/compare.py",
            stacklevel=2)
    return found


def work_flops(widths) -> int:
    """Flops of one sample's forward + backward pass: 6 * sum_l (d(l-1)+1) d(l)."""
    return 6 * sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:]))


def done_flops(widths) -> int:
    """Flops backpropagation actually does for one sample: a forward and a gradient product of
    2 (d(l-1)+1) d(l) each per layer, and the backward products 2 d(l-1) d(l) of the layers after
    the first (the bias row has no sensitivity, and delta(0) is never computed)."""
    pairs = list(zip(widths[:-1], widths[1:]))
    return (4 * sum((a + 1) * b for a, b in pairs)
            + 2 * sum(a * b for a, b in pairs[1:]))


def make_problem(widths, n, dtype, seed=0, smooth=False):
    """(weights, X, y): fastbp's initial weights (seed + 1), standard normal inputs, and targets
    uniform in (-0.8, 0.8); or, with smooth=True, y = 0.8 sin(x_1 + 0.5 x_2 x_3) in every output
    (a target the training methods can learn; d(0) >= 3)."""
    import fastbp
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, widths[0])).astype(dtype)
    if smooth:
        target = 0.8 * np.sin(X[:, :1] + 0.5 * X[:, 1:2] * X[:, 2:3])
        y = np.broadcast_to(target, (n, widths[-1])).astype(dtype)
    else:
        y = rng.uniform(-0.8, 0.8, size=(n, widths[-1])).astype(dtype)
    weights = fastbp.init_weights(widths, seed=seed + 1, dtype=dtype)
    return weights, X, y


def torch_model(weights, output="tanh", activation="tanh", threads=None):
    """fastbp's network as PyTorch builds one: a torch.nn.Sequential holding copies of `weights`.

    Per layer an nn.Linear (weight W(l)[1:]^T, bias W(l)[0], in the weights' dtype), followed by
    nn.Tanh (activation="tanh") or nn.ReLU ("relu") on the hidden layers; after the output layer
    nn.Tanh for output="tanh", nothing for "linear" (also the logits of a softmax network, whose
    softmax belongs in the loss, as in torch.nn.functional.cross_entropy). Its outputs are
    fastbp.forward(weights, X, output, activation)'s up to rounding: the activation of the output
    must match the fastbp model it is compared with. `threads`, when given, goes to
    torch.set_num_threads."""
    import torch
    if output not in ("tanh", "linear"):
        raise ValueError(f"output must be 'tanh' or 'linear', got {output!r}")
    hidden = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}.get(activation)
    if hidden is None:
        raise ValueError(f"activation must be 'tanh' or 'relu', got {activation!r}")
    if threads is not None:
        torch.set_num_threads(threads)
    dtype = torch.float64 if np.dtype(weights[0].dtype) == np.float64 else torch.float32
    layers = []
    for l, w in enumerate(weights):
        layers.append(torch.nn.Linear(w.shape[0] - 1, w.shape[1], dtype=dtype))
        if l < len(weights) - 1:
            layers.append(hidden())
        elif output == "tanh":
            layers.append(torch.nn.Tanh())
    model = torch.nn.Sequential(*layers)
    torch_set_weights(model, weights)
    return model


def torch_set_weights(model, weights) -> None:
    """Copy fastbp's weights into the nn.Linear layers of a model torch_model built, in place."""
    import torch
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for lin, w in zip(linears, weights):
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w[1:].T)))
            lin.bias.copy_(torch.from_numpy(np.ascontiguousarray(w[0])))


def rel_errors(got, want):
    """(relative error of E_in, largest over layers of max|g - g_ref| / max|g_ref|)."""
    (E, grads), (E0, grads0) = got, want
    err_E = abs(float(E) - float(E0)) / max(abs(float(E0)), np.finfo(np.float64).tiny)
    err_g = 0.0
    for g, g0 in zip(grads, grads0):
        g = np.asarray(g, dtype=np.float64)
        g0 = np.asarray(g0, dtype=np.float64)
        if g.shape != g0.shape:
            return err_E, math.inf
        scale = max(float(np.max(np.abs(g0))), np.finfo(np.float64).tiny)
        err_g = max(err_g, float(np.max(np.abs(g - g0))) / scale)
    if not (math.isfinite(err_E) and math.isfinite(err_g)):
        return math.inf, math.inf
    return err_E, err_g


def measure(fn, min_repeats=3, max_repeats=15, budget=3.0, min_sample=0.02):
    """Time fn() (already warmed up by the caller).

    Returns (median s, min s, repeats, calls per repeat).

    One more call first calibrates: a repeat runs fn enough times to last at least min_sample
    seconds (so that microsecond calls are timed in loops), and there are as many repeats as fit
    in budget seconds, within [min_repeats, max_repeats]. The garbage collector is off meanwhile.
    """
    gc.collect()
    t0 = time.perf_counter()
    fn()
    first = max(time.perf_counter() - t0, 1e-9)
    inner = max(1, math.ceil(min_sample / first))
    repeats = int(min(max_repeats, max(min_repeats, budget // (first * inner))))
    times = []
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            times.append((time.perf_counter() - t0) / inner)
    finally:
        if enabled:
            gc.enable()
    return statistics.median(times), min(times), repeats, inner


def _best_matmul_gflops(matmul, a, b, c, n, repeats):
    """GFLOP/s of the fastest of `repeats` calls matmul(a, b, out=c), after one warm-up."""
    matmul(a, b, out=c)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        matmul(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


def matmul_peak(dtype, n, repeats):
    """GFLOP/s of NumPy's n x n matrix product, the best of `repeats` (after one warm-up)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    return _best_matmul_gflops(np.matmul, a, b, np.empty((n, n), dtype=dtype), n, repeats)


def torch_matmul_peak(dtype, n, repeats):
    """GFLOP/s of torch.matmul (MKL or OpenBLAS inside PyTorch), threads as
    torch.set_num_threads."""
    import torch
    g = torch.Generator().manual_seed(0)
    tdt = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
    a = torch.randn(n, n, generator=g, dtype=tdt)
    b = torch.randn(n, n, generator=g, dtype=tdt)
    return _best_matmul_gflops(torch.matmul, a, b, torch.empty(n, n, dtype=tdt), n, repeats)


HERE = os.path.dirname(os.path.abspath(__file__))


def build_shared(source, cflags, libs=(), out_dir=None) -> str:
    """Path of the C file `source` compiled into a shared library, once per source text and flags,
    in `out_dir` (default bench/results/). ImportError without a C compiler, RuntimeError (with
    the compiler's message) when the build fails."""
    import hashlib
    import shutil
    import subprocess
    import tempfile
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise ImportError(f"no C compiler (cc) to build {os.path.basename(source)}")
    with open(source, "rb") as f:
        key = hashlib.sha256(f.read() + " ".join([*cflags, *libs]).encode())
    out_dir = out_dir or os.path.join(HERE, "results")
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.splitext(os.path.basename(source))[0]
    path = os.path.join(out_dir, f"{stem}-{key.hexdigest()[:12]}.so")
    if not os.path.exists(path):
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=out_dir)
        os.close(fd)
        cmd = [cc, *cflags, source, "-o", tmp, *libs]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            os.unlink(tmp)
            raise RuntimeError(f"building {stem} failed: {' '.join(cmd)}\n" + done.stderr[-2000:])
        os.replace(tmp, path)      # atomic: a concurrent run sees the old file or the new one
    return path


# fastbp's kernel sets by the names fastbp._api.ISA() gives, as bench/fma_peak.c numbers them
FMA_PEAK_ISA = {"baseline": 0, "avx2+fma": 1, "avx512": 2}
FMA_PEAK_SOURCE = os.path.join(HERE, "fma_peak.c")
FMA_PEAK_CFLAGS = ["-O2", "-ffp-contract=fast", "-fopenmp", "-fPIC", "-shared"]


def fma_peak(dtype, threads, isa, seconds=0.5):
    """GFLOP/s of `threads` threads doing nothing but multiply-adds on whole vectors of `isa`
    (bench/fma_peak.c): the most the cores can do at the clock they hold. None when `isa` is
    not an x86-64 kernel set, the CPU lacks it, or the probe cannot be built (a warning says
    why): a benchmark run goes on without the peak rather than stop."""
    import ctypes
    if isa not in FMA_PEAK_ISA:
        return None
    try:
        path = build_shared(FMA_PEAK_SOURCE, FMA_PEAK_CFLAGS)
    except ImportError:
        return None
    except RuntimeError as exc:
        warnings.warn(f"no FMA peak: {exc}", stacklevel=2)
        return None
    lib = ctypes.CDLL(path)
    probe = lib.fastbp_bench_fma_peak
    probe.restype = ctypes.c_double
    probe.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_double]
    gflops = probe(FMA_PEAK_ISA[isa], np.dtype(dtype).itemsize, int(threads), float(seconds))
    return gflops if gflops > 0 else None


def fma_peaks(dtypes, thread_counts, seconds=0.5, isa=None) -> dict | None:
    """{dtype: {threads: GFLOP/s}} of bench/fma_peak.c (fma_peak) on fastbp's kernel set (`isa`,
    default fastbp._api.ISA) for each dtype and thread count, or None when any of them cannot be
    measured (no C compiler, not x86-64): the denominators of a benchmark's %FMA."""
    if isa is None:
        isa = fastbp_private("ISA")
    out = {str(np.dtype(dt)): {int(t): fma_peak(dt, t, isa, seconds) for t in thread_counts}
           for dt in dtypes}
    return out if all(g for v in out.values() for g in v.values()) else None


def best_fma_peaks(*measured) -> dict | None:
    """The better of several fma_peaks measurements (e.g. at the start and the end of a run),
    dtype by dtype and thread count by thread count: a burst of load from elsewhere during one
    measurement then does not inflate every %FMA. None when any measurement is None."""
    if not measured or any(m is None for m in measured):
        return None
    return {dt: {t: max(m[dt][t] for m in measured) for t in measured[0][dt]}
            for dt in measured[0]}


def fma_peaks_text(peaks) -> str:
    """'float64: 1 thread 58.7, 2 threads 117.5 GFLOP/s' (or 'not measured')."""
    if not peaks:
        return "not measured"
    return "; ".join(
        f"{dt}: " + ", ".join(f"{t} thread{'s' if t != 1 else ''} {g:.1f}"
                              for t, g in sorted(v.items())) + " GFLOP/s"
        for dt, v in peaks.items())


def n_params(widths) -> int:
    """Weights and biases of a network of layer widths d(0..L): sum_l (d(l-1)+1) d(l)."""
    return sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:]))


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask), else os.cpu_count()."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_info() -> dict:
    info = {"machine": platform.machine(), "model": platform.processor() or "?", "flags": [],
            "logical_cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        for line in text.splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and info["model"] in ("?", "", platform.machine()):
                info["model"] = value.strip()
            elif key in ("cpu family", "model", "stepping") and key not in info.get("id", {}):
                # a virtual machine's model name can be generic ("Intel(R) Xeon(R) Processor"):
                # family, model and stepping still tell the microarchitecture
                info.setdefault("id", {})[key] = value.strip()
            elif key == "flags" and not info["flags"]:
                flags = set(value.split())
                info["flags"] = [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f")
                                 if f in flags]
    except OSError:
        pass
    if hasattr(os, "sched_getaffinity"):
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    info["caches"] = cache_sizes()
    cid = info.pop("id", {})
    if cid:
        info["family_model_stepping"] = " ".join(
            f"{k.replace('cpu ', '')} {cid[k]}" for k in ("cpu family", "model", "stepping")
            if k in cid)
    return info


_CACHE_SYSCONF = {"L1d": "SC_LEVEL1_DCACHE_SIZE", "L1i": "SC_LEVEL1_ICACHE_SIZE",
                  "L2": "SC_LEVEL2_CACHE_SIZE", "L3": "SC_LEVEL3_CACHE_SIZE"}


def _size_bytes(text):
    """'48K' -> 49152, '2048K' -> 2097152, '300M' -> 314572800 (sysfs's spelling)."""
    text = text.strip()
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:].upper(), 1)
    return int(text.rstrip("KMGkmg")) * mult


def cache_sizes() -> dict:
    """{"L1d": bytes, "L1i": ..., "L2": ..., "L3": ...} of CPU 0's caches, and which CPUs share
    each ("L3_shared_cpus": "0-1"), from /sys/devices/system/cpu/cpu0/cache (Linux), else glibc's
    sysconf; a level that neither reports is left out."""
    out = {}
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for entry in sorted(os.listdir(base)):
            if not entry.startswith("index"):
                continue
            d = os.path.join(base, entry)

            def read(name, d=d):
                with open(os.path.join(d, name)) as f:
                    return f.read().strip()
            level, kind = read("level"), read("type")
            name = f"L{level}" + {"Data": "d", "Instruction": "i"}.get(kind, "")
            out[name] = _size_bytes(read("size"))
            try:
                out[name + "_shared_cpus"] = read("shared_cpu_list")
            except OSError:
                pass
    except (OSError, ValueError):
        pass
    for name, key in _CACHE_SYSCONF.items():
        if name not in out and key in getattr(os, "sysconf_names", {}):
            try:
                size = os.sysconf(key)
            except (OSError, ValueError):
                continue
            if size and size > 0:
                out[name] = size
    return out


def cache_text(caches) -> str:
    """'L1d 48 KiB, L2 2 MiB, L3 300 MiB (per core unless shared: L3 by CPUs 0-1)'."""
    def fmt(b):
        return f"{b >> 20} MiB" if b >= 1 << 20 and b % (1 << 20) == 0 else f"{b >> 10} KiB"
    parts = [f"{k} {fmt(caches[k])}" for k in ("L1d", "L2", "L3") if k in caches]
    shared = [f"{k} by CPUs {caches[k + '_shared_cpus']}" for k in ("L1d", "L2", "L3")
              if any(c in caches.get(k + "_shared_cpus", "") for c in "-,")]
    if not parts:
        return "cache sizes unknown"
    return ", ".join(parts) + (f" (shared: {'; '.join(shared)})" if shared else "")


def threadpools() -> list[dict]:
    """threadpoolctl's view of the thread pools loaded in this process (BLAS and OpenMP)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"error": "threadpoolctl not installed"}]
    keep = ("user_api", "internal_api", "prefix", "version", "num_threads", "threading_layer",
            "architecture", "filepath")
    return [{k: p.get(k) for k in keep if k in p} for p in threadpool_info()]


def blas_limit(threads):
    """A context that limits every BLAS to `threads` threads (a no-op without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib
        warnings.warn("threadpoolctl is not installed: BLAS thread counts are not limited",
                      stacklevel=2)
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads, user_api="blas")


def fastbp_config() -> dict:
    import io

    import fastbp
    buf = io.StringIO()
    try:
        fastbp.show_config(file=buf)
    except Exception as exc:  # show_config is someone else's code: record, do not fail
        buf.write(f"show_config failed: {exc!r}")
    return {"version": fastbp.__version__, "show_config": buf.getvalue().rstrip(),
            "path": os.path.dirname(fastbp.__file__)}


def fastbp_private(name, default=None):
    """fastbp._api.<name> if it exists: the kernel ISA and default thread count are not public
    API."""
    try:
        import fastbp._api as api
        value = getattr(api, name)
        return value() if callable(value) else value
    except Exception:
        return default


def write_record(path, record) -> None:
    """Write a benchmark's record as JSON to `path` (its folder made if need be), with the
    machine's description added: CPU, Python, fastbp's configuration, the thread pools."""
    import json
    record = {**record, "cpu": cpu_info(), "python": python_info(),
              "fastbp_config": fastbp_config(), "threadpools": threadpools()}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(record, f, indent=2)
    print(f"wrote {path}")


def python_info() -> dict:
    return {"python": sys.version.split()[0], "implementation": platform.python_implementation(),
            "platform": platform.platform()}


def fmt_time(t) -> str:
    if t is None or not math.isfinite(t):
        return "-"
    if t >= 1:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.1f} ms"
    return f"{t * 1e6:.1f} µs"


def fmt_rate(x) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= div:
            return f"{x / div:.2f}{unit}"
    return f"{x:.0f}"
