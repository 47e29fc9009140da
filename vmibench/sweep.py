"""Planning: presets, and the cells of a sweep -- models x resolutions x batches x dtypes, or token mixers x
sequence lengths -- validated before anything runs.

Running them is :class:`vmibench.measure.runner.Runner`'s job (resume, rounds, ladders, leases); this module only
says what to measure, and how to predict that the next size of an op's ladder exceeds the caps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from vmibench.errors import UserError
from vmibench.measure.runner import CapPredictor
from vmibench.measure.timing import TimingPolicy
from vmibench.measure.workloads import (
    MODES,
    TASK_BACKBONE,
    TASK_CLASSIFY,
    TASKS,
    Cell,
    MatmulPeak,
    MaxBatch,
    MixerOp,
    ModelForward,
    Settings,
    StreamTriad,
)
from vmibench.questions import EXPONENT, OPS, Comparison, ratios

GPU_LADDER = [(224, 224), (512, 512), (1024, 1024), (1536, 1536), (2048, 2048)]
# One model per family, the sizes the paper compares at (Tiny / ~1 GMAC class) plus DeiT-T as softmax reference.
REPRESENTATIVE = ["vminet_t", "vim_t", "vmamba_t", "effvmamba_t", "mlla_t", "flatten_swin_t", "deit_t", "swin_t"]
# VMINet-B is the GMACs match of MLLA-T and FLatten-Swin-T (4.2-4.8 GMACs): the fair pair of question (2)
CPU_LADDER_MODELS = [*REPRESENTATIVE, "vminet_b"]
CPU_LADDER = (224, 512, 768, 1024)
LINEAR_CLAIMS = ["vminet_t", "vim_t", "vmamba_t", "effvmamba_t", "mlla_t", "flatten_swin_t"]
SOFTMAX_REFERENCE = "deit_t"
MASK_SEQ = (256, 1024, 4096, 16384)


def cpu_comparisons() -> tuple[Comparison, ...]:
    """The cpu-default preset's pre-registered comparisons, one block per reviewer question.

    (1) linear complexity: each linear-claim model's latency exponent (in pixels) against 1, and against the
    softmax reference's; (2) VMINet-B against its GMACs matches MLLA-T and FLatten-Swin-T over the ladder;
    (3) EfficientVMamba's latency per GMAC against four ladder models at the ends of the ladder, and whether its
    own cost per GMAC grows with size (latency exponent minus GMACs exponent); (4) the causal mask: VMI-SA's
    recurrent and matrix causal forms against the unmasked mixer, over the sequence lengths."""
    q1 = [Comparison("q1", EXPONENT, m) for m in LINEAR_CLAIMS]
    q1 += [Comparison("q1", EXPONENT, m, SOFTMAX_REFERENCE) for m in LINEAR_CLAIMS]
    q2 = ratios("q2", [("vminet_b", "mlla_t"), ("vminet_b", "flatten_swin_t")], CPU_LADDER)
    q3 = ratios("q3", [("effvmamba_t", m) for m in ("vminet_t", "vim_t", "vmamba_t", "deit_t")], (224, 1024),
                per_gmac=True)  # fmt: skip
    q3 += [Comparison("q3", EXPONENT, "effvmamba_t", reference=None)]
    q4 = ratios("q4", [("vmisa_recurrent", "vmisa"), ("vmisa_matrix", "vmisa")], MASK_SEQ, table=OPS)
    return (*q1, *q2, *q3, *q4)


OPS_SEQ = [256, 1024, 4096, 16384, 65536]
# Where backbones are used through their multi-scale features: detection (COCO-style 800x1280 / 1024x1024 inputs)
# and semantic segmentation (ADE20K 512x512 crops, Cityscapes 512x2048 crops and 1024x2048 full frames).
DETECTION_SIZES = ((800, 1280), (1024, 1024))
SEGMENTATION_SIZES = ((512, 512), (512, 2048), (1024, 2048))
DENSE_SIZES = (*SEGMENTATION_SIZES[:1], *DETECTION_SIZES[:1], *SEGMENTATION_SIZES[1:2], *DETECTION_SIZES[1:],
               *SEGMENTATION_SIZES[2:])  # fmt: skip  # ascending pixel count


@dataclass(frozen=True)
class Group:
    """One block of a sweep: every combination of these models, resolutions, batches and dtypes."""

    models: tuple[str, ...] | None  # None = every registered model
    resolutions: tuple[tuple[int, int], ...]
    batches: tuple[int, ...] = (1,)
    dtypes: tuple[str, ...] = ("fp32",)
    cuda_graph: bool = False  # also measured as a replayed CUDA graph; left out on other devices
    task: str = TASK_CLASSIFY  # or "backbone": feature maps for a detector / segmenter, no head


@dataclass(frozen=True)
class Preset:
    """A named sweep: model groups, a token-mixer sweep, and the timing budgets for both."""

    name: str
    description: str
    groups: tuple[Group, ...]
    policy: TimingPolicy
    cell_timeout_s: float
    ops: tuple[str, ...] | None = None  # None = every op
    seq_lens: tuple[int, ...] = tuple(OPS_SEQ)
    op_dim: int = 64
    op_batch: int = 1
    op_dtypes: tuple[str, ...] = ("fp32",)
    time_cap_s: float = 5.0
    mem_cap_mb: float = 4096.0
    threads: int | None = None  # None = every usable core
    rounds: int = 3  # worker processes per cell, visited round-robin in a new random order each round
    comparisons: tuple[Comparison, ...] = ()  # pre-registered: the adaptive phase tops up the undecided ones
    max_rounds: int = 3  # the adaptive phase stops a cell here
    adaptive_budget_min: float = 0.0  # time the adaptive phase may spend, per command (sweep, ops)


PRESETS: dict[str, Preset] = {
    "cpu-default": Preset(
        name="cpu-default",
        description="every registered model at 224, batch 1, fp32; a ladder 224/512/768/1024 for one model per family "
        "and the softmax references, plus VMINet-B (the GMACs match of MLLA-T and FLatten-Swin-T); token mixers at "
        "L = 256 ... 65536 (dim 64); 1 thread per worker; 3 rounds: each cell in 3 worker processes, interleaved in "
        "random order (on a shared 2-core machine one cell's median moved by up to a third between processes); "
        "per-cell budget 3 s split over the rounds; then up to 3 min per command of adaptive rounds (to 8 per cell) "
        "for the cells of pre-registered comparisons still undecided",
        groups=(
            Group(models=None, resolutions=((224, 224),)),
            Group(models=tuple(CPU_LADDER_MODELS), resolutions=tuple((r, r) for r in CPU_LADDER[1:])),
        ),
        policy=TimingPolicy(
            min_warmup_iters=2,
            min_warmup_s=0.2,
            min_iters=6,
            min_time_s=0.9,
            max_time_s=3.0,
            rel_precision=0.02,
            max_warmup_s=1.0,  # a call slower than this warms up once: its first call did the allocating
        ),
        cell_timeout_s=300.0,
        time_cap_s=8.0,
        mem_cap_mb=6144.0,
        threads=1,
        rounds=3,
        comparisons=cpu_comparisons(),
        max_rounds=8,
        adaptive_budget_min=3.0,
    ),
    "gpu-default": Preset(
        name="gpu-default",
        description="every registered model at 224 ... 2048, batch 1 and a throughput batch (64, at 224 and "
        "512), fp32 and bf16; one model per family and the softmax references also as a replayed CUDA graph at "
        "224, batch 1 (small models are launch-bound there; CUDA only); the same models as dense-prediction "
        "backbones (features, no head) at the detection and segmentation sizes, batch 1 and 2, fp32; token mixers "
        "up to L = 2^18 in fp32 and bf16; 2 rounds per cell (a GPU is quieter than a shared CPU, and the window on "
        "a borrowed one is short)",
        groups=(
            Group(models=None, resolutions=tuple(GPU_LADDER), batches=(1,), dtypes=("fp32", "bf16")),
            Group(models=None, resolutions=((224, 224), (512, 512)), batches=(64,), dtypes=("fp32", "bf16")),
            Group(models=tuple(REPRESENTATIVE), resolutions=((224, 224),), dtypes=("fp32", "bf16"), cuda_graph=True),
            Group(models=tuple(REPRESENTATIVE), resolutions=DENSE_SIZES, batches=(1, 2), task=TASK_BACKBONE),
        ),
        policy=TimingPolicy(
            min_warmup_iters=3,
            min_warmup_s=0.2,
            min_iters=10,
            min_time_s=0.3,
            max_time_s=2.0,
            rel_precision=0.01,
            max_warmup_s=20.0,
        ),
        cell_timeout_s=120.0,
        seq_lens=(256, 1024, 4096, 16384, 65536, 262144),
        op_dim=256,
        op_dtypes=("fp32", "bf16"),
        time_cap_s=2.0,
        mem_cap_mb=60_000.0,
        rounds=2,
    ),
    "smoke": Preset(
        name="smoke",
        description="seconds: Vim-Ti at 64 px (plus its CUDA-graph variant on a GPU) and two token mixers at "
        "L = 256, one round, short budgets; checks that a sweep runs end to end (the tests' dry run of "
        "scripts/gpu_run.sh), measures nothing worth reporting",
        groups=(
            Group(models=("vim_t",), resolutions=((64, 64),)),
            Group(models=("vim_t",), resolutions=((64, 64),), cuda_graph=True),
        ),
        policy=TimingPolicy(min_warmup_iters=1, min_warmup_s=0.0, min_iters=3, min_time_s=0.0, max_time_s=0.3),
        cell_timeout_s=120.0,
        ops=("vmisa", "selective_scan"),
        seq_lens=(256,),
        op_dim=32,
        rounds=1,
    ),
}


def get_preset(name: str) -> Preset:
    """Preset by name, or :class:`UserError` listing the valid ones."""
    if name not in PRESETS:
        raise UserError(f"unknown preset '{name}': use one of {', '.join(PRESETS)}")
    return PRESETS[name]


# -- model sweep -------------------------------------------------------------------------------------------


def scan_backend_for(settings: Settings, scans: bool) -> str:
    """The concrete scan backend a cell runs ("" when nothing in it scans); ``auto`` resolved for its device."""
    from vmibench.ops import resolve_backend

    if not scans:
        return ""
    try:
        return resolve_backend(settings.scan_backend, settings.device)
    except (ValueError, RuntimeError) as exc:
        raise UserError(f"scan backend '{settings.scan_backend}' cannot run on {settings.device} ({exc}): "
                        "use --scan-backend auto") from None  # fmt: skip


def check_mode(mode: str) -> str:
    """Validate ``--mode``: ``infer`` (one forward) or ``train`` (forward + backward + SGD step)."""
    if mode not in MODES:
        raise UserError(f"unknown mode '{mode}': use one of {', '.join(MODES)}")
    return mode


def plan_cells(
    models: list[str],
    resolutions: list[tuple[int, int]],
    batches: list[int],
    settings: Settings,
    *,
    mode: str = "infer",
    task: str = TASK_CLASSIFY,
) -> list[Cell]:
    """The cross product models x resolutions x batches (duplicates dropped), validated before anything runs.

    Raises :class:`vmibench.errors.UserError` for an unknown model, a resolution a model does not accept or an
    unknown task, so a bad argument fails at once instead of after an hour of measurements.  A model from an
    ``--import`` file gets the file's digest in its cells and the file in their settings (workers import it).
    """
    from vmibench.registry import resolve_info
    from vmibench.user_models import source_of

    check_mode(mode)
    if task not in TASKS:
        raise UserError(f"unknown task '{task}': use {' or '.join(TASKS)}")
    if task == TASK_BACKBONE and mode != "infer":
        raise UserError("--task backbone times the feature extractor's forward only: drop --mode train")
    cells: list[Cell] = []
    for name in dict.fromkeys(models):
        info = resolve_info(name)
        for hw in resolutions:
            info.check_resolution(hw)
        source = source_of(name)
        st = replace(settings, scan_backend=scan_backend_for(settings, info.uses_scan),
                     imports=(source.spec,) if source else ())  # fmt: skip
        digest = source.digest if source else ""
        cells += [Cell(ModelForward(name, h, w, b, mode, task=task, source=digest), st)
                  for (h, w) in dict.fromkeys(resolutions) for b in batches]  # fmt: skip
    return list(dict.fromkeys(cells))


def _model_order(cell: Cell) -> tuple[bool, str, bool, int, str, float]:
    wl = cell.workload
    assert isinstance(wl, ModelForward)
    return (wl.task != TASK_CLASSIFY, cell.settings.dtype, cell.settings.cuda_graph, wl.batch, wl.model, wl.size())


def plan_maxbatch(
    models: list[str],
    resolutions: list[tuple[int, int]],
    settings: Settings,
    *,
    mode: str = "infer",
    mem_limit_gb: float | None = None,
    batch_cap: int = 4096,
) -> list[Cell]:
    """Max-batch cells (model x resolution), validated like :func:`plan_cells`.

    On CPU a limit is required (the worker enforces it with ``RLIMIT_AS``; the machine's whole memory is no
    meaningful limit); on CUDA it defaults to the device's free memory.
    """
    import math

    if mem_limit_gb is not None and not (math.isfinite(mem_limit_gb) and mem_limit_gb > 0):
        raise UserError(f"bad --mem-limit-gb {mem_limit_gb}: must be a positive number of GiB")
    if mem_limit_gb is None and not settings.device.startswith("cuda"):
        raise UserError("give --mem-limit-gb on CPU (e.g. --mem-limit-gb 2): the search needs a memory limit")
    if batch_cap < 1:
        raise UserError(f"bad --batch-cap {batch_cap}: must be a positive integer")
    # a call at the largest batch takes seconds on a CPU: one warm-up call and a few timed ones are enough
    settings = replace(settings, policy=replace(settings.policy, min_warmup_iters=1, min_warmup_s=0.0,
                                                max_warmup_s=1.0, min_iters=3, hard_min_iters=2))  # fmt: skip
    forward = plan_cells(models, resolutions, [1], settings, mode=mode)
    return [Cell(MaxBatch(c.workload.model, c.workload.height, c.workload.width, mode, mem_limit_gb, batch_cap),  # type: ignore[attr-defined]
                 c.settings) for c in forward]  # fmt: skip


def expand_groups(groups: Iterable[Group], base: Settings) -> list[Cell]:
    """All cells of ``groups`` (validated, duplicates dropped), each model's resolutions ascending."""
    from vmibench.registry import list_infos

    everyone = tuple(m.name for m in list_infos())
    cells: list[Cell] = []
    for group in groups:
        if group.cuda_graph and not base.device.startswith("cuda"):
            continue
        for dtype in group.dtypes:
            cells += plan_cells(list(group.models or everyone), list(group.resolutions), list(group.batches),
                                replace(base, dtype=dtype, cuda_graph=base.cuda_graph or group.cuda_graph),
                                task=group.task)  # fmt: skip
    cells = list(dict.fromkeys(cells))
    cells.sort(key=_model_order)
    return cells


def _device_settings(cells: Iterable[Cell]) -> list[Settings]:
    """The distinct (device, dtype, threads) settings of ``cells``, stripped of what only models use."""
    return list(dict.fromkeys(replace(c.settings, scan_backend="", count_flops=False, channels_last=False,
                                      compile=False, cuda_graph=False) for c in cells))  # fmt: skip


CPU_PEAK_SIZES = (512, 1024, 2048)
CUDA_PEAK_SIZES = (4096, 8192)


def peak_cells(cells: Iterable[Cell]) -> list[Cell]:
    """Dense-matmul peak cells per (device, dtype, threads) of ``cells``: the utilisation denominator.

    Several matrix sizes, each measured in rounds like any cell; the roof is the best of them (the fastest round
    of the fastest size, :func:`vmibench.analysis.fits.add_utilisation`), since one short measurement at one size
    was beaten by models that cannot beat a true peak."""
    return [Cell(MatmulPeak(n=n), st) for st in _device_settings(cells)
            for n in (CUDA_PEAK_SIZES if st.device.startswith("cuda") else CPU_PEAK_SIZES)]  # fmt: skip


_ELEMENT_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
_CUDA_TRIAD_BYTES = 1 << 30  # per array: over 4x the L2 of any current GPU (H100/H200: 50-60 MB)
_DEFAULT_LLC_BYTES = 32 << 20  # where sysfs does not say


def last_level_cache_bytes() -> int:
    """Size of the CPU's largest cache (sysfs, Linux); 32 MiB where it cannot be read."""
    from pathlib import Path

    sizes = []
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            text = (index / "size").read_text().strip()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes, default=_DEFAULT_LLC_BYTES)


def triad_elements(device: str, dtype: str) -> int:
    """Elements per triad array: each array at least 4x the last-level cache, so the triad streams from memory."""
    per_array = _CUDA_TRIAD_BYTES if device.startswith("cuda") else max(4 * last_level_cache_bytes(), 64 << 20)
    return per_array // _ELEMENT_BYTES[dtype]


def bandwidth_cells(cells: Iterable[Cell]) -> list[Cell]:
    """One STREAM-triad cell per (device, dtype, threads) of ``cells``: the roofline's memory slope."""
    return [Cell(StreamTriad(n=triad_elements(st.device, st.dtype)), st) for st in _device_settings(cells)]


# -- ops sweep ---------------------------------------------------------------------------------------------


def ops_cells(
    ops: list[str], seq_lens: list[int], dim: int, batch: int, dtypes: list[str], base: Settings
) -> list[Cell]:
    """The (op, L, dtype) cells, validated; each op's lengths ascend.

    With ``scan_backend="auto"`` the selective scan is swept once per fast backend available on the device;
    the sequential ``reference`` backend (a correctness oracle, ~20x slower) only when asked for by name.
    """
    from vmibench.ops import available_backends
    from vmibench.ops.mixers import OPS

    for op in ops:
        if op not in OPS:
            raise UserError(f"unknown op '{op}': use one of {', '.join(OPS)}")
    for L in seq_lens:
        if L < 1:
            raise UserError(f"bad sequence length {L}: must be a positive integer")
    cells = []
    for dtype in dtypes:
        for op in dict.fromkeys(ops):
            if op != "selective_scan":
                backends = [""]
            elif base.scan_backend == "auto":
                backends = [b for b in available_backends(base.device) if b != "reference"]
            else:
                backends = [scan_backend_for(base, True)]
            for backend in backends:
                st = replace(base, dtype=dtype, scan_backend=backend)
                cells += [Cell(MixerOp(op, L, dim, batch), st) for L in sorted(set(seq_lens))]
    return cells


def _exponent(op: str) -> int:
    from vmibench.ops.mixers import OPS

    return 2 if OPS[op].expected_complexity == "O(L^2)" else 1


def cap_predictor(seq_lens: list[int], time_cap_s: float, mem_cap_mb: float) -> CapPredictor:
    """Predicts, from a cell's first round, whether the next length of its op exceeds the time or memory cap.

    The prediction scales the measurement by the op's expected exponent (L or L^2), so an O(L^2) op stops before
    a size that would take minutes or exhaust memory.
    """
    ordered = sorted(seq_lens)

    def predict(cell: Cell, median_ms: float, peak_mb: float) -> str:
        wl = cell.workload
        if not isinstance(wl, MixerOp):
            return ""
        bigger = [L for L in ordered if wl.seq_len < L]
        if not bigger or median_ms <= 0:
            return ""
        scale = (bigger[0] / wl.seq_len) ** _exponent(wl.op)
        t = median_ms / 1e3 * scale
        m = peak_mb * scale
        if t > time_cap_s:
            return f"not run: predicted {t:.1f} s per call from L={wl.seq_len} exceeds --time-cap {time_cap_s:g} s"
        if m > mem_cap_mb:
            return f"not run: predicted {m:.0f} MB from L={wl.seq_len} exceeds --mem-cap {mem_cap_mb:g} MB"
        return ""

    return predict
