"""The `finetune` config section: end-to-end classification, defaults from the paper's code."""

from __future__ import annotations

from dataclasses import dataclass

from stages.runtime.choices import CROP_COUNTS
from stages.runtime.settings import loader_workers_setting, setting

# Keys a resumed fine-tuning run may change: its length, the test-time views and the learning
# rates (the usual cure after a divergence).
FINETUNE_RESUMABLE = ("epochs", "windows", "crops", "lr", "backbone_lr")


@dataclass
class FinetuneConfig:
    """finetune: end-to-end classification from a pretrained backbone (slic finetune)"""

    epochs: int = setting(150, "training epochs (lr x0.1 at epochs 60 and 100 of 150, the "
                          "paper's code, scaled to other lengths)", minimum=1)
    batch_size: int = setting(32, "clips per step, all ranks together", minimum=2)
    lr: float = setting(1e-3, "Adam learning rate of the classifier head", minimum=0.0)
    backbone_lr: float = setting(1e-4, "Adam learning rate of the backbone", minimum=0.0)
    weight_decay: float = setting(1e-3, "Adam weight decay", minimum=0.0)
    dropout: float = setting(0.9, "dropout before the classifier", minimum=0.0, maximum=0.99)
    val_fraction: float = setting(0.1, "share of training videos held out to choose best.pt, "
                                  "whole groups (UCF101's gXX) at a time, never the test split; "
                                  "0 trains on every training video and keeps the last epoch",
                                  minimum=0.0, maximum=0.5)
    windows: int = setting(10, "test windows per video", minimum=1)
    crops: int = setting(10, "test crops per window: 10 (the paper's protocol), or 3 or 1 "
                         "(faster)", choices=CROP_COUNTS)
    seed: int = setting(0, "seed of sampling, augmentation and dropout", minimum=0)
    workers: int | str = loader_workers_setting(
        "DataLoader worker processes; auto: on CUDA every core of this rank but "
        "one, on CPU up to 4 for training and the cores the model's threads "
        "leave free for test passes")
