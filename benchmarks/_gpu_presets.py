"""The sizes of `gpu_check.py`: what `prepare` makes and what `run` trains on it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    """The sizes of one check: the data `prepare` makes and what `run` trains on it."""

    arch: str
    clip_length: int
    crop_size: int
    batch_size: int
    dataset: tuple[str, ...]  # make_dataset.<key>=<value> settings of prepare
    short_side: int  # of the stored frames
    flow_resolution: str  # compute_flow.resolution of (d)'s TV-L1 run
    # flowcheck/frames.h5 holds the first video of each of these classes (None: every class).
    # TV-L1's CPU time a pair depends on the motion: at 48 px a Rise pair takes 0.13 s, a
    # Fall pair 2.2 s (and a lower frame rate, larger motions, costs more, not less).
    flowcheck_classes: tuple[str, ...] | None
    step_batches: int  # batches on the device that (a) cycles through
    steps: int  # timed steps of each loop of (a), a repeat
    repeats: int
    loader_batches: int  # batches of (b)'s timed epoch


PRESETS = {
    "gpu": Preset(arch="r3d_18", clip_length=16, crop_size=128, batch_size=32,
                  dataset=("groups_per_class=10", "min_seconds=0.7", "max_seconds=0.8"),
                  short_side=128, flow_resolution="reference", flowcheck_classes=None,
                  step_batches=3, steps=10, repeats=3, loader_batches=16),
    "smoke": Preset(arch="r3d_tiny", clip_length=4, crop_size=32, batch_size=8,
                    dataset=("num_classes=4", "groups_per_class=3", "clips_per_group=2",
                             "test_groups=1", "min_size=64", "max_size=96",
                             "min_seconds=0.8", "max_seconds=1.2", "seed=3"),
                    short_side=48, flow_resolution="stored", flowcheck_classes=("Rise",),
                    step_batches=2, steps=3, repeats=3, loader_batches=4),
}
