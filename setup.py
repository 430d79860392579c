"""Build of fastbp's compiled kernels (fastbp/_core.pyx with the micro-kernels of fastbp/_simd.h).

OpenMP is used where the compiler has it (probed with a test program) and left out, with a warning,
where it has not: fastbp then runs serially. Nothing here tunes for the build machine's CPU: wheels
must run on any x86-64 CPU; the AVX2 + FMA and the AVX-512 kernels are compiled with per-function
target attributes and chosen at import time from what the CPU reports.

Environment switches:
  FASTBP_BOUNDSCHECK=1  Cython bounds checking on (for tests of the kernel plumbing)
  FASTBP_SANITIZE=1     build with AddressSanitizer and UndefinedBehaviorSanitizer
  FASTBP_NO_OPENMP=1    build without OpenMP even where the compiler has it
  FASTBP_SCALAR_KERNELS=1  the plain-C micro-kernels (what MSVC builds) on any compiler, to test
                           them
"""
import os
import subprocess
import sys
import sysconfig
import tempfile
import warnings

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup


def _flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def openmp_flags():
    """(compile args, link args) for OpenMP, or ([], []) with a warning when it does not build."""
    if _flag("FASTBP_NO_OPENMP"):
        return [], []
    if sys.platform == "win32":
        return ["/openmp"], []
    if sys.platform == "darwin":
        candidates = [(["-Xpreprocessor", "-fopenmp"], ["-lomp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    program = "#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n"
    for compile_args, link_args in candidates:
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as f:
                f.write(program)
            cmd = cc.split() + compile_args + [src, "-o", os.path.join(tmp, "probe")] + link_args
            try:
                ok = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    check=False).returncode == 0
            except OSError:
                ok = False
        if ok:
            return compile_args, link_args
    warnings.warn("fastbp: the C compiler cannot build OpenMP programs; building a serial fastbp "
                  "(it works, on one thread)", stacklevel=1)
    return [], []


compile_args, link_args = openmp_flags()
if sys.platform != "win32":
    compile_args = ["-O3", "-std=gnu11"] + compile_args
if _flag("FASTBP_SANITIZE"):
    san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"]
    compile_args += san
    link_args += san

directives = {
    "language_level": 3,
    "boundscheck": _flag("FASTBP_BOUNDSCHECK"),
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": _flag("FASTBP_BOUNDSCHECK"),
    "embedsignature": True,
}

extensions = [
    Extension(
        "fastbp._core",
        ["fastbp/_core.pyx"],
        include_dirs=[np.get_include(), "fastbp"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")]
        + ([("FASTBP_SCALAR_KERNELS", "1")] if _flag("FASTBP_SCALAR_KERNELS") else []),
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        depends=["fastbp/_simd.h", "fastbp/_simd_kernels.h", "fastbp/_simd_scalar.h",
                 "fastbp/_no_fp_contract.h", "fastbp/_simd_update.h", "fastbp/_tile_steps.pxi",
                 "fastbp/_driver.pxi", "fastbp/_loss.pxi", "fastbp/_sgd_epoch.pxi",
                 "fastbp/_full_batch_epochs.pxi", "fastbp/_screening.pxi",
                 "fastbp/_sparse_inputs.pxi"],
    )
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives))
