"""save / load: a Network as a .npz file, read back without pickle.

The file is an uncompressed .npz (a zip of .npy arrays) holding exactly these arrays:

    fastbp_format   int64 scalar, 1
    widths          int64 array [d(0), ..., d(L)]
    output          string scalar, one of fastbp._checks.OUTPUTS ("tanh", "linear", ...)
    activation      string scalar, one of fastbp._checks.ACTIVATIONS (optional: files of fastbp 0.1
                    have none, and their networks are tanh networks)
    dtype           string scalar, "float32" or "float64"
    weights_0 ... weights_{L-1}   W(1), ..., W(L), of shape (d(l-1)+1, d(l)) and that dtype

Loading uses np.load(allow_pickle=False) and checks every array's header (shape and dtype) before
reading its data, so a malformed, mismatched or hostile file gives a ValueError naming the problem,
not a pickle execution, a huge allocation or a Network that breaks later.
"""
from __future__ import annotations

import os
import re
import zipfile
from typing import Any, BinaryIO

import numpy as np

from . import _checks

FORMAT = 1
_META = ("fastbp_format", "widths", "output", "dtype")
_OPTIONAL = ("activation",)
_WEIGHT_KEY = re.compile(r"weights_(0|[1-9][0-9]*)\Z")
# Longer string scalars than this in "output" or "dtype" are not ours.
_MAX_STR = 16


def write(file: str | os.PathLike | BinaryIO, widths, output: str, activation: str, dtype,
          weights) -> None:
    """Write a network (widths, output, activation, dtype, checked weights) to `file`, a path or
    a binary file object (Network.save).

    A path is written as given (no ".npz" is appended), through a temporary file renamed into place,
    so that a failed save leaves any previous file intact.
    """
    arrays: dict[str, Any] = {
        "fastbp_format": np.array(FORMAT, dtype=np.int64),
        "widths": np.array(widths, dtype=np.int64),
        "output": np.array(output),
        "activation": np.array(activation),
        "dtype": np.array(np.dtype(dtype).name),
    }
    for l, w in enumerate(weights):
        arrays[f"weights_{l}"] = w
    if hasattr(file, "write"):
        np.savez(file, **arrays)
        return
    path = os.fspath(file)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _header(npz, key):
    """(shape, dtype) of the array `key` in the archive, from its .npy header alone."""
    with npz.zip.open(key + ".npy") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"{key} has an unsupported .npy version {version}")
    return shape, dtype


def _string(npz, key, allowed):
    shape, dtype = _header(npz, key)
    if shape != () or dtype.kind != "U" or dtype.itemsize > 4 * _MAX_STR:
        raise ValueError(f"{key} must be a string scalar, got shape {shape} and dtype {dtype}")
    value = str(npz[key][()])
    if value not in allowed:
        raise ValueError(f"{key} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def _read(npz):
    keys = set(npz.files)
    missing = [k for k in _META if k not in keys]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}: not a file written by Network.save")
    weight_keys = {k for k in keys if _WEIGHT_KEY.match(k)}
    unexpected = sorted(keys - set(_META) - set(_OPTIONAL) - weight_keys)
    if unexpected:
        raise ValueError(f"unexpected arrays {unexpected}")

    shape, dtype = _header(npz, "fastbp_format")
    if shape != () or dtype.kind not in "iu":
        raise ValueError(f"fastbp_format must be an integer scalar, got shape {shape} and "
                         f"dtype {dtype}")
    version = int(npz["fastbp_format"])
    if version != FORMAT:
        raise ValueError(f"fastbp_format is {version}; this fastbp reads format {FORMAT}")

    L = len(weight_keys)
    shape, dtype = _header(npz, "widths")
    if dtype.kind not in "iu" or shape != (L + 1,):
        raise ValueError(f"widths must be an integer array of {L + 1} layer widths (the file has "
                         f"{L} weight arrays), got shape {shape} and dtype {dtype}")
    widths = _checks.check_widths([int(d) for d in npz["widths"]])
    output = _string(npz, "output", _checks.OUTPUTS)
    activation = _string(npz, "activation", _checks.ACTIVATIONS) if "activation" in keys else "tanh"
    if output == "softmax" and widths[-1] < 2:
        raise ValueError(f"output is 'softmax' but widths {widths} have a single output unit")
    dtype_name = _string(npz, "dtype", tuple(dt.name for dt in _checks.FLOAT_DTYPES))
    want_dtype = np.dtype(dtype_name)

    weights = []
    for l in range(L):
        key = f"weights_{l}"
        if key not in weight_keys:
            raise ValueError(f"missing {key} (the file has {sorted(weight_keys)})")
        want = (widths[l] + 1, widths[l + 1])
        shape, dtype = _header(npz, key)
        if shape != want:
            raise ValueError(f"{key} has shape {shape} but widths {widths} need {want}")
        if dtype.kind != "f" or dtype.itemsize != want_dtype.itemsize:
            raise ValueError(f"{key} has dtype {dtype} but the file's dtype is {dtype_name}")
        size = npz.zip.getinfo(key + ".npy").file_size
        if size < want[0] * want[1] * dtype.itemsize:
            raise ValueError(f"{key} is truncated: {size} bytes cannot hold {want} {dtype_name}")
        weights.append(npz[key])
    checked, _, _ = _checks.check_weights(weights)      # finite values
    return widths, output, activation, want_dtype, checked


def read(file: str | os.PathLike | BinaryIO):
    """(widths, output, activation, dtype, weights) of a network written by `write`
    (fastbp.load); files without an activation (fastbp 0.1) have tanh units.

    Raises ValueError for a file that is not such a model; a missing file raises
    FileNotFoundError as usual.
    """
    name = getattr(file, "name", file) if hasattr(file, "read") else os.fspath(file)
    try:
        npz = np.load(file, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array, not an .npz archive")
        with npz:
            return _read(npz)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except (ValueError, TypeError, OSError, EOFError, KeyError, MemoryError, UnicodeError,
            zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
        # RuntimeError: zipfile's "File ... is encrypted, password required" (one flipped flag bit)
        raise ValueError(f"cannot load a fastbp model from {name!r}: {exc}") from exc
