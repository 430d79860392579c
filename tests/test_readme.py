"""The README's examples run as written, and its two commands are the ones CI runs.

The ```python blocks run in order in one namespace (a later block uses the X and y of an earlier
one), from a temporary directory (one writes a model file), as a reader pasting them would.
"""
import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DEMO = "pip install -e . && python -m fastbp"
TESTS = 'pip install ".[test]" && pytest -q'

if not README.exists():                             # a copy of tests/ outside the checkout (wheels)
    pytest.skip("README.md is not next to the tests", allow_module_level=True)


def blocks(language):
    return re.findall(rf"^```{language}\n(.*?)^```$", README.read_text(encoding="utf-8"),
                      flags=re.M | re.S)


def test_the_readme_is_a_landing_page():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 200


def test_the_readme_python_blocks_run(tmp_path, monkeypatch, capsys):
    code = blocks("python")
    assert len(code) >= 3                           # functions, Network, fastbp.sklearn
    pytest.importorskip("sklearn")                  # the third block's estimator
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "readme"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")              # an example that warns is a bad example
        for k, block in enumerate(code):
            exec(compile(block, f"README.md python block {k + 1}", "exec"), namespace)
    out = capsys.readouterr().out
    # what the examples print: training lowered E_in, L-BFGS separates the training set, the
    # digits are mostly recognised
    before, after = map(float, re.search(r"E_in (\S+) -> (\S+)", out).groups())
    assert after < before / 10
    assert "0.0% misclassified" in out
    assert float(re.search(r"test accuracy (\S+)", out).group(1)) > 0.9
    assert (tmp_path / "model.npz").exists()
    nets, histories = namespace["nets"], namespace["histories"]
    assert all(net.history is h for net, h in zip(nets, histories))


def test_the_readme_commands_are_the_two_commands():
    commands = [line for block in blocks("bash") for line in block.splitlines()]
    assert DEMO in commands and TESTS in commands


def test_ci_runs_the_readme_test_command_last():
    ci = ROOT / ".ci" / "run"
    if not ci.exists():                             # a copy of tests/ outside the checkout
        pytest.skip(".ci/run is not here (tests run outside the checkout)")
    lines = [line for line in ci.read_text().splitlines() if line.strip()]
    assert lines[-1] == TESTS


def test_the_readme_links_point_to_files_of_the_checkout():
    links = re.findall(r"\]\(([^)#]+)\)", README.read_text(encoding="utf-8"))
    local = [link for link in links if "://" not in link]
    assert "docs/benchmarks.rst" in local
    if not (ROOT / "docs").exists():                # a copy of tests/ outside the checkout
        pytest.skip("docs/ is not here (tests run outside the checkout)")
    assert [link for link in local if not (ROOT / link).exists()] == []
