"""The update code (SGD and full-batch epochs, merges, losses) is compiled with no fused
multiply-add on any target, so that its rounding is that of fastbp._methods' NumPy expressions
there too.

On x86-64 the module's own code is compiled for the baseline instruction set, which has no FMA; on
aarch64 the baseline has one and GCC contracts a * b + c by default. fastbp/_no_fp_contract.h turns
contraction off for everything compiled after it. This test builds the module for aarch64 with
Debian's cross compiler (gcc-aarch64-linux-gnu; assembly only, nothing is run) and reads the
assembly: no fused multiply-add in the module's own functions, while the micro-kernels keep
theirs; and with the header's body left out, the same check finds them (so it can fail).

Needs Cython and aarch64-linux-gnu-gcc; .ci/run installs the compiler and sets
FASTBP_REQUIRE_CROSS=1, which turns a missing one into a failure instead of a skip.
"""
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CROSS = "aarch64-linux-gnu-gcc"
# fused multiply-add instructions of AArch64, scalar and vector
FMA = re.compile(r"^\s+(fmadd|fmsub|fnmadd|fnmsub|fmla|fmls)\s", re.MULTILINE)
# the module's functions whose arithmetic must be NumPy's, by the names Cython gives them
UPDATE_CODE = ("sgd_epoch_member", "step_rows", "step_block", "full_batch_run", "fb_gradient",
               "fb_error", "write_gradient", "merge_slots", "batch_scale", "sum_squares",
               "chunk_rounds_member")


def _missing():
    if shutil.which(CROSS) is None:
        return f"{CROSS} is not installed (apt-get install gcc-aarch64-linux-gnu)"
    try:
        import Cython  # noqa: F401
    except ImportError:
        return "Cython is not installed"
    if not os.path.exists(os.path.join(ROOT, "fastbp", "_core.pyx")):
        return "the package's sources are not beside the tests"
    return None


def _functions(asm: str) -> dict:
    """{function name: its assembly} of a GCC .s file."""
    out, name, lines = {}, None, []
    for line in asm.splitlines():
        m = re.match(r"^([A-Za-z_.$][\w.$]*):\s*$", line)
        if m and not m.group(1).startswith(".L"):
            if name is not None:
                out[name] = "\n".join(lines)
            name, lines = m.group(1), []
        elif name is not None:
            lines.append(line)
    if name is not None:
        out[name] = "\n".join(lines)
    return out


@pytest.fixture(scope="module")
def aarch64_assembly(tmp_path_factory):
    why = _missing()
    if why:
        if os.environ.get("FASTBP_REQUIRE_CROSS"):
            pytest.fail(f"FASTBP_REQUIRE_CROSS is set, but {why}")
        pytest.skip(why)
    tmp = tmp_path_factory.mktemp("aarch64")
    c_file = tmp / "_core.c"
    subprocess.run([sys.executable, "-m", "cython", "-3", "-I", os.path.join(ROOT, "fastbp"),
                    os.path.join(ROOT, "fastbp", "_core.pyx"), "-o", str(c_file)], check=True,
                   capture_output=True)
    base = [CROSS, "-S", "-O3", "-std=gnu11", "-fopenmp", "-fno-inline", "-w",
            "-I", os.path.join(ROOT, "fastbp"), "-I", np.get_include(),
            "-I", sysconfig.get_paths()["include"],
            "-DNPY_NO_DEPRECATED_API=NPY_1_9_API_VERSION", str(c_file)]

    def compile_(extra, out):
        res = subprocess.run(base + extra + ["-o", str(out)], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr[-3000:]
        return _functions(out.read_text())

    # as built, and with _no_fp_contract.h's body left out (its include guard defined already)
    with ThreadPoolExecutor(2) as pool:
        built = pool.submit(compile_, [], tmp / "built.s")
        contracted = pool.submit(compile_, ["-DFASTBP_NO_FP_CONTRACT_H"], tmp / "contracted.s")
        return built.result(), contracted.result()


def _update_functions(functions):
    found = {n: body for n, body in functions.items() if any(u in n for u in UPDATE_CODE)}
    assert {u for u in UPDATE_CODE if any(u in n for n in found)} == set(UPDATE_CODE), sorted(found)
    return found


def test_update_code_has_no_fused_multiply_add_on_aarch64(aarch64_assembly):
    built, _ = aarch64_assembly
    fused = {n: FMA.findall(body) for n, body in _update_functions(built).items()
             if FMA.search(body)}
    assert not fused, f"fused multiply-adds in the update code: {fused}"
    # the whole module's own code, not only the update code: nothing outside _simd.h (its
    # micro-kernels, *_base and *_neon here, and its helpers fastbp_*: the NaN screen's sums of
    # x * 0 fuse to the same NaN test)
    outside = [n for n, body in built.items()
               if FMA.search(body)
               and not (n.endswith(("_base", "_neon")) or n.startswith("fastbp_"))]
    assert not outside, f"fused multiply-adds outside the micro-kernels: {outside}"


def test_the_check_finds_contraction_without_the_header(aarch64_assembly):
    _, contracted = aarch64_assembly
    fused = [n for n, body in _update_functions(contracted).items() if FMA.search(body)]
    assert any("step_block" in n for n in fused), fused


def test_micro_kernels_keep_their_fused_multiply_adds(aarch64_assembly):
    built, _ = aarch64_assembly
    for kernel in ("linear_d_base", "linear_f_base", "outer_d_base", "outer_f_base",
                   "linear_d_neon", "linear_f_neon", "outer_d_neon", "outer_f_neon"):
        body = built.get(kernel)
        assert body is not None, sorted(n for n in built if "base" in n)[:20]
        assert FMA.search(body), f"{kernel} has no fused multiply-add on aarch64"


@pytest.mark.skipif(sys.platform != "linux" or not sysconfig.get_platform().endswith("x86_64"),
                    reason="the x86-64 Adam kernels are read from the built module with objdump")
def test_the_vector_update_kernels_fuse_nothing_on_x86():
    """The vector variants of _simd_update.h (compiled with AVX2 and AVX-512 target attributes
    after _no_fp_contract.h): Adam's update, its square roots and divisions in vectors, and the
    sparse inputs' y += a x, with no fused multiply-add, so each rounds as the scalar loop (and
    scikit-learn's NumPy expressions)."""
    if shutil.which("objdump") is None:
        pytest.skip("objdump is not installed")
    from fastbp import _core
    asm = subprocess.run(["objdump", "-d", "--no-show-raw-insn", _core.__file__],
                         capture_output=True, text=True, check=True).stdout
    bodies = {}
    for block in asm.split("\n\n"):
        m = re.match(r"^[0-9a-f]+ <(fastbp_(?:adam|axpy)_[df]_(?:avx2|avx512|sse2))>:", block)
        if m:
            bodies[m.group(1)] = block
    assert {f"fastbp_{k}_{t}_{s}" for k in ("adam", "axpy") for t in "df"
            for s in ("avx2", "avx512")} <= set(bodies), sorted(bodies)
    for name, body in bodies.items():
        assert not re.search(r"\svfn?m(add|sub)", body), f"{name} fuses a multiply-add"
        assert re.search(r"\svmulp[sd]\s", body), name
        if "adam" in name and not name.endswith("sse2"):
            assert re.search(r"\svsqrtp[sd]\s", body), name
