"""Kind ``forward``: one forward pass of a model, or one training step (``mode="train"``).

Planned by :func:`plan_cells` (models x resolutions x batches, validated); the child builds the model and times
the step (:mod:`vmibench.measure.steps`); a row is a :class:`vmibench.records.LatencyRecord` in ``latency``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from vmibench.errors import UserError
from vmibench.measure.cells import Cell, Settings, scan_backend_for
from vmibench.measure.kinds.registry import register_kind
from vmibench.measure.rows import TimedWorkload, timed_record
from vmibench.records import LatencyRecord
from vmibench.resolution import label

if TYPE_CHECKING:
    import torch

    from vmibench.measure.cells import WorkerResult
    from vmibench.measure.steps import Step

MODES = ("infer", "train")
TASK_CLASSIFY = "classify"  # image -> logits: the whole classifier
TASK_BACKBONE = "backbone"  # image -> multi-scale feature maps (timm features_only): what a detector consumes
TASKS = (TASK_CLASSIFY, TASK_BACKBONE)


@register_kind
@dataclass(frozen=True)
class ModelForward(TimedWorkload):
    """One forward pass of a registered (or timm) model on a random batch of ``height x width`` images, or with
    ``mode="train"`` one training step: forward, cross-entropy loss, backward and a plain SGD update.

    ``task`` is ``classify`` (the classifier) or ``backbone`` (``features_only``: the stage feature maps from
    ``forward_intermediates``, no head); ``source`` is the digest of the ``--import`` file that defines the model
    (empty for vmibench's and timm's own), so an edited file makes a new cell.
    """

    KIND: ClassVar[str] = "forward"
    TABLE: ClassVar[str] = "latency"

    model: str
    height: int
    width: int
    batch: int = 1
    mode: str = "infer"
    task: str = TASK_CLASSIFY
    source: str = ""

    def ident(self) -> dict[str, Any]:
        # mode, task and source are named only when set: cells stored before they existed keep their keys
        ident = super().ident()
        if self.mode == "infer":
            ident.pop("mode")
        if self.task == TASK_CLASSIFY:
            ident.pop("task")
        if not self.source:
            ident.pop("source")
        return ident

    def describe(self) -> str:
        task = "" if self.task == TASK_CLASSIFY else f" {self.task}"
        return f"{self.model}{task} {self.height}x{self.width} b{self.batch}" + (
            " train" if self.mode == "train" else ""
        )

    def ladder(self) -> tuple[Any, ...]:
        return (self.KIND, self.model, self.batch, self.mode, self.task, self.source)

    def size(self) -> float:
        return float(self.height * self.width)

    def build_step(self, settings: Settings, device: torch.device) -> Step:
        from vmibench.measure import steps
        from vmibench.registry import resolve_info

        model, x = steps.build_model(self.model, self.height, self.width, settings, device, self.batch,
                                     features=self.task == TASK_BACKBONE)  # fmt: skip
        make = steps.train_step if self.mode == "train" else steps.infer_step
        call = make(model, x, settings, device)
        return steps.Step(call, model, x, steps.scan_backend(settings, resolve_info(self.model).uses_scan))

    def run(self, settings: Settings, device: torch.device) -> WorkerResult:
        from vmibench.measure import steps

        return steps.time_step(lambda: self.build_step(settings, device), settings, device)

    def name(self) -> str:
        return self.model

    def record(self, settings: Settings, fields: dict[str, Any]) -> LatencyRecord:
        hw = (self.height, self.width)
        return timed_record(LatencyRecord, settings, fields, batch=self.batch, model=self.model, res=label(hw),
                            height=hw[0], width=hw[1], mode=self.mode, task=self.task,
                            model_source=self.source)  # fmt: skip


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
