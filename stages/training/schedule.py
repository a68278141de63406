"""Learning-rate schedules of every trainer, stepped once per optimiser step.

One per-step schedule serves all stages: a constant or cosine lr with linear warm-up
(pretraining) and step drops at given epochs (fine-tuning and the linear probe, x0.1 at
epochs 60 and 100 of 150 in the paper's code).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

SCHEDULES = ("constant", "cosine")


def paper_drop_epochs(epochs: int) -> list[int]:
    """The paper's code's drops (epochs 60 and 100 of 150), scaled to a run of `epochs`."""
    return sorted({max(1, round(epochs * 60 / 150)), max(1, round(epochs * 100 / 150))})


def lr_factor(epochs: int, steps_per_epoch: int, kind: str = "constant",
              warmup_epochs: int = 0, drop_epochs: Sequence[int] = (),
              drop_factor: float = 0.1) -> Callable[[int], float]:
    """The multiplier of the base lr after `step` optimiser steps."""
    steps_per_epoch = max(steps_per_epoch, 1)
    total, warmup = epochs * steps_per_epoch, warmup_epochs * steps_per_epoch
    drops = [epoch * steps_per_epoch for epoch in drop_epochs]

    def factor(step: int) -> float:
        value = drop_factor ** sum(step >= drop for drop in drops)
        if step < warmup:
            return value * (step + 1) / warmup
        if kind == "cosine":
            value *= 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))
        return value

    return factor


def build_schedule(optimizer: torch.optim.Optimizer, factor: Callable[[int], float]
                   ) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR scaling each group's base lr by `factor(step)`, stepped per optimiser step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def set_base_learning_rates(scheduler: torch.optim.lr_scheduler.LambdaLR,
                            base: Sequence[float]) -> None:
    """Use the configured lr of each group after loading an optimiser and schedule state (a
    resumed run may lower it, the usual cure after a divergence)."""
    optimizer = scheduler.optimizer
    scheduler.base_lrs = list(base)
    for group, lr, rule in zip(optimizer.param_groups, base, scheduler.lr_lambdas):
        group["initial_lr"], group["lr"] = lr, lr * rule(scheduler.last_epoch)
