"""A user model (``--import`` file) whose forward holds a known allocation, for real workers' peak memory.

Each forward writes every page of a fresh ``ALLOC_MB`` MiB tensor (resident, so the RSS high-water mark sees it;
allocated on the input's device, so CUDA's allocator sees it too), then frees it.  Everything else it does is tiny,
so a worker's ``peak_mem_mb`` must lie between ``ALLOC_MB`` and ``ALLOC_MB`` plus a few tens of MiB.
"""

import torch
import torch.nn as nn
from timm.models import register_model

ALLOC_MB = 96


class Alloc(nn.Module):
    def __init__(self, num_classes=1000, **kwargs):
        super().__init__()
        self.head = nn.Linear(3, num_classes)

    def forward(self, x):
        held = torch.ones(ALLOC_MB << 18, device=x.device)  # float32: ALLOC_MB MiB, every page written
        # read back while still held: a sampling probe (no VmHWM reset allowed) sees it resident too
        return self.head(x.mean((2, 3))) + 0 * held.sum()


@register_model
def alloc_probe_t(pretrained=False, **kwargs):
    return Alloc(**kwargs)
