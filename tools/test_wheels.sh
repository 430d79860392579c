#!/usr/bin/env bash
# Test the wheels that tools/build_wheels.sh wrote to dist/, each as a user would get it.
#
#   tools/test_wheels.sh                 # every dist/fastbp-*.whl
#   tools/test_wheels.sh dist/X.whl ...  # only these
#
# First the sdist: `pip install fastbp-X.tar.gz[test]` into a fresh venv (a build from source, with
# the compiler) and the suite. Then for each wheel, with the CPython its tag names (newest pyenv X.Y.Z):
#   - a fresh venv holding only the wheel and its runtime dependency (numpy) plus the "test" extra
#     (pytest, hypothesis, ...), installed from binary wheels only; setuptools is removed from the venv,
#     and the script checks that neither Cython nor setuptools can be imported;
#   - no compiler reachable: a directory of stubs named cc, gcc, clang, ... that fail comes first on
#     PATH, and CC=CXX=/bin/false;
#   - the tests (tests/ of the sdist in dist/, else of the checkout) run from a copy in a temporary
#     directory, outside the checkout, so they import the installed package; the script checks that
#     `fastbp` comes from the venv and that the libgomp it loads is the one bundled in the wheel;
#   - the whole suite runs three times: with the default kernels (the best this CPU runs), with
#     FASTBP_SIMD=avx2 (where the CPU has AVX2 + FMA) and with FASTBP_SIMD=baseline; each run first
#     checks which kernel set is active;
#   - `python -m fastbp` (the README's demo).
# Then the oldest NumPy that pyproject.toml claims (dependencies: numpy>=X.Y): a venv with
# numpy==X.Y.* and a wheel for a CPython that has NumPy X.Y wheels (tried newest first), the suite
# and the demo again.
#
# Environment: PYENV_ROOT (default /root/.pyenv), FASTBP_DIST (default dist/ of the checkout).
# Exit status 0 only if everything passed; a table of results per wheel comes last.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
dist="${FASTBP_DIST:-$root/dist}"
pyenv_root="${PYENV_ROOT:-/root/.pyenv}"
work="$(mktemp -d "${TMPDIR:-/tmp}/fastbp-wheeltest.XXXXXX")"
trap 'rm -rf "$work"' EXIT

if [[ $# -gt 0 ]]; then
    wheels=("$@")
else
    shopt -s nullglob
    wheels=("$dist"/fastbp-*.whl)
    shopt -u nullglob
fi

say() { printf '\n== %s\n' "$*"; }

find_python() {  # the newest pyenv CPython X.Y.Z for "X.Y"
    local v="$1" d
    for d in "$pyenv_root"/versions/"$v".*; do
        if [[ -x "$d/bin/python" && "$(basename "$d")" =~ ^${v//./\\.}\.[0-9]+$ ]]; then
            echo "$d/bin/python"
        fi
    done | sort -V | tail -1
}

# "3.11" from fastbp-0.1.0-cp311-cp311-manylinux_2_34_x86_64.whl
wheel_python_version() {
    local tag
    tag="$(basename "$1" | cut -d- -f3)"   # cp311
    tag="${tag#cp}"
    echo "${tag:0:1}.${tag:1}"
}

[[ ${#wheels[@]} -gt 0 ]] || { echo "error: no wheel in $dist: run tools/build_wheels.sh" >&2; exit 1; }
# in CPython order, the oldest first
mapfile -t wheels < <(for w in "${wheels[@]}"; do echo "$(wheel_python_version "$w") $w"; done \
                      | sort -V | cut -d' ' -f2-)

# The tests, from the sdist the wheels were built from (the same snapshot), else from the checkout.
tests_src="$work/tests-src"
mkdir -p "$tests_src"
shopt -s nullglob
sdists=("$dist"/fastbp-*.tar.gz)
shopt -u nullglob
if [[ ${#sdists[@]} -gt 0 ]]; then
    tar xzf "${sdists[0]}" -C "$tests_src" --strip-components=1 --wildcards '*/tests'
    echo "tests: from $(basename "${sdists[0]}")"
else
    cp -r "$root/tests" "$tests_src/"
    echo "tests: from the checkout"
fi
rm -rf "$tests_src/tests/.hypothesis" "$tests_src/tests/__pycache__"

results=()
failed=0
record() { results+=("$(printf '%-54s %-34s %s' "$1" "$2" "$3")"); [[ "$3" == pass* ]] || failed=1; }

# The sdist builds from source (here a compiler is still reachable): a fresh venv,
# `pip install fastbp-X.tar.gz[test]`, the suite from outside the checkout.
if [[ ${#sdists[@]} -gt 0 ]]; then
    name="$(basename "${sdists[0]}")"
    say "$name: pip install from source"
    python3 -m venv "$work/venv-sdist"
    if "$work/venv-sdist/bin/python" -m pip install -q "${sdists[0]}[test]" >"$work/sdist.pip.log" 2>&1; then
        mkdir -p "$work/run-sdist" && cp -r "$tests_src/tests" "$work/run-sdist/"
        if out="$(cd "$work/run-sdist" && "$work/venv-sdist/bin/python" -m pytest -q -p no:cacheprovider tests 2>&1)"; then
            record "$name" "pip install sdist, tests" "pass: $(tail -1 <<<"$out")"
        else
            echo "$out" | tail -40
            record "$name" "pip install sdist, tests" "FAIL: $(tail -1 <<<"$out")"
        fi
    else
        grep -v "^WARNING: Location" "$work/sdist.pip.log" | tail -40
        record "$name" "pip install sdist" "FAIL (the build from source failed)"
    fi
fi

# No compiler: stubs that fail, first on PATH.
nocc="$work/no-compiler"
mkdir -p "$nocc"
for c in cc gcc g++ c++ clang clang++ cpp ld x86_64-linux-gnu-gcc x86_64-linux-gnu-gcc-12 cythonize cython; do
    printf '#!/bin/sh\necho "tools/test_wheels.sh: no compiler here ($0)" >&2\nexit 127\n' >"$nocc/$c"
    chmod +x "$nocc/$c"
done
export PATH="$nocc:$PATH" CC=/bin/false CXX=/bin/false
if gcc --version >/dev/null 2>&1 || cc --version >/dev/null 2>&1; then
    echo "error: a compiler is still reachable" >&2; exit 1
fi

# Checks run inside a venv: fastbp from the venv, libgomp from the wheel, the expected kernel set.
cat >"$work/check_install.py" <<'EOF'
import importlib.util, os, sys
venv, expected_isa = sys.argv[1], sys.argv[2]
for mod in ("Cython", "setuptools"):
    assert importlib.util.find_spec(mod) is None, f"{mod} is importable in the test venv"
import numpy as np
import fastbp
from fastbp import _api, _core
here = os.path.realpath(fastbp.__file__)
assert here.startswith(os.path.realpath(venv)), f"fastbp imported from {here}, not from {venv}"
if expected_isa == "best":
    expected_isa = next(name for name, runs in _core.kernel_sets() if runs)
assert _api.ISA == expected_isa, f"kernels {_api.ISA!r}, expected {expected_isa!r}"
assert _core.openmp_enabled(), "the wheel was built without OpenMP"
# run threads, then check that the OpenMP runtime in this process is the one in fastbp.libs/
w = fastbp.init_weights([8, 16, 2], seed=0)
X = np.random.default_rng(0).standard_normal((4000, 8))
y = np.tanh(X[:, :2])
fastbp.gradient(w, X, y, num_threads=2)
with open("/proc/self/maps") as f:
    gomps = {line.split()[-1] for line in f if "libgomp" in line}
assert gomps and all("/fastbp.libs/libgomp-" in g for g in gomps), f"libgomp loaded: {gomps}"
print(f"ok: fastbp {fastbp.__version__} from {os.path.dirname(here)}; numpy {np.__version__}; "
      f"kernels {_api.ISA}; libgomp {os.path.basename(gomps.pop())}")
EOF


# make_venv PYTHON DIR WHEEL [PIP_ARGS...]: a fresh venv with the wheel[test], binaries only
make_venv() {
    local py="$1" venv="$2" whl="$3"
    shift 3
    "$py" -m venv "$venv"
    "$venv/bin/python" -m pip uninstall -q -y setuptools >/dev/null 2>&1 || true
    "$venv/bin/python" -m pip install -q --only-binary=:all: "${whl}[test]" "$@" \
        >"$venv.pip.log" 2>&1 || { grep -v "^WARNING: Location" "$venv.pip.log"; return 1; }
}

# run_suite VENV LABEL: check the install, run the tests from a copy outside the checkout, run the demo
run_suite() {
    local venv="$1" label="$2" whl="$3" isa run_dir out
    run_dir="$work/run-$label"
    mkdir -p "$run_dir"
    cp -r "$tests_src/tests" "$run_dir/"
    local -a sets=("best:")
    # the AVX2 set where the CPU has it and it is not already the default
    if (cd "$run_dir" && "$venv/bin/python" -c \
            "from fastbp import _core; raise SystemExit(not dict(_core.kernel_sets()).get('avx512'))" 2>/dev/null); then
        sets+=("avx2+fma:avx2")
    fi
    sets+=("baseline:baseline")
    for s in "${sets[@]}"; do
        isa="${s%%:*}"
        local simd="${s#*:}"
        echo "-- $label: FASTBP_SIMD=${simd:-(unset)}"
        if ! (cd "$run_dir" && FASTBP_SIMD="$simd" "$venv/bin/python" "$work/check_install.py" "$venv" "$isa"); then
            record "$whl" "${label} kernels=${simd:-default}" "FAIL (install check)"; continue
        fi
        if out="$(cd "$run_dir" && FASTBP_SIMD="$simd" "$venv/bin/python" -m pytest -q -p no:cacheprovider tests 2>&1)"; then
            record "$whl" "${label} kernels=${simd:-default}" "pass: $(tail -1 <<<"$out")"
        else
            echo "$out" | tail -40
            record "$whl" "${label} kernels=${simd:-default}" "FAIL: $(tail -1 <<<"$out")"
        fi
        echo "   $(tail -1 <<<"$out")"
    done
    if out="$(cd "$run_dir" && "$venv/bin/python" -m fastbp 2>&1)"; then
        record "$whl" "${label} python -m fastbp" "pass: $(tail -1 <<<"$out" | sed -E 's/.*: ([0-9]+x faster)/\1 than the reference/')"
    else
        echo "$out" | tail -20
        record "$whl" "${label} python -m fastbp" "FAIL"
    fi
    (cd "$run_dir" && "$venv/bin/python" -c "import fastbp; fastbp.show_config()") || true
}

for whl in "${wheels[@]}"; do
    name="$(basename "$whl")"
    v="$(wheel_python_version "$whl")"
    py="$(find_python "$v")"
    say "$name with CPython $v"
    if [[ -z "$py" ]]; then
        record "$name" "py$v" "FAIL (no CPython $v under $pyenv_root)"; continue
    fi
    venv="$work/venv-$v"
    if ! make_venv "$py" "$venv" "$whl"; then
        record "$name" "py$v install" "FAIL"; continue
    fi
    echo "installed: $("$venv/bin/python" -m pip list --format=freeze 2>/dev/null | tr '\n' ' ')"
    run_suite "$venv" "py$v" "$name"
done

# The oldest NumPy claimed: numpy>=X.Y in pyproject.toml -> numpy==X.Y.*
floor="$(sed -n 's/^dependencies = .*"numpy>=\([0-9][0-9.]*\)".*/\1/p' "$root/pyproject.toml")"
if [[ -z "$floor" ]]; then
    record "-" "oldest NumPy" "FAIL (no numpy>=X.Y in pyproject.toml dependencies)"
else
    say "the oldest NumPy claimed: numpy==$floor.*"
    done_floor=""
    # the wheels' CPythons, newest first (old NumPy releases have no wheels for new CPythons)
    while read -r v whl; do
        py="$(find_python "$v")"
        [[ -n "$py" ]] || continue
        venv="$work/venv-np$floor-$v"
        if make_venv "$py" "$venv" "$whl" "numpy==$floor.*" 2>/dev/null; then
            echo "CPython $v: $("$venv/bin/python" -m pip list --format=freeze 2>/dev/null | grep -i '^numpy')"
            run_suite "$venv" "py$v-numpy$floor" "$(basename "$whl")"
            done_floor=1
            break
        fi
        echo "CPython $v: no binary numpy==$floor.* for it"
        rm -rf "$venv"
    done < <(for w in "${wheels[@]}"; do echo "$(wheel_python_version "$w") $w"; done | sort -V -r)
    [[ -n "$done_floor" ]] || record "-" "numpy==$floor.*" "FAIL (no wheel's CPython has numpy $floor wheels)"
fi

say "results"
printf '%s\n' "${results[@]}"
if [[ $failed -ne 0 ]]; then
    echo "SOME WHEEL CHECKS FAILED"
    exit 1
fi
echo "all wheel checks passed"
