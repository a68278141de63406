"""The training spine every learning stage shares: resume or start clean, the epoch loop with
its divergence guard, atomic checkpoints, and rank-0-only writing.

A stage brings a `TrainingTask`: what its batches are, what the loss of one batch is, what
happens around an epoch (a clustering round, a validation pass) and what extra state its
checkpoint holds. The `Trainer` owns the model, optimiser, schedule and loss scaler, runs them
on the `Compute` of the job (device, autocast, channels-last, DDP), and writes checkpoint.pt.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from stages import __version__
from stages.io.checkpoint import load_checkpoint, save_checkpoint
from stages.io.run_folder import RunFolder
from stages.runtime.errors import ConfigError, TrainingDiverged
from stages.runtime.progress import Progress
from stages.training import distributed as dist_tools
from stages.training.compute import Compute
from stages.training.monitor import MetricsLog
from stages.training.schedule import set_base_learning_rates


@dataclass
class StepResult:
    """One batch's loss to minimise and the stage's named statistics of that batch (0-dim
    tensors on the device, summed over steps there and over ranks once an epoch by the
    trainer; the same names every step)."""

    loss: torch.Tensor
    stats: dict[str, torch.Tensor] = field(default_factory=dict)


class TrainingTask(Protocol):
    """What a stage brings to the shared epoch loop."""

    def batches(self, epoch: int) -> Iterable[Any]:
        """This rank's batches of `epoch` (a DataLoader with a seeded per-epoch sampler)."""

    def step(self, model: nn.Module, batch: Any, epoch: int, step: int) -> StepResult:
        """The loss of one batch; `model` is the (DDP-wrapped) model. The task runs its
        forward pass in the compute's autocast context and its loss in float32."""

    def before_epoch(self, epoch: int) -> dict[str, Any]:
        """Work before an epoch (a clustering round); returns figures for the epoch's record."""

    def after_epoch(self, epoch: int, record: dict[str, Any]) -> dict[str, Any]:
        """Work after an epoch's steps (evaluation, best.pt); returns figures for the record."""

    def summarise(self, totals: dict[str, float], steps: int, seconds: float
                  ) -> dict[str, Any]:
        """The epoch's record from the statistics summed over steps and ranks ("loss" is
        the summed loss); the trainer adds the lr of the optimiser's last parameter group."""

    def extra_state(self) -> dict[str, Any]:
        """Checkpoint entries of the stage's own (pseudo-labels, best epoch)."""

    def restore(self, state: dict[str, Any]) -> None:
        """Take back `extra_state` from a checkpoint being resumed."""

    def epoch_written(self, records: list[dict[str, Any]]) -> None:
        """Rank 0, after each epoch's checkpoint and record are written (plots)."""

    def close(self) -> None:
        """Stop the workers of the task's loader: the epochs are over, or stopped by an
        error (`stages.training.loading.stop_workers`)."""


@dataclass
class Trainer:
    """Model, optimiser, per-step schedule and scaler of one run, and where it checkpoints.

    `config` holds the stage's output-relevant settings; a resume may change only the keys in
    `resumable` (and the learning rates, always). `model` is the bare module: checkpoints hold
    its weights; `wrapped` (DDP under torchrun) runs the steps.
    """

    stage: str
    compute: Compute
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    learning_rates: list[float]
    config: dict[str, Any]
    resumable: tuple[str, ...]
    folder: Path
    scaler: torch.amp.GradScaler = field(init=False)
    wrapped: nn.Module = field(init=False)

    def __post_init__(self) -> None:
        self.scaler = self.compute.grad_scaler()
        self.wrapped = self.model
        if self.compute.distribution.active and any(p.requires_grad
                                                    for p in self.model.parameters()):
            device = self.compute.device
            self.wrapped = DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None)

    @property
    def section(self) -> str:
        """The stage's config section (linear-probe -> linear_probe)."""
        return self.stage.replace("-", "_")

    @property
    def checkpoint(self) -> Path:
        """checkpoint.pt in the run's folder."""
        return RunFolder(self.folder).checkpoint

    @property
    def is_main(self) -> bool:
        """Whether this process is rank 0, the one that writes."""
        return self.compute.distribution.is_main

    def begin(self, resume: bool, force: bool, outputs: Sequence[Path],
              progress: Progress) -> dict[str, Any] | None:
        """Load the checkpoint to resume (returned, already applied to the model, optimiser,
        schedule and scaler), or make sure a new run starts clean: rank 0 removes `outputs`
        of an earlier run when `force` is given. A finished run asked for again with the same
        settings is returned as if resumed, so that the stage can say it is up to date."""
        # --force starts over whatever the folder holds (even a damaged checkpoint).
        found = (load_checkpoint(self.checkpoint) if self.checkpoint.is_file() and not force
                 else None)
        self._check_ranks_see(found)
        if found is not None and not resume:
            changed = self._changes_from(found.get("config", {}))
            if not changed and self._finished(found):
                self._restore(found)
                return found
            made = (f" made with other settings ({'; '.join(changed)})" if changed
                    else " of a run that has not finished")
            raise ConfigError(f"{self.folder} already holds a {self.stage} checkpoint{made}; "
                              "pass --resume to continue it, or --force to start over")
        state = None
        if resume and found is not None:
            state = found
            self._check_resumable(state.get("config", {}))
            self._restore(state)
            progress.message(f"resuming {self.folder} at epoch {state['epoch']}")
        elif resume:
            progress.message(f"no checkpoint in {self.folder}; starting a new run")
        if state is None and self.is_main:
            for path in (self.checkpoint, *outputs):
                path.unlink(missing_ok=True)
        dist_tools.barrier(self.compute.distribution)
        return state

    def _check_ranks_see(self, found: dict[str, Any] | None) -> None:
        """Stop every rank with one line unless all of them see the same checkpoint: a node
        that cannot see the run folder would start at epoch 0 while the others resume, and
        the job would hang in its first collective until the timeout."""
        seen = "none" if found is None else f"epoch {found.get('epoch')}"
        if not dist_tools.all_agree(seen, self.compute.distribution):
            raise ConfigError(f"the ranks of this job do not all see the same {self.checkpoint} "
                              f"(rank {self.compute.distribution.rank} sees {seen}): put the "
                              "workspace on a filesystem every node shares", every_rank=True)

    def _changes_from(self, stored: dict[str, Any]) -> list[str]:
        """`<section>.<key> was A, now B` for each setting that differs from `stored`."""
        keys = sorted(set(stored) | set(self.config))
        return [f"{self.section}.{key} was {stored.get(key)!r}, now {self.config.get(key)!r}"
                for key in keys if stored.get(key) != self.config.get(key)]

    def _finished(self, state: dict[str, Any]) -> bool:
        """Whether `state` is the checkpoint of a run that trained all its epochs and, where
        the stage marks it, finished its last work."""
        epochs = self.config.get("epochs")
        return (isinstance(epochs, int) and int(state.get("epoch", -1)) >= epochs
                and bool(state.get("finished", True)))

    def _check_resumable(self, stored: dict[str, Any]) -> None:
        for key, value in stored.items():
            if key in self.resumable or key not in self.config or self.config[key] == value:
                continue
            raise ConfigError(f"cannot resume {self.checkpoint}: {self.stage}.{key} was "
                              f"{value!r} and is now {self.config[key]!r}; restore it or "
                              "start over (--force)")

    def _restore(self, state: dict[str, Any]) -> None:
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
            torch.set_rng_state(state["torch_rng"])
        except (KeyError, RuntimeError, TypeError, ValueError) as error:
            raise ConfigError(f"cannot resume {self.checkpoint}: it does not match this "
                              f"{self.stage} run ({str(error).splitlines()[0]}); start over "
                              "with --force") from None
        set_base_learning_rates(self.scheduler, self.learning_rates)

    def state(self, next_epoch: int, **extra: Any) -> dict[str, Any]:
        """Everything needed to continue after `next_epoch - 1` (tensors and plain values)."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "epoch": next_epoch, "torch_rng": torch.get_rng_state(),
                "config": self.config, "slic_version": __version__, **extra}

    def save(self, next_epoch: int, **extra: Any) -> None:
        """Write checkpoint.pt atomically, to continue at `next_epoch` with the task's `extra`
        entries (rank 0 only)."""
        if self.is_main:
            save_checkpoint(self.state(next_epoch, **extra), self.checkpoint)

    def fit(self, task: TrainingTask, start: int, epochs: int, log: MetricsLog,
            progress: Progress) -> None:
        """Epochs `start` .. `epochs - 1`: before, steps, after; then checkpoint and record.
        The task's loader workers are stopped when the epochs end, however they end."""
        try:
            for epoch in range(start, epochs):
                record: dict[str, Any] = {"epoch": epoch, **task.before_epoch(epoch)}
                record.update(self.train_epoch(task, epoch, epochs, progress))
                record.update(task.after_epoch(epoch, record))
                self.check_finite(epoch)
                if self.compute.distribution.active:
                    record["ranks_agree"] = dist_tools.all_agree(
                        parameters_digest(self.model), self.compute.distribution)
                if self.is_main:
                    self.save(epoch + 1, **task.extra_state())
                    log.append(record)
                    progress.row({"table": self.stage, **record})
                    task.epoch_written(log.records())
                dist_tools.barrier(self.compute.distribution)
        finally:
            task.close()

    def check_finite(self, epoch: int) -> None:
        """Stop before a checkpoint would keep non-finite weights (the last good one stays)."""
        bad = [name for name, p in self.model.named_parameters()
               if not bool(torch.isfinite(p.detach()).all())]
        if bad:
            raise TrainingDiverged(
                f"{self.stage} weights became NaN/Inf during epoch {epoch} (first: {bad[0]}); "
                f"the last good checkpoint is kept in {self.folder}; lower {self.section}.lr "
                f"(now {self.learning_rates[-1]}) and pass --resume")

    def train_epoch(self, task: TrainingTask, epoch: int, epochs: int,
                    progress: Progress) -> dict[str, Any]:
        """One pass over the task's batches; stops with TrainingDiverged on a NaN/Inf loss
        (before the optimiser step that would write it into the weights).

        The statistics stay on the device, summed there step by step and over the ranks once
        at the end of the epoch; a step waits for the device only to read whether its loss is
        finite, after its backward pass has been queued."""
        distribution = self.compute.distribution
        self.model.train()
        batches = task.batches(epoch)
        steps = len(batches) if hasattr(batches, "__len__") else 0
        names: list[str] = []
        totals: torch.Tensor | None = None
        if self.compute.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.compute.device)
        clock = time.perf_counter()
        if self.is_main:
            progress.start(f"{self.stage} epoch {epoch + 1}/{epochs}", steps)
        for step, batch in enumerate(batches):
            outcome = task.step(self.wrapped, batch, epoch, step)
            names = ["loss", *outcome.stats]
            loss = outcome.loss.detach().float()
            values = torch.stack([loss, *(value.detach().float().reshape(())
                                          for value in outcome.stats.values())])
            totals = values.double() if totals is None else totals + values.double()
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(outcome.loss).backward()
            self._stop_unless_finite(loss, epoch, step)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            if self.is_main:
                progress.advance()
        if self.is_main:
            progress.finish()
        summed = (dist_tools.sum_across(totals.cpu(), distribution).tolist()
                  if totals is not None else [])
        record = task.summarise(dict(zip(names, summed)), steps or 1,
                                time.perf_counter() - clock)
        record["lr"] = self.optimizer.param_groups[-1]["lr"]
        if self.compute.device.type == "cuda":
            record["gpu_peak_gib"] = torch.cuda.max_memory_allocated(self.compute.device) / 2**30
        return record

    def _stop_unless_finite(self, loss: torch.Tensor, epoch: int, step: int) -> None:
        """TrainingDiverged on every rank when any rank's loss is NaN/Inf (the ranks agree, so
        they stop together)."""
        bad = (~torch.isfinite(loss)).double().reshape(1).cpu()
        if dist_tools.sum_across(bad, self.compute.distribution).item() > 0:
            raise TrainingDiverged(
                f"{self.stage} loss became {loss.item()} at epoch {epoch} step {step}; "
                f"the last good checkpoint is kept in {self.folder}; lower {self.section}.lr "
                f"(now {self.learning_rates[-1]}) and pass --resume", every_rank=True)


def parameters_digest(model: nn.Module) -> str:
    """A hash of every parameter's bytes: DDP ranks that agree have equal digests. (Buffers
    are left out: each rank updates its BatchNorm statistics on its own batches.)"""
    digest = hashlib.blake2b(digest_size=16)
    for name, parameter in model.named_parameters():
        digest.update(name.encode())
        digest.update(parameter.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()
