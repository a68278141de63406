"""The `linear_probe` config section: a linear classifier on a frozen backbone."""

from __future__ import annotations

from dataclasses import dataclass

from stages.runtime.choices import CROP_COUNTS
from stages.runtime.settings import loader_workers_setting, setting

PROBE_PROTOCOLS = ("windows", "cached")

# Keys a resumed probe may change: its length, the test-time views and the learning rate.
LINEAR_PROBE_RESUMABLE = ("epochs", "windows", "crops", "lr")


@dataclass
class LinearProbeConfig:
    """linear_probe: a linear classifier on a frozen backbone (slic linear-probe)"""

    protocol: str = setting("windows", "windows: the paper's code (CoCLR's protocol), random "
                            "augmented windows through the frozen model in eval mode, lr x0.1 "
                            "at epochs 60 and 100 of 150, best epoch on a validation share; "
                            "cached: fast, the classifier trains on cached features of "
                            "train_clips evenly spaced, centre-cropped clips a video, no "
                            "augmentation",
                            choices=PROBE_PROTOCOLS)
    epochs: int = setting(150, "classifier epochs", minimum=1)
    batch_size: int = setting(32, "clips (or cached features) per step, all ranks together",
                              minimum=1)
    lr: float = setting(1e-3, "Adam learning rate", minimum=0.0)
    weight_decay: float = setting(1e-3, "Adam weight decay", minimum=0.0)
    val_fraction: float = setting(0.1, "windows protocol: share of training videos held out to "
                                  "choose the best epoch, whole groups (UCF101's gXX) at a time, "
                                  "never the test split; 0 trains on every training video and "
                                  "keeps the last epoch", minimum=0.0, maximum=0.5)
    windows: int = setting(10, "test windows per video; softmax averaged", minimum=1)
    crops: int = setting(10, "windows protocol: test crops per window, 1, 3 or 10 (cached: "
                         "the centre crop)", choices=CROP_COUNTS)
    train_clips: int = setting(5, "cached protocol: evenly spaced clips per training video, "
                               "each a sample", minimum=1)
    seed: int = setting(0, "seed of the classifier's initialisation, clips and batches",
                        minimum=0)
    workers: int | str = loader_workers_setting(
        "DataLoader worker processes; auto: on CUDA every core of this rank but "
        "one; on CPU up to 4 for training, and the cores the model's threads "
        "leave free for embedding passes")
