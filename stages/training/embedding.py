"""Embed videos with an encoder in eval mode, each rank a share, gathered on every rank."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Subset

from stages.clips.fixed_windows import EvaluationClips
from stages.runtime.progress import Progress
from stages.training.compute import Compute
from stages.training.distributed import gather_rows
from stages.training.loading import clip_loader, inference_workers, stop_workers


@torch.no_grad()
def embed_clips(encoder: torch.nn.Module, clips: EvaluationClips, *, feature: str,
                batch_size: int, workers: int | str, compute: Compute, progress: Progress,
                average: bool = True, amp: bool = False) -> np.ndarray:
    """(N, D) float32 features of the N videos of `clips`, averaged over each video's clips,
    or, with `average=False`, (N, clips_per_video, D) features of every clip.

    Rank r embeds items r, r + world, ...; the rows are gathered on every rank. `workers` is
    `auto` or an upper bound (see `inference_workers`). The forward passes run in float32 unless
    compute.embedding_precision is amp; `amp=True` (a classifier's test pass, which feeds no
    clustering or kNN) runs them under compute.amp's autocast.
    """
    device, distribution = compute.device, compute.distribution
    share = list(range(distribution.rank, len(clips), distribution.world))
    loader = clip_loader(Subset(clips, share), None, batch_size=batch_size,
                         workers=inference_workers(workers, device),
                         pin_memory=device.type == "cuda")
    was_training = encoder.training
    encoder.eval()
    rows = []
    if distribution.is_main:
        # The bar counts clips: say so when a video has several (and whose share it is)
        per_video = clips.clips_per_video
        clip_count = f" x {per_video} clips" if per_video > 1 else ""
        share_of = " (this rank's share)" if distribution.world > 1 else ""
        progress.start(f"embedding {len(clips.videos)} videos{clip_count}{share_of}",
                       len(share))
    try:
        for batch, _ in loader:
            with compute.autocast() if amp else compute.embedding_autocast():
                features = encoder.embed(compute.prepare_clips(batch), feature)
            rows.append(features.float())  # stays on the device: no wait for the GPU a batch
            if distribution.is_main:
                progress.advance(len(batch))
    finally:
        stop_workers(loader)
    if distribution.is_main:
        progress.finish()
    encoder.train(was_training)
    items = len(clips)
    dim = rows[0].shape[1] if rows else 1
    local_rows = torch.cat(rows).cpu() if rows else torch.zeros(0, dim)
    local_items = torch.tensor(share, dtype=torch.long)
    per_item = gather_rows(local_rows, local_items, items, distribution)
    per_clip = per_item.view(len(clips.videos), clips.clips_per_video, -1)
    per_video = per_clip.mean(dim=1) if average else per_clip
    return per_video.numpy().astype(np.float32)
