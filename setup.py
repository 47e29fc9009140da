"""Package list for setuptools (everything else is in pyproject.toml).

The rivals' folder stays at the top of the repository (``baselines/``) but installs as ``vmibench.baselines``:
there is no top-level ``baselines`` name, which is taken on PyPI and would shadow, or be shadowed by, any
``baselines.py`` on ``sys.path``.  pyproject.toml cannot add a mapped package to a discovered list, hence this file.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["vmibench", "vmibench.*"]), "vmibench.baselines"],
    package_dir={"vmibench.baselines": "baselines"},
)
