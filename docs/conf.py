"""Sphinx configuration for skfed's documentation.

Built with warnings as errors (``make docs``). No intersphinx: the build must
work offline, as CI has no network beyond package registries.
"""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))
# Examples in the gallery run with 2048-bit keys unless they say otherwise;
# docstring snippets executed by autodoc use none.
os.environ.setdefault("MPLBACKEND", "Agg")

project = "skfed"
author = "the skfed developers"
copyright = "2026, the skfed developers"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
autosummary_generate = True
# scikit-learn generates metadata-routing methods on every estimator; their
# docstrings point into scikit-learn's own docs, which are not built here.
autodoc_default_options = {
    "members": True,
    "inherited-members": False,
    "exclude-members": ",".join(
        f"set_{m}_request" for m in ("fit", "score", "predict", "predict_proba",
                                     "decision_function", "transform", "inverse_transform",
                                     "split")
    ) + ",score",
}
numpydoc_show_class_members = False
numpydoc_validation_checks = set()
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
}
templates_path = ["_templates"]
html_theme = "alabaster"
exclude_patterns = ["_build"]
