"""The `retrieve` config section: nearest-neighbour retrieval as the SLIC paper evaluates it."""

from __future__ import annotations

from dataclasses import dataclass

from stages.runtime.choices import EMBEDDED_FEATURES
from stages.runtime.settings import loader_workers_setting, setting


@dataclass
class RetrieveConfig:
    """retrieve: test-to-train nearest-neighbour retrieval, R@k (slic retrieve)"""

    ks: str = setting("1,5,10,20,50", "the k of R@k, comma-separated")
    clips: int = setting(10, "evenly spaced clips per video, features averaged", minimum=1)
    feature: str = setting("projection", "projection head output (the paper) or the pooled "
                           "backbone feature", choices=EMBEDDED_FEATURES)
    clip_length: int | None = setting(None, "frames per clip; null = the checkpoint's",
                                      minimum=1)
    stride: int | None = setting(None, "frame stride; null = the checkpoint's", minimum=1)
    crop_size: int | None = setting(None, "centre crop side; null = the checkpoint's",
                                    minimum=16)
    gallery_queries: int = setting(12, "queries shown by --gallery", minimum=1)
    batch_size: int = setting(32, "clips per forward pass", minimum=1, affects_output=False)
    workers: int | str = loader_workers_setting(
        "DataLoader worker processes; auto: on CUDA every core of this rank but "
        "one, on CPU the cores the model's threads leave free")


def parse_ks(text: str) -> list[int]:
    """'1,5,10' -> [1, 5, 10]; raises ValueError on anything else."""
    values = sorted({int(part) for part in str(text).split(",") if part.strip()})
    if not values or values[0] < 1:
        raise ValueError(text)
    return values
