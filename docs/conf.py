"""Sphinx configuration of fastbp's documentation.

Build (from the checkout):
    pip install ".[docs]" && python -m sphinx -W --keep-going -b html docs docs/_build/html
"""
from __future__ import annotations

import importlib
import os
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _prefer_the_installed_fastbp() -> None:
    """`python -m sphinx` run in the checkout puts the checkout first on sys.path, so `import
    fastbp` would find the source folder. After `pip install -e .` that folder holds the compiled
    module and is the package; after `pip install ".[docs]"` it does not, and the installed copy
    must be imported instead: then the checkout is taken off sys.path (for these pages and the
    examples, which run in this process)."""
    source = ROOT / "fastbp"
    if any(source.glob("_core*.so")) or any(source.glob("_core*.pyd")):
        return
    sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != ROOT]


_prefer_the_installed_fastbp()
import fastbp  # noqa: E402

project = "fastbp"
author = "the fastbp developers"
copyright = "2026, the fastbp developers"
version = release = fastbp.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",                      # CHANGELOG.md, included by changelog.rst
    # MathJax 3.2.2 shipped with the extension and copied into _static/mathjax: the maths renders
    # with no internet access (it sets mathjax_path to the local copy)
    "sphinx-mathjax-offline",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "**/*.ipynb", "**.zip", "**.py", "sg_execution_times.rst"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
default_role = "literal"               # `name` in the docstrings reads as code, as on GitHub

# --- API reference -----------------------------------------------------------------------------
autosummary_generate = True
autodoc_default_options = {"members": False, "inherited-members": False}
autodoc_typehints = "none"            # numpydoc shows the types in Parameters
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = False

# fastbp.distributed lives on another branch until it is merged, and needs Dask: its API page is
# written here, with its names when the module imports and a note when it does not.
try:
    _distributed = importlib.import_module("fastbp.distributed")
except ImportError as exc:
    _distributed, _why = None, str(exc).splitlines()[0]
_api_distributed = HERE / "api_distributed.rst"
if _distributed is not None:
    _names = "\n".join(f"   {n}" for n in _distributed.__all__)
    _body = (".. module:: fastbp.distributed\n\n"
             ".. autosummary::\n   :toctree: generated/\n\n" + _names + "\n")
else:
    _body = (".. module:: fastbp.distributed\n\n.. note::\n\n   ``fastbp.distributed`` could not "
             "be imported when these pages were built, so its reference is missing here\n   ("
             + _why.replace("`", "'") + ").\n")
_text = ("..\n   Written by docs/conf.py at every build: do not edit.\n\n"
         "fastbp.distributed\n==================\n\n" + _body)
if not _api_distributed.exists() or _api_distributed.read_text() != _text:
    _api_distributed.write_text(_text)

intersphinx_mapping = {}              # offline builds: no inventories fetched

# --- gallery -------------------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",      # every plot_*.py runs during the build
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
    "matplotlib_animations": False,
    "reset_modules": ("matplotlib",),
    "min_reported_time": 1,
    # the execution-time pages load DataTables from a CDN: left out, so the site is whole offline
    # (each example still says how long it ran)
    "write_computation_times": False,
}
# the examples run in this process: matplotlib without a display
os.environ.setdefault("MPLBACKEND", "Agg")
warnings.filterwarnings("ignore", message="Matplotlib is currently using agg",
                        category=UserWarning)

# --- HTML ----------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"fastbp {release}"
html_theme_options = {
    "navbar_end": ["navbar-icon-links"],
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_static_path: list[str] = []
html_show_sourcelink = False
html_copy_source = False

myst_heading_anchors = 2
suppress_warnings = ["myst.header"]    # the changelog's headings start at level 1 inside a page
