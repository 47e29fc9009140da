"""``vmibench.baselines``: our reimplementations of VMINet's rivals, one file per family.

This folder sits at the top of the repository but is installed as ``vmibench.baselines`` (pyproject
``package-dir``); from a source checkout ``import vmibench`` maps the same name onto it.  There is no top-level
``baselines`` import name, so a user's ``baselines.py`` can neither shadow nor be shadowed by it.

Each file follows its official model file's module names and shapes so official checkpoints load strictly (their
keys, shapes and counts are in ``tests/reference/state_dicts``), and adapts to any input resolution at
construction time.  Their records (published numbers, eval settings) are plain data in :mod:`vmibench.catalog`;
:mod:`vmibench.models` imports these files, which registers them with timm.
"""
