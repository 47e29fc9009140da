"""Operators shared by the models: the selective scan (three backends) and the token mixers of the ops sweep."""

from vmibench.ops.selective_scan import (
    BACKENDS,
    available_backends,
    dt_bias_init,
    resolve_backend,
    s4d_real_log_a,
    selective_scan,
    set_default_backend,
)

__all__ = [
    "BACKENDS",
    "available_backends",
    "dt_bias_init",
    "resolve_backend",
    "s4d_real_log_a",
    "selective_scan",
    "set_default_backend",
]
