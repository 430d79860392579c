"""scikit-learn's own tests of its MLP estimators, run against fastbp.sklearn.

The test modules are read from the installed scikit-learn at test time (nothing of them is copied
into this repository): each one's import of MLPClassifier / MLPRegressor from
sklearn.neural_network is rewritten to import fastbp.sklearn's, the module is run, and its tests
(all of test_mlp.py; in the other modules the tests that use the MLP estimators) become tests of
this module, under their own names. The fixture they need from scikit-learn's conftest
(`global_random_seed`) is defined here. The tests that are not run are listed in EXCLUDED, each
with its reason; `test_the_excluded_tests_are_listed` prints that list.
"""
from __future__ import annotations

import importlib.util
import inspect
import os
import re
import sys
import types
import warnings

import pytest

sklearn = pytest.importorskip("sklearn")

# scikit-learn's test modules, and which of their tests run here: "all", or "mlp" (those whose
# source, decorators included, names MLPClassifier or MLPRegressor)
SUITES = {
    "sklearn.neural_network.tests.test_mlp": "all",
    "sklearn.ensemble.tests.test_stacking": "mlp",
    "sklearn.model_selection.tests.test_validation": "mlp",
    "sklearn.utils._repr_html.tests.test_estimator": "mlp",
}

# The tests not run, by "<module>::<test>", each with its reason. Nothing else is left out.
EXCLUDED = {
    "test_mlp::test_gradient":
        "calls scikit-learn's private _loss_grad_lbfgs, its L-BFGS objective over its own scratch "
        "arrays (fastbp's lbfgs runs through fastbp.training.train; fastbp's gradient is checked "
        "against finite differences in tests/test_gradient.py)",
}

_IMPORT = re.compile(r"^from sklearn\.neural_network import (\(?)([\sA-Za-z,]*?)(\)?)$",
                     re.MULTILINE)
_ESTIMATORS = {"MLPClassifier", "MLPRegressor"}


def _rewritten(source: str, path: str) -> str:
    """`source` with its import of scikit-learn's MLP estimators made fastbp.sklearn's (the same
    number of lines, so that tracebacks show the installed file's line numbers)."""
    def swap(match):
        names = {n.strip() for n in match.group(2).split(",") if n.strip()}
        if not names or not names <= _ESTIMATORS:
            return match.group(0)        # some other name of sklearn.neural_network: kept
        return "from fastbp.sklearn import " + match.group(1) + match.group(2) + match.group(3)

    rewritten, n = _IMPORT.subn(swap, source)
    if rewritten == source:
        raise RuntimeError(f"{path}: no import of MLPClassifier / MLPRegressor from "
                           f"sklearn.neural_network found to rewrite ({n} candidate lines)")
    left = re.findall(r"neural_network\.(MLPClassifier|MLPRegressor)\b", rewritten)
    if left:
        raise RuntimeError(f"{path}: still reaches scikit-learn's own {sorted(set(left))}")
    return rewritten


def _load(name: str) -> types.ModuleType | None:
    """scikit-learn's test module `name`, rewritten and run; None if this scikit-learn has none."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None or not os.path.exists(spec.origin):
        return None
    with open(spec.origin, encoding="utf-8") as f:
        source = _rewritten(f.read(), spec.origin)
    module = types.ModuleType("_fastbp_sklearn_suite." + name.rsplit(".", 1)[-1])
    module.__file__ = spec.origin
    sys.modules[module.__name__] = module          # for pickling what the module defines
    with warnings.catch_warnings():
        # marks scikit-learn's conftest registers (thread_unsafe, ...), on modules these import
        warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
        exec(compile(source, spec.origin, "exec"), module.__dict__)
    return module


def _uses_mlp(function) -> bool:
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return False
    return any(name in source for name in _ESTIMATORS)


LOADED: dict[str, list[str]] = {}       # module's short name -> the tests taken from it
for _name, _which in SUITES.items():
    _module = _load(_name)
    if _module is None:
        continue
    _short = _name.rsplit(".", 1)[-1]
    LOADED[_short] = []
    for _test, _function in vars(_module).items():
        if not (_test.startswith("test_") and inspect.isfunction(_function)
                and _function.__module__ == _module.__name__):
            continue
        if _which == "mlp" and not _uses_mlp(_function):
            continue
        if _test in globals():
            raise RuntimeError(f"{_short}::{_test} has the name of a test already here")
        _reason = EXCLUDED.get(f"{_short}::{_test}")
        if _reason is not None:
            _function = pytest.mark.skip(reason=f"excluded: {_reason}")(_function)
        globals()[_test] = _function
        LOADED[_short].append(_test)


@pytest.fixture
def global_random_seed():
    """scikit-learn's fixture (its conftest.py): the seed SKLEARN_TESTS_GLOBAL_RANDOM_SEED names,
    42 when it is not set (scikit-learn's default)."""
    return int(os.environ.get("SKLEARN_TESTS_GLOBAL_RANDOM_SEED", "42"))


def test_the_excluded_tests_are_listed(capsys):
    """Print what runs and the exclusion list (with -q too); an entry that names no test of the
    installed scikit-learn (an older one, or a test renamed) is marked so."""
    absent = [t for t in EXCLUDED if t.split("::")[1] not in LOADED.get(t.split("::")[0], [])]
    lines = [f"scikit-learn {sklearn.__version__}'s tests run against fastbp.sklearn "
             + "(functions): " + ", ".join(f"{short}.py {len(tests)}"
                                           for short, tests in LOADED.items())
             + f"; excluded ({len(EXCLUDED)}, tests/test_sklearn_suite.py EXCLUDED):"]
    lines += [f"  {test}: {reason}" + (" [not in this scikit-learn]" if test in absent else "")
              for test, reason in EXCLUDED.items()]
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert "test_mlp" in LOADED and len(LOADED["test_mlp"]) > 20
    from fastbp import sklearn as fb
    for short in LOADED:                 # the estimators these tests see are fastbp's
        namespace = sys.modules["_fastbp_sklearn_suite." + short].__dict__
        seen = {name: namespace[name] for name in _ESTIMATORS if name in namespace}
        assert seen and all(cls is getattr(fb, name) for name, cls in seen.items()), short
