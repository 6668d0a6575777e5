"""The package as a whole: importing it has no side effects."""

import pkgutil
import subprocess
import sys

import entropic_ae

# Every module of the package, found by walking it (``__main__`` modules run a command).
MODULES = sorted(m.name.removeprefix("entropic_ae.") for m in
                 pkgutil.walk_packages(entropic_ae.__path__, "entropic_ae.")
                 if not m.name.endswith("__main__"))

CHECK = r"""
import os, random, sys, tempfile
import numpy as np, torch, matplotlib
os.environ["ENTROPIC_AE_DATA"] = data = tempfile.mkdtemp()
random.seed(1); np.random.seed(1); torch.manual_seed(1)
before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone(),
          dict(matplotlib.rcParams))
import importlib
for name in sys.argv[1:]:
    importlib.import_module("entropic_ae." + name)
after = (random.getstate(), np.random.get_state()[1], torch.get_rng_state(),
         dict(matplotlib.rcParams))
assert before[0] == after[0], "Python's random state changed"
assert (before[1] == after[1]).all(), "NumPy's random state changed"
assert torch.equal(before[2], after[2]), "torch's random state changed"
assert before[3] == after[3], "matplotlib rcParams (style or backend) changed"
assert os.listdir(data) == [], "files were written to the data folder"
"""

# Reading rcParams["backend"] imports pyplot, so this check runs in a process of its own.
NO_PYPLOT = r"""
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module("entropic_ae." + name)
assert "matplotlib.pyplot" not in sys.modules, "matplotlib.pyplot was imported at import time"
"""


def test_the_tree_shows_the_architecture():
    for name in ("models.mlp", "models.conv", "models.lenet", "systems", "losses", "training",
                 "checkpoints", "experiments.options", "experiments.cache", "paths.weights",
                 "data.load", "data.provision", "data.layout"):
        assert name in MODULES


def test_importing_every_module_has_no_side_effects():
    for script in (CHECK, NO_PYPLOT):
        result = subprocess.run([sys.executable, "-c", script, *MODULES], capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]


def test_public_functions_have_docstrings():
    import importlib
    import inspect

    missing = []
    for name in MODULES:
        module = importlib.import_module(f"entropic_ae.{name}")
        for attr in getattr(module, "__all__", []):
            obj = getattr(module, attr)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and not inspect.getdoc(obj):
                missing.append(f"{name}.{attr}")
    assert not missing, f"public objects without a docstring: {missing}"
