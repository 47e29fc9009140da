"""Where the time goes: per-block, per-operator-class time, FLOPs and bytes, and a roof per class.

* :mod:`~vmibench.attribution.classes` (torch-free): the operator -> class table, each class's roof;
* :mod:`~vmibench.attribution.scopes`: timm-style stage / block scopes around a model's operators;
* :mod:`~vmibench.attribution.profile`: :func:`profile_calls` -- class times of profiled forwards / train steps;
* :mod:`~vmibench.attribution.counts`: :func:`count_by_class` -- GMACs and GB moved by the same blocks and classes;
* :mod:`~vmibench.attribution.roofs`: elementwise / transcendental roofs and :func:`class_roofline`.

Importing this package imports none of them (no torch import, no operator registration).
"""
