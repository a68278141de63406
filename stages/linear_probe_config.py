"""The `linear_probe` config section: a linear classifier on frozen backbone features."""

from __future__ import annotations

from dataclasses import dataclass

from stages.settings import setting


@dataclass
class LinearProbeConfig:
    """linear_probe: a linear classifier on frozen backbone features (slic linear-probe)"""

    train_clips: int = setting(5, "evenly spaced clips per training video, each a sample",
                               minimum=1)
    clips: int = setting(10, "evenly spaced test clips per video; softmax averaged", minimum=1)
    epochs: int = setting(100, "passes over the cached training features", minimum=1)
    lr: float = setting(1e-3, "Adam learning rate", minimum=0.0)
    weight_decay: float = setting(1e-3, "Adam weight decay", minimum=0.0)
    batch_size: int = setting(256, "features per classifier step", minimum=1)
    seed: int = setting(0, "seed of the classifier's initialisation and batches", minimum=0)
    workers: int = setting(2, "DataLoader worker processes (on CPU at most the "
                          "cores the model's threads leave free)",
                          minimum=0, affects_output=False)
