"""Every example in examples/ runs to completion (they are the docs' gallery)."""

import os
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = sorted((pathlib.Path(__file__).parents[1] / "examples").glob("plot_*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(path):
    env = dict(os.environ, MPLBACKEND="Agg", SKFED_ALLOW_INSECURE_KEYS="0")
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip(), "an example should print its results"


def test_there_are_examples():
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_compiles_and_documents_itself(path):
    """Running the examples takes minutes (2048-bit keys): the slow suite does it.
    The default suite at least catches syntax errors and missing gallery headers."""
    import ast

    tree = ast.parse(path.read_text(), filename=str(path))
    doc = ast.get_docstring(tree)
    assert doc and doc.splitlines()[1].startswith("="), "a gallery example needs a title"
