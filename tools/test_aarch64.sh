#!/usr/bin/env bash
# fastbp on aarch64, under user-mode QEMU: builds the compiled module for aarch64 and runs the test
# suite's correctness core on it with an arm64 CPython and NumPy from Debian's packages.
#
#   tools/test_aarch64.sh            the core (see CORE below): about 11 min here, 2470 tests
#   tools/test_aarch64.sh --quick    a smaller subset of it (see QUICK below): about 5 min, 1256
#   (the first run makes the arm64 root: about a minute more)
#   tools/test_aarch64.sh [--quick] -- ARGS...   extra pytest arguments (e.g. -x, -k gradient)
#
# The approach: an extension cross-built against arm64 headers and run by an arm64 interpreter.
#  1. An arm64 root, made once and cached in $FASTBP_AARCH64_CACHE (default
#     ${XDG_CACHE_HOME:-$HOME/.cache}/fastbp-aarch64): `debootstrap --arch=arm64 --foreign` of
#     Debian bookworm (minbase) with Python 3.11, NumPy 1.24, pytest and hypothesis included. The
#     second stage cannot run without binfmt (not registered here), so every downloaded package is
#     unpacked with `dpkg-deb -x` instead, and the alternatives dpkg would set up (libblas.so.3,
#     liblapack.so.3) are linked by hand. Nothing is configured or installed on the host but the
#     tools (apt-get: qemu-user-static, gcc-aarch64-linux-gnu, debootstrap) when they are missing.
#  2. fastbp/_core.pyx cythonized on the host (Cython of $PYTHON, default python3; if it has none,
#     a venv with Cython in the cache), with setup.py's compiler directives; the C cross-compiled
#     with Debian's aarch64-linux-gnu-gcc (-O3 -std=gnu11 -fopenmp, as setup.py) against the root's
#     Python headers (libpython3.11-dev:arm64) and NumPy headers.
#  3. The package (fastbp/*.py with the aarch64 .so) and tests/ copied to a temporary folder, and
#     pytest run there by the root's python3.11 under `qemu-aarch64-static -L ROOT` (binfmt is not
#     needed). Tests that start `sys.executable` (the kernel-set subprocesses) get a host shell
#     script that starts the emulated interpreter again (set by a sitecustomize.py on PYTHONPATH).
#
# It prints `platform: aarch64` (from the emulated interpreter), the kernel sets of the aarch64
# build, pytest's count of collected tests and its summary line; it exits non-zero on any failure.
# QEMU emulates its "max" CPU (all of ARMv8/v9's features, SVE included); QEMU_CPU chooses another
# (e.g. QEMU_CPU=cortex-a72, an ARMv8.0 core without SVE). Needs root for debootstrap on the first
# run, and network access to the Debian mirror (FASTBP_AARCH64_MIRROR) and, without Cython, PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

quick=0
pytest_args=()
while (($#)); do
    case "$1" in
        --quick) quick=1 ;;
        --) shift; pytest_args=("$@"); break ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "test_aarch64.sh: unknown argument $1 (--quick, or -- followed by pytest's)" >&2
           exit 2 ;;
    esac
    shift
done

# The correctness core: every activation and output against fastbp.reference (gradient, error,
# forward, backprop; float64 and float32), 1 and 2 threads bitwise, every training method on a small
# problem, bad input, and every kernel set against FASTBP_SIMD=baseline. Left out: the optional
# integrations (scikit-learn, ONNX, PyTorch, Dask: not in the root; test_exchange.py and
# test_onnx.py do not even collect without onnxruntime/onnx), the docstrings' examples, speed,
# memory, and tests/test_reliability_threads.py (pools of 8 and 16 Python threads, each with an
# OpenMP team, spinning at barriers on two emulated cores: one test ran over five minutes without
# finishing; its timing ratios mean nothing under emulation).
CORE=(
    tests/test_gradient.py            # gradient/error/forward/backprop vs reference, threads, sets
    tests/test_activations.py         # every activation x output vs reference, both dtypes, sets
    tests/test_kernel_sets_agree.py   # every kernel set present vs FASTBP_SIMD=baseline
    tests/test_poisson.py             # the poisson output vs reference
    tests/test_properties.py          # hypothesis: random shapes vs reference, thread counts
    tests/test_sgd_threads.py         # SGD epochs: 1 and 2 threads bitwise, vs NumPy steps
    tests/test_shared_steps.py        # shared steps (two threads on one batch) bitwise
    tests/test_full_batch_epochs.py   # the compiled full-batch epochs vs their NumPy twins
    tests/test_methods.py             # every training method on a small problem
    tests/test_training.py            # fit, its options, early stopping, histories
    tests/test_bad_input.py           # bad input: clear errors, arrays untouched
    tests/test_reliability_input.py   # more bad input
    tests/test_reliability_numerics.py
)
# --quick: the reference comparisons, bitwise threads, the methods, bad input, the kernel sets
QUICK=(
    tests/test_gradient.py
    tests/test_activations.py
    tests/test_kernel_sets_agree.py
    tests/test_methods.py
    tests/test_bad_input.py
)
if ((quick)); then selection=("${QUICK[@]}"); else selection=("${CORE[@]}"); fi

suite=bookworm
pyv=3.11
mirror="${FASTBP_AARCH64_MIRROR:-http://deb.debian.org/debian}"
cache="${FASTBP_AARCH64_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fastbp-aarch64}"
packages="python$pyv,libpython$pyv,libpython$pyv-dev,python3-numpy,python3-pytest"
packages+=",python3-hypothesis,libgomp1"
root="$cache/root-$suite-arm64"
stamp="$root/.fastbp-root-complete"
start=$SECONDS
say() { echo "test_aarch64: $* ($((SECONDS - start)) s)"; }

# --- host tools ------------------------------------------------------------------------------------
need=()
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
command -v debootstrap >/dev/null || [[ -x /usr/sbin/debootstrap ]] || need+=(debootstrap)
if ((${#need[@]})); then
    say "installing ${need[*]} with apt-get"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin:/sbin"

# Cython on the host, for the C of _core.pyx (which is the same for every target)
host_python="${PYTHON:-python3}"
if ! "$host_python" -c "import Cython" 2>/dev/null; then
    host_python="$cache/cython-venv/bin/python"
    if ! "$host_python" -c "import Cython" 2>/dev/null; then
        say "no Cython in ${PYTHON:-python3}: a venv with Cython in $cache/cython-venv"
        python3 -m venv "$cache/cython-venv"
        "$host_python" -m pip install -q "Cython>=3.0"
    fi
fi

# --- the arm64 root (cached) -----------------------------------------------------------------------
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$packages" ]]; then
    say "making the arm64 root in $root (debootstrap --foreign, dpkg-deb -x)"
    rm -rf "$root" "$root.tmp"
    mkdir -p "$cache"
    debootstrap --arch=arm64 --foreign --variant=minbase --include="$packages" \
        "$suite" "$root.tmp" "$mirror" >"$cache/debootstrap.log" 2>&1 \
        || { tail -20 "$cache/debootstrap.log" >&2; echo "test_aarch64: debootstrap failed" >&2
             exit 1; }
    # debootstrap --foreign unpacked the essential packages only; unpack them all (the second stage,
    # which would configure them, needs an arm64 CPU or binfmt)
    for deb in "$root.tmp"/var/cache/apt/archives/*.deb; do
        dpkg-deb -x "$deb" "$root.tmp"
    done
    rm -f "$root.tmp"/var/cache/apt/archives/*.deb
    # what update-alternatives would have linked (libblas3, liblapack3: NumPy links to them)
    lib="$root.tmp/usr/lib/aarch64-linux-gnu"
    for alt in blas lapack; do
        for so in "$lib/$alt"/lib*.so.3; do
            ln -sf "$alt/$(basename "$so")" "$lib/$(basename "$so")"
        done
    done
    qemu-aarch64-static -L "$root.tmp" "$root.tmp/usr/bin/python$pyv" -c "import numpy, pytest" \
        || { echo "test_aarch64: the arm64 root's python cannot import numpy and pytest" >&2
             exit 1; }
    mv "$root.tmp" "$root"
    echo "$packages" >"$stamp"
else
    say "the arm64 root from the cache: $root"
fi
pyexe="$root/usr/bin/python$pyv"

# --- the aarch64 build ------------------------------------------------------------------------------
tmp="$(mktemp -d "${TMPDIR:-/tmp}/fastbp-aarch64.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/site" "$tmp/pkg/fastbp"
# the host's way back into the emulated interpreter, for tests that start sys.executable
cat >"$tmp/bin/python3" <<EOF
#!/bin/sh
exec qemu-aarch64-static -L "$root" "$pyexe" "\$@"
EOF
chmod +x "$tmp/bin/python3"
cat >"$tmp/site/sitecustomize.py" <<'EOF'
"""tools/test_aarch64.sh: sys.executable is the host script that runs this interpreter under QEMU
(the arm64 binary itself cannot be started by the host: binfmt is not registered)."""
import os
import sys

if os.environ.get("FASTBP_AARCH64_PYTHON"):
    sys.executable = os.environ["FASTBP_AARCH64_PYTHON"]
EOF
export FASTBP_AARCH64_PYTHON="$tmp/bin/python3"
# the tests' subprocesses run from tests/ and import fastbp as installed: from $tmp/pkg here
export PYTHONPATH="$tmp/site:$tmp/pkg"
emu=("$tmp/bin/python3")

read -r ext_suffix np_include < <("${emu[@]}" -c "
import sysconfig, numpy
print(sysconfig.get_config_var('EXT_SUFFIX'), numpy.get_include())")
case "$np_include" in "$root"/*) ;; *) np_include="$root$np_include" ;; esac

say "cythonizing fastbp/_core.pyx ($("$host_python" -m cython --version 2>&1 | tail -1))"
"$host_python" -m cython -3 -X boundscheck=False -X wraparound=False -X cdivision=True \
    -X initializedcheck=False -X embedsignature=True -I fastbp fastbp/_core.pyx -o "$tmp/_core.c"
say "compiling for aarch64 ($(aarch64-linux-gnu-gcc -dumpfullversion))"
# setup.py's flags; the root's Python headers (its pyconfig.h includes
# <aarch64-linux-gnu/python3.11/pyconfig.h>, found through -idirafter ROOT/usr/include, after the
# cross compiler's own C library headers)
aarch64-linux-gnu-gcc -O3 -std=gnu11 -fopenmp -shared -fPIC -w \
    -DNPY_NO_DEPRECATED_API=NPY_1_9_API_VERSION -I fastbp -I "$root/usr/include/python$pyv" \
    -idirafter "$root/usr/include" -I "$np_include" "$tmp/_core.c" \
    -o "$tmp/pkg/fastbp/_core$ext_suffix"
cp fastbp/*.py fastbp/py.typed fastbp/_core.pyi "$tmp/pkg/fastbp/"
cp -r tests "$tmp/pkg/tests"
cp pyproject.toml "$tmp/pkg/"
rm -rf "$tmp/pkg/tests/__pycache__"

# --- the tests, under emulation ---------------------------------------------------------------------
cd "$tmp/pkg"
"${emu[@]}" -c 'import platform; print("platform:", platform.machine())'
"${emu[@]}" -c "
import fastbp
from fastbp import _core
print('fastbp', fastbp.__version__, 'from', fastbp.__file__)
print('kernel sets (name, runs here):', _core.kernel_sets())"
say "running ${#selection[@]} test files under QEMU$( ((quick)) && echo ' (--quick)')"
status=0
"${emu[@]}" -m pytest -p no:cacheprovider -rfEs --durations=15 "${selection[@]}" \
    ${pytest_args[@]+"${pytest_args[@]}"} || status=$?
say "done, pytest's exit status $status"
exit "$status"
