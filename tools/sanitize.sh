#!/usr/bin/env bash
# fastbp under AddressSanitizer + UndefinedBehaviorSanitizer (the whole test suite) and under
# valgrind memcheck (small cases, both kernel sets a valgrind CPU runs).
#
#   tools/sanitize.sh                 # the work tree as it is (tracked + untracked, not ignored)
#   FASTBP_SAN_REF=HEAD tools/sanitize.sh    # a committed revision instead
#   FASTBP_SAN_DIR=/tmp/x tools/sanitize.sh  # where the venv, builds and logs go
#   FASTBP_SAN_SKIP=valgrind|asan     # run only one of the two
#
# Nothing here touches the repository or the Python that others use: the sources are copied to a
# scratch directory, built there (FASTBP_SANITIZE=1, setup.py adds -fsanitize=address,undefined)
# and installed (not editable) into a virtual environment of their own; pytest runs on a copy of
# tests/ outside the source tree, so that the installed, sanitized fastbp is the one imported.
#
# ASan must come first in the process, and python is not instrumented: libasan is preloaded.
# Leak detection is off (CPython and NumPy keep memory until exit by design). Huge allocations
# (the tests ask for terabytes on purpose) must return NULL, not abort. UBSan reports and goes on;
# ASan stops at its first report. Reports go to $dir/logs/{asan,ubsan}.<pid>, so that those of
# the tests' subprocesses are kept too; the script prints how many there are and fails if any.
#
# valgrind cannot run the ASan build: a second, plain build of the same sources goes to its own
# directory for it. valgrind's virtual CPU has no AVX-512, so the kernels it runs are the
# baseline and the AVX2+FMA ones (FASTBP_SIMD picks each in turn).
set -uo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="${FASTBP_SAN_DIR:-/tmp/fastbp-sanitize}"
skip="${FASTBP_SAN_SKIP:-}"
python="${PYTHON:-python3}"
rm -rf "$dir"
mkdir -p "$dir/src" "$dir/logs"
log() { printf '\n== %s\n' "$*"; }

# ---- sources ----------------------------------------------------------------------------------
if [ -n "${FASTBP_SAN_REF:-}" ]; then
    log "sources: git archive ${FASTBP_SAN_REF} of $repo"
    git -C "$repo" archive "$FASTBP_SAN_REF" | tar -x -C "$dir/src"
else
    log "sources: the work tree of $repo ($(git -C "$repo" rev-parse --short HEAD) + local changes)"
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard \
        | xargs -0 cp --parents -t "$dir/src" 2>/dev/null)
fi
rm -rf "$dir/src/build" "$dir/src/fastbp/"*.so "$dir/src/fastbp/_core.c"

# ---- environment ------------------------------------------------------------------------------
log "virtualenv $dir/venv"
"$python" -m venv "$dir/venv"
py="$dir/venv/bin/python"
# SciPy and scikit-learn for the kernels only their tests reach (sparse inputs, fastbp.sklearn's
# shared steps); not ONNX, skl2onnx, skops, Dask or PyTorch, whose test modules are left out below
# (tests/test_onnx.py and test_exchange.py import theirs unconditionally, and the docstring
# examples of the ONNX and skops functions need them; the others skip)
"$py" -m pip install -q "numpy>=2" "Cython>=3" "setuptools>=77" wheel pytest hypothesis tqdm \
    "scipy>=1.11" "scikit-learn>=1.7" pandas || { echo "pip install failed"; exit 2; }

status=0

# ---- ASan + UBSan -----------------------------------------------------------------------------
if [ "$skip" != "asan" ]; then
    log "build with FASTBP_SANITIZE=1"
    (cd "$dir/src" && FASTBP_SANITIZE=1 "$py" -m pip install -q --no-build-isolation --no-deps .) \
        > "$dir/logs/build-asan.txt" 2>&1 || { cat "$dir/logs/build-asan.txt"; exit 2; }
    cp -r "$dir/src/tests" "$dir/tests-asan"
    libasan="$(gcc -print-file-name=libasan.so)"
    export_env=(
        "LD_PRELOAD=$libasan"
        "ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1:log_path=$dir/logs/asan:symbolize=1"
        "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=0:log_path=$dir/logs/ubsan"
        "PYTHONMALLOC=malloc"
        # the memory tests measure RSS, which ASan's quarantine inflates; fewer calls suffice here
        "FASTBP_MEMORY_CALLS=2000"
    )
    log "pytest under ASan + UBSan (libasan: $libasan)"
    (cd "$dir/tests-asan" && env "${export_env[@]}" "$py" -c \
        "import fastbp, sys; print(fastbp.__file__); fastbp.show_config()") || status=1
    (cd "$dir/tests-asan" && env "${export_env[@]}" "$py" -m pytest -q -p no:cacheprovider \
        -k "not resident_memory and not (test_examples_run and (onnx or skops))" \
        --ignore=test_onnx.py --ignore=test_exchange.py -rfEsx 2>&1) \
        | tee "$dir/logs/pytest-asan.txt" | tail -n 40
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
    grep -q " passed" "$dir/logs/pytest-asan.txt" || status=1
    asan_reports=$(cat "$dir"/logs/asan.* 2>/dev/null | grep -c "^==[0-9]*==ERROR: AddressSanitizer")
    ubsan_reports=$(cat "$dir"/logs/ubsan.* 2>/dev/null | grep -c "runtime error:")
    log "AddressSanitizer reports: $asan_reports; UndefinedBehaviorSanitizer reports: $ubsan_reports"
    if [ "$asan_reports" -gt 0 ] || [ "$ubsan_reports" -gt 0 ]; then
        status=1
        cat "$dir"/logs/asan.* "$dir"/logs/ubsan.* 2>/dev/null | head -n 80
    fi
fi

# ---- valgrind memcheck ------------------------------------------------------------------------
if [ "$skip" != "valgrind" ]; then
    if ! command -v valgrind > /dev/null; then
        echo "valgrind not installed (apt-get install valgrind)"; exit 2
    fi
    log "plain build for valgrind"
    (cd "$dir/src" && rm -rf build && "$py" -m pip install -q --no-build-isolation --no-deps \
        --target "$dir/plain" .) > "$dir/logs/build-plain.txt" 2>&1 \
        || { cat "$dir/logs/build-plain.txt"; exit 2; }
    case_py="$dir/valgrind_case.py"
    cat > "$case_py" <<'EOF'
import io
import numpy as np
import fastbp
from fastbp import _api, reference

print(fastbp.__file__, _api.ISA)
rng = np.random.default_rng(0)
for dtype in ("float64", "float32"):
    for widths in ([3, 5, 2], [1, 1], [8, 32, 32, 1], [13, 37, 11, 5]):
        w = fastbp.init_weights(widths, seed=1, dtype=dtype)
        for n in (1, 7, 300):
            X = rng.standard_normal((n, widths[0])).astype(dtype)
            y = rng.uniform(-1, 1, (n, widths[-1])).astype(dtype)
            for threads in (1, 2):
                e, g = fastbp.gradient(w, X, y, num_threads=threads)
                e_ref, g_ref = reference.gradient(w, X, y)
                assert abs(e - e_ref) <= 1e-4 * e_ref, (e, e_ref)
            out = [np.zeros_like(a) for a in w]
            fastbp.gradient(w, X, y, out=out, accumulate=True)
            fastbp.gradient(w, np.asfortranarray(X), y, out=[np.asfortranarray(o) for o in out])
            fastbp.forward(w, X, "linear")
            fastbp.error(w, X, y, num_threads=2)
            fastbp.backprop(w, X[0], y[0])
# the multi-threaded path: a batch above the serial threshold, several chunks
w = fastbp.init_weights([8, 32, 32, 1], seed=0)
X = rng.standard_normal((3000, 8))
y = rng.uniform(-1, 1, 3000)
assert _api._plan([8, 32, 32, 1], 3000, 2, 8)[0] == 2
g1 = fastbp.gradient(w, X, y, num_threads=1)[1]
g2 = fastbp.gradient(w, X, y, num_threads=2)[1]
assert all(np.array_equal(a, b) for a, b in zip(g1, g2))
# training: every method, the sgd epoch kernel included; save/load
net = fastbp.Network([8, 6, 1], seed=0)
for method in ("gd", "sgd", "variable-lr", "steepest", "cg", "adam"):
    net.fit(X[:200], y[:200], method=method, epochs=3, learning_rate=0.05)
net.fit(X[:200], y[:200], method="sgd", epochs=2, momentum=0.5, weight_decay=0.1)
# mini-batch steps shared by two threads (the relay, float64 and float32), against one thread
for dtype in ("float64", "float32"):
    fits = []
    for threads in (1, 2):
        w = fastbp.init_weights([8, 32, 32, 3], seed=2, dtype=dtype)
        fastbp.fit(w, X[:1000].astype(dtype), np.tanh(X[:1000, :3]).astype(dtype),
                   method="adam", epochs=1, batch_size=203, num_threads=threads)
        fits.append(w)
    assert all(np.array_equal(a, b) for a, b in zip(*fits))
buf = io.BytesIO()
net.save(buf)
buf.seek(0)
assert all(np.array_equal(a, b) for a, b in zip(fastbp.load(buf).weights, net.weights))
print("valgrind case done")
EOF
    # CPython 3.11 itself is not valgrind-clean (uninitialised digits in _PyLong_New: ~20 reports
    # for `python -c pass`, hundreds once NumPy is imported), so the count that matters is that of
    # reports with a frame in fastbp's compiled code (_core.c, _simd*.h, the _core module).
    count_ours() {
        "$py" - "$1" <<'PYEOF'
import re, sys
text = open(sys.argv[1]).read()
blocks = re.split(r"\n==\d+== \n", text)
kinds = r"== (Invalid|Conditional|Use of uninit|Syscall|Mismatched|Source and dest|Argument|\d[\d,]* bytes in [\d,]+ blocks are definitely)"
errors = [b for b in blocks if re.search(kinds, b)]
ours = [b for b in errors if re.search(r"\((_core\.c|_core\.pyx|_simd\.h|_simd_kernels\.h):\d+\)|_core\.cpython", b)]
print(len(errors), len(ours))
for b in ours[:5]:
    print(b, file=sys.stderr)
PYEOF
    }
    for simd in baseline avx2; do
        log "valgrind memcheck, FASTBP_SIMD=$simd"
        vlog="$dir/logs/valgrind-$simd.txt"
        (cd "$dir" && PYTHONPATH="$dir/plain" PYTHONMALLOC=malloc FASTBP_SIMD=$simd \
            valgrind --tool=memcheck --num-callers=40 --track-origins=yes --leak-check=full \
            --show-leak-kinds=definite --log-file="$vlog" "$py" "$case_py") || status=1
        grep -h "ERROR SUMMARY" "$vlog"
        read -r all ours < <(count_ours "$vlog")
        echo "valgrind reports (errors and definite leaks): $all in all, $ours in fastbp's code"
        [ "$ours" = 0 ] || status=1
    done
fi

log "logs in $dir/logs; exit status $status"
exit $status
