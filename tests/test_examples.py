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
