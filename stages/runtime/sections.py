"""Config sections several stages share: where the workspace is, which dataset to read, and
where and how the learning stages compute (one device policy)."""

from __future__ import annotations

from dataclasses import dataclass

from stages.runtime.choices import (
    AMP_MODES,
    CHANNELS_LAST_MODES,
    DATASET_LAYOUTS,
    EMBEDDING_PRECISIONS,
    LABEL_SOURCES,
)
from stages.runtime.settings import setting


@dataclass
class WorkspaceConfig:
    """workspace: where stages keep their artifacts so they chain without repeating paths"""

    root: str = setting(
        "slic-work", "folder holding <name>/frames.h5, <name>/flow.h5, <name>/runs/"
    )


@dataclass
class DataConfig:
    """data: the dataset, read straight from its official layout"""

    dataset: str = setting("ucf101", "dataset layout to read", choices=DATASET_LAYOUTS)
    root: str | None = setting(None, "folder holding the videos (and split lists) of the dataset")
    name: str | None = setting(
        None, "workspace folder for this dataset (a name, not a path); null uses the dataset "
        "name", folder_name=True)
    labels: str = setting(
        "auto", "where classes come from: auto (the layout's; for folder, the root's sub-folders "
        "when no video sits directly in the root, else none), folders (folder: the root's "
        "sub-folders, required), none (every video unlabelled and in the train split)",
        choices=LABEL_SOURCES)
    split: int = setting(1, "official split used by training and evaluation", choices=(1, 2, 3))
    test_ratio: float = setting(
        0.3, "folder datasets without train.txt/test.txt: share of each class held out for test",
        minimum=0.0, maximum=0.9,
    )
    split_seed: int = setting(0, "folder datasets without lists: seed of the stratified split",
                              minimum=0)


@dataclass
class ComputeConfig:
    """compute: device, mixed precision and torchrun settings of pretrain, finetune,
    linear-probe and retrieve"""

    device: str = setting("auto", "auto (CUDA when present, else CPU), cpu, cuda or cuda:N; "
                          "asking for CUDA where there is none is an error, never a fallback",
                          affects_output=False)
    amp: str = setting("auto", "mixed precision: auto (bf16 on GPUs that compute it natively, "
                       "compute capability 8.0 on; fp16 before; off on CPU), bf16, fp16 (with "
                       "a gradient scaler) or off",
                       choices=AMP_MODES, affects_output=False)
    channels_last: str = setting("auto", "channels-last 3D memory format: auto (on CUDA), on "
                                 "or off", choices=CHANNELS_LAST_MODES, affects_output=False)
    timeout_minutes: int = setting(60, "torchrun process-group timeout: long enough for a "
                                   "clustering round on rank 0 while the other ranks wait",
                                   minimum=1, affects_output=False)
    deterministic: bool = setting(False, "deterministic CUDA kernels (cuDNN autotuning off): "
                                  "slower, and a resume on CUDA then repeats an uninterrupted "
                                  "run's numbers; off, cuDNN picks its fastest algorithms",
                                  affects_output=False)
    embedding_precision: str = setting(
        "fp32", "embedding passes that feed clustering, kNN recall and features.h5: fp32 (as "
        "the official code), or amp (compute.amp's autocast, faster; FINCH's first "
        "neighbours may flip on near-ties)", choices=EMBEDDING_PRECISIONS, affects_output=False)
