"""Names of the selective-scan backends: plain data, so options can be checked without importing torch.

The implementations live in :mod:`vmibench.ops.selective_scan`; ``auto`` picks ``mamba_ssm`` where it imports
on CUDA, then ``triton`` on CUDA, then ``torch``.
"""

BACKENDS = ("auto", "torch", "reference", "mamba_ssm", "triton")
