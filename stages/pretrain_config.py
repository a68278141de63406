"""The `pretrain` config section: every SLIC training choice, defaults from the paper's code."""

from __future__ import annotations

from dataclasses import dataclass

from stages.models.registry import ARCHITECTURES
from stages.runtime.choices import (
    ANCHOR_MODES,
    FLOW_AUGMENT_MODES,
    FLOW_CHANNELS,
    FLOW_CONTRASTS,
    FLOW_REPLACEMENTS,
    LOGGER_NAMES,
    NEIGHBOUR_SEARCHES,
    PSEUDO_LABEL_SOURCES,
)
from stages.runtime.settings import loader_workers_setting, setting

# Keys a resumed run may change: how long, how often to evaluate, and the learning rate (the
# usual cure after a divergence).
RESUMABLE_CHANGES = ("epochs", "eval_every", "lr")


@dataclass
class PretrainConfig:
    """pretrain: SLIC self-supervised training with iterative clustering (slic pretrain)"""

    run_name: str | None = setting(None, "run folder name under <workspace>/<name>/runs (a "
                                   "name, not a path); null = <arch>-<pseudo_labels>",
                                   affects_output=False, folder_name=True)
    arch: str = setting("r3d_18", "backbone", choices=ARCHITECTURES)
    init: str | None = setting(None, "start from the weights of this local checkpoint "
                               "(null = random init; nothing is downloaded)")
    projection_hidden: int = setting(2048, "projection head hidden width", minimum=1)
    projection_dim: int = setting(128, "projection (embedding) size", minimum=1)
    clip_length: int = setting(16, "frames per clip (T)", minimum=1)
    stride: int = setting(1, "take every stride-th frame", minimum=1)
    crop_size: int = setting(128, "clip side in pixels after cropping (S)", minimum=16)
    anchor: str = setting("random", "anchor window start: random (uniform over every start "
                          "that leaves room for a disjoint same-video positive: every start of "
                          "a video three windows long), or start (frame 0, the official code)",
                          choices=ANCHOR_MODES)
    short_videos: str = setting(
        "skip", "training videos shorter than two windows: skip them (the official code; their "
        "same-video positive could not avoid the anchor's frames) or loop-pad them (kept, but "
        "that positive overlaps the anchor); the count is reported either way",
        choices=("skip", "loop"))
    min_crop_area: float = setting(0.25, "random resized crop: smallest area share",
                                   minimum=0.01, maximum=1.0)
    jitter: float = setting(0.5, "colour jitter strength (brightness, contrast, saturation)",
                            minimum=0.0, maximum=1.0)
    hue: float = setting(0.5, "colour jitter hue strength", minimum=0.0, maximum=0.5)
    p_alpha: float = setting(0.2, "probability that the positive comes from the anchor's own "
                             "video (else a cluster-mate)", minimum=0.0, maximum=1.0)
    multiview: bool = setting(True, "replace positives (and augmented anchors, see "
                              "flow_replaces) by optical flow with probability 1 - p_beta "
                              "(needs flow.h5)")
    p_beta: float = setting(0.75, "probability that a positive / augmented anchor stays RGB",
                            minimum=0.0, maximum=1.0)
    flow_channel: str = setting("u", "flow view: u (official), v or magnitude, replicated to "
                                "3 channels, or uvm (u, v and magnitude as the 3 channels: "
                                "vertical motion too)", choices=FLOW_CHANNELS)
    flow_contrast: str = setting(
        "stored", "flow view contrast: stored (as compute-flow quantised it, +-bound over 0..255: "
        "the official images, where slow motion is nearly flat gray) or clip (each view "
        "stretched around zero motion so its fastest 1% of pixels reach 3/4 of the range, gain "
        "1-16x)", choices=FLOW_CONTRASTS)
    flow_augment: str = setting(
        "consistent", "flow view augmentation: consistent (crop and flip only; a flip negates "
        "u) or official (also colour jitter, grayscale and blur, and u not negated on a flip, "
        "as the official code)", choices=FLOW_AUGMENT_MODES)
    colour_on: str = setting(
        "auto", "where colour jitter, grayscale and blur run: worker (the loader's processes), "
        "device (on the batch, on the GPU: the loader then only decodes, crops and flips; "
        "same draws, levels within rounding), auto (device on CUDA, worker on CPU)",
        choices=("auto", "worker", "device"), affects_output=False)
    flow_replaces: str = setting(
        "positive", "clips that may become the flow view: positive (the poster: only x+) or "
        "positive_and_augmented (the official code: aug(x) too, drawn independently)",
        choices=FLOW_REPLACEMENTS)
    margin: float = setting(0.2, "triplet margin m1 (cosine distance)", minimum=0.0)
    temporal_loss: bool = setting(True, "add the temporal discrimination loss")
    temporal_margin: float = setting(0.04, "temporal loss margin m2", minimum=0.0)
    temporal_weight: float = setting(1.0, "weight of the temporal loss", minimum=0.0)
    pseudo_labels: str = setting("finch", "clusters that pick positives and negatives: finch, "
                                 "kmeans, none (instance only) or labels (supervised)",
                                 choices=PSEUDO_LABEL_SOURCES)
    cluster_every: int = setting(5, "recluster every this many epochs (from the first round)",
                                 minimum=1)
    cluster_warmup_epochs: int = setting(
        0, "epochs of instance-only training (every video its own cluster) before the first "
        "clustering round; 0 clusters the random network at epoch 0, as the paper's code",
        minimum=0)
    partition: str = setting("finest", "FINCH partition used: finest (official), coarsest or "
                             "an index")
    num_clusters: int | None = setting(None, "clusters for kmeans (or an exact FINCH count)",
                                       minimum=2)
    cluster_nn: str = setting("auto", "FINCH first-neighbour search",
                              choices=NEIGHBOUR_SEARCHES)
    official_fallback_bug: bool = setting(False, "reproduce the official code's wrong index "
                                          "for the hardest-negative fallback")
    official_label_shift: bool = setting(False, "reproduce the official code's off-by-one "
                                         "read of the cluster labels")
    epochs: int = setting(600, "training epochs", minimum=1)
    batch_size: int = setting(32, "items (anchor, positive, augmented) per step, all ranks "
                              "together", minimum=2)
    mining_pool: int = setting(16, "items per mining group: triplets are mined, and the "
                               "triplet loss averaged, within groups of this many items of a "
                               "step, as on each GPU of the official code (16), so results do "
                               "not depend on the GPU count; a smaller batch is one group; 0: "
                               "each rank's whole batch (changes with the GPU count)",
                               minimum=0)
    lr: float = setting(0.1, "SGD learning rate", minimum=0.0)
    momentum: float = setting(0.5, "SGD momentum", minimum=0.0, maximum=1.0)
    weight_decay: float = setting(0.0, "SGD weight decay", minimum=0.0)
    schedule: str = setting("constant", "learning-rate schedule", choices=("constant", "cosine"))
    warmup_epochs: int = setting(0, "linear warm-up epochs", minimum=0)
    eval_every: int | None = setting(None, "test-to-train kNN recall every this many epochs "
                                     "(0 = only at the end; null = about 10 times a run: "
                                     "every max(1, epochs // 10))", minimum=0)
    best_by: str = setting("last", "best.pt: the last epoch, or the best val R@1 on a "
                           "validation share carved from train (never the test split)",
                           choices=("last", "val"))
    val_fraction: float = setting(0.1, "share of training videos held out when best_by is val, "
                                  "whole groups (UCF101's gXX) at a time",
                                  minimum=0.01, maximum=0.5)
    seed: int = setting(7, "seed of initialisation, sampling and mining", minimum=0)
    workers: int | str = loader_workers_setting(
        "DataLoader worker processes; auto: on CUDA every core of this rank but one, on CPU "
        "up to 4")
    logger: str = setting("none", "also log each epoch's metrics, the settings with the final "
                          "metrics and the final embeddings to: none or tensorboard (event "
                          "files in <run>/tensorboard; pip install 'slic[tensorboard]'); "
                          "metrics.jsonl stays the record", choices=LOGGER_NAMES,
                          affects_output=False)


def evaluation_interval(settings: PretrainConfig) -> int:
    """Epochs between kNN evaluations: eval_every, or (null) max(1, epochs // 10), so a
    short run's recall curve still has several points; 0 means only at the end."""
    if settings.eval_every is None:
        return max(1, settings.epochs // 10)
    return settings.eval_every
