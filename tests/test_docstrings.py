"""Every public name has a numpydoc docstring whose examples run.

(a) The Examples section of each public docstring runs as a doctest (so `pytest -q` runs them).
(b) numpydoc's validation (`numpydoc.validate.validate`) passes on each public name for the error
    codes in ENFORCED; skipped, with the reason, when numpydoc is not installed (it is in the
    `test` extra).
"""
import doctest
import importlib
import io

import numpy as np
import pytest

import fastbp

# The public API: fastbp.__all__, Network's public methods, fastbp.training's FitOptions and train,
# fastbp.reference, and fastbp.sklearn's estimators with their own methods (the ones scikit-learn's
# base classes supply, get_params, set_params, score, ..., are scikit-learn's to document).
NETWORK_METHODS = ["forward", "error", "gradient", "fit", "predict", "predict_proba", "score",
                   "classification_error", "save", "to_onnx", "to_torch", "from_torch"]
PUBLIC = (
    [f"fastbp.{name}" for name in fastbp.__all__ if name != "__version__"]
    + [f"fastbp.Network.{m}" for m in NETWORK_METHODS]
    + ["fastbp.History.interrupted",
       "fastbp.training.FitOptions", "fastbp.training.FitOptions.check",
       "fastbp.training.FitOptions.method_class", "fastbp.training.train"]
    + [f"fastbp.reference.{name}" for name in ("init_weights", "forward", "error", "gradient",
                                                "backprop", "Network")]
)
SKLEARN = (
    [f"fastbp.sklearn.{cls}" for cls in ("MLPClassifier", "MLPRegressor")]
    + [f"fastbp.sklearn.MLPClassifier.{m}" for m in ("fit", "partial_fit", "predict",
                                                      "predict_proba", "predict_log_proba",
                                                      "to_sklearn", "from_sklearn")]
    + [f"fastbp.sklearn.MLPRegressor.{m}" for m in ("fit", "partial_fit", "predict",
                                                     "to_sklearn", "from_sklearn")]
    + ["fastbp.sklearn.skops_trusted_types"]
)
# fastbp.onnx (its examples run the model with onnxruntime; both are in the test extra)
ONNX = ["fastbp.onnx.to_onnx"]
# the names whose examples need PyTorch (in the test extra from Python 3.10: torch==2.13.0)
TORCH = ["fastbp.Network.to_torch", "fastbp.Network.from_torch"]
DISTRIBUTED = [f"fastbp.distributed.{name}" for name in ("gradient", "error", "forward",
                                                          "predict", "kernels", "show_config",
                                                          "fit", "ClusterObjective")]

# numpydoc's checks that the public docstrings must pass (numpydoc.validate.ERROR_MSGS says what
# each code means):
ENFORCED = {
    # general layout: where the summary and the closing quotes go, blank lines, tabs, section
    # names and order, a docstring at all
    "GL01", "GL02", "GL03", "GL05", "GL06", "GL07", "GL08", "GL09", "GL10",
    # the summary: present, capitalised, ending with a period, no leading blank, an imperative verb
    # ("Compute", not "Computes"), one line
    "SS01", "SS02", "SS03", "SS04", "SS05", "SS06",
    # parameters: every one documented, none that does not exist, in the signature's order, each
    # with a type and a description in the expected form
    "PR01", "PR02", "PR03", "PR04", "PR05", "PR06", "PR07", "PR08", "PR09", "PR10",
    # returns: a section when something is returned, each value described in the expected form
    "RT01", "RT02", "RT03", "RT04", "RT05",
    "YD01",
    # See Also, where there is one: well formed
    "SA02", "SA03", "SA04",
    # an Examples section
    "EX01",
}
# Not enforced, on purpose (numpydoc reports only these on fastbp's public names):
#   ES01  an extended summary: the one-line summary is enough for the short functions (the
#         details are in Parameters and Notes);
#   SA01  a See Also section: given where it helps, not everywhere.
IGNORED = {"ES01", "SA01"}


def _resolve(path):
    """The object at a dotted path such as 'fastbp.Network.fit' (the module part imported)."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(path)


def _sklearn_names():
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return [pytest.param(n, marks=pytest.mark.skip(reason="scikit-learn is not installed"))
                for n in SKLEARN]
    return SKLEARN


def _distributed_names():
    try:
        import dask.distributed  # noqa: F401
    except ImportError:
        return [pytest.param(n, marks=pytest.mark.skip(reason="Dask is not installed"))
                for n in DISTRIBUTED]
    return DISTRIBUTED


def _torch_or_skipped(names):
    try:
        import torch  # noqa: F401
    except ImportError:
        return [pytest.param(n, marks=pytest.mark.skip(reason="torch is not installed"))
                if n in TORCH else n for n in names]
    return names


ALL = _torch_or_skipped(PUBLIC) + _sklearn_names() + _distributed_names() + ONNX


def test_every_public_name_is_listed():
    """A name added to fastbp.__all__ or a public method added to Network is checked too."""
    listed = {p if isinstance(p, str) else p.values[0] for p in ALL}
    for name in fastbp.__all__:
        if name != "__version__":
            assert f"fastbp.{name}" in listed
    own = {m for m in vars(fastbp.Network) if not m.startswith("_")}
    assert own == set(NETWORK_METHODS)
    from fastbp import reference
    for name in reference.__all__:
        assert f"fastbp.reference.{name}" in listed
    assert {f"fastbp.distributed.{name}" for name in _distributed_all()} == set(DISTRIBUTED)
    from fastbp import onnx, sklearn
    assert {f"fastbp.onnx.{name}" for name in onnx.__all__ if callable(getattr(onnx, name))} == (
        set(ONNX))
    for name in sklearn.__all__:
        assert f"fastbp.sklearn.{name}" in listed


def _distributed_all():
    """fastbp.distributed.__all__, read from its source (importing it needs Dask)."""
    import ast
    import pathlib
    tree = ast.parse(pathlib.Path(fastbp.__file__).with_name("distributed.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__"
                                                for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("fastbp.distributed has no __all__")


def _doctests(path):
    obj = _resolve(path)
    if isinstance(obj, property):
        obj = obj.fget
    finder = doctest.DocTestFinder(recurse=False, exclude_empty=False)
    return finder.find(obj, name=path, globs={})


@pytest.mark.parametrize("path", ALL)
def test_examples_run(path):
    tests = _doctests(path)
    examples = sum(len(t.examples) for t in tests)
    assert examples > 0, f"{path}: its docstring has no example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = io.StringIO()
    printoptions = np.get_printoptions()
    try:
        for t in tests:
            runner.run(t, out=report.write)
    finally:
        np.set_printoptions(**printoptions)
    failed, attempted = runner.summarize(verbose=False)
    assert failed == 0, f"{path}: {failed} of {attempted} examples failed:\n{report.getvalue()}"


@pytest.mark.parametrize("path", ALL)
def test_numpydoc_validation(path):
    validate = pytest.importorskip(
        "numpydoc.validate", reason="numpydoc is not installed (pip install \"fastbp[test]\")")
    result = validate.validate(path)
    errors = [(code, msg) for code, msg in result["errors"] if code in ENFORCED]
    assert not errors, f"{path}:\n" + "\n".join(f"  {code}: {msg}" for code, msg in errors)


def test_ignored_codes_are_known():
    validate = pytest.importorskip(
        "numpydoc.validate", reason="numpydoc is not installed (pip install \"fastbp[test]\")")
    assert ENFORCED | IGNORED <= set(validate.ERROR_MSGS)
    assert not ENFORCED & IGNORED
