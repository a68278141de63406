"""Embed videos with an encoder in eval mode, each rank a share, gathered on every rank."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from stages.clips.fixed_windows import EvaluationClips
from stages.runtime.progress import Progress
from stages.training.compute import Compute, usable_cores
from stages.training.distributed import gather_rows


def configure_worker(worker_id: int) -> None:
    """DataLoader workers each use one thread: the main process needs the cores for the model."""
    torch.set_num_threads(1)


def inference_workers(requested: int, device: torch.device) -> int:
    """Loader workers for an inference pass: on CPU, only cores the model's threads leave free.

    On CPU the model already runs on every core it was given; workers beside it only take
    turns with it (on 2 cores, 2 workers made embedding 0.75-0.79x a bare model loop, clips
    made in-process between batches 0.91-0.93x: benchmarks/RESULTS.md).
    """
    if device.type != "cpu":
        return requested
    return max(0, min(requested, usable_cores() - torch.get_num_threads()))


@torch.no_grad()
def embed_clips(encoder: torch.nn.Module, clips: EvaluationClips, *, feature: str,
                batch_size: int, workers: int, compute: Compute, progress: Progress,
                average: bool = True, amp: bool = False) -> np.ndarray:
    """(N, D) float32 features of the N videos of `clips`, averaged over each video's clips,
    or, with `average=False`, (N, clips_per_video, D) features of every clip.

    Rank r embeds items r, r + world, ...; the rows are gathered on every rank. `workers` is
    an upper bound (see `inference_workers`). The forward passes run in float32 unless
    compute.embedding_precision is amp; `amp=True` (a classifier's test pass, which feeds no
    clustering or kNN) runs them under compute.amp's autocast.
    """
    device, distribution = compute.device, compute.distribution
    share = list(range(distribution.rank, len(clips), distribution.world))
    loader = DataLoader(Subset(clips, share), batch_size=batch_size,
                        num_workers=inference_workers(workers, device),
                        worker_init_fn=configure_worker, pin_memory=device.type == "cuda")
    was_training = encoder.training
    encoder.eval()
    rows, positions = [], []
    if distribution.is_main:
        # The bar counts clips: say so when a video has several (and whose share it is)
        per_video = clips.clips_per_video
        clip_count = f" x {per_video} clips" if per_video > 1 else ""
        share_of = " (this rank's share)" if distribution.world > 1 else ""
        progress.start(f"embedding {len(clips.videos)} videos{clip_count}{share_of}",
                       len(share))
    for batch, owners in loader:
        with compute.autocast() if amp else compute.embedding_autocast():
            features = encoder.embed(compute.to_device(batch), feature)
        rows.append(features.float().cpu())
        positions.append(owners)
        if distribution.is_main:
            progress.advance(len(batch))
    if distribution.is_main:
        progress.finish()
    encoder.train(was_training)
    items = len(clips)
    dim = rows[0].shape[1] if rows else 1
    local_rows = torch.cat(rows) if rows else torch.zeros(0, dim)
    local_items = torch.tensor(share, dtype=torch.long)
    per_item = gather_rows(local_rows, local_items, items, distribution)
    per_clip = per_item.view(len(clips.videos), clips.clips_per_video, -1)
    per_video = per_clip.mean(dim=1) if average else per_clip
    return per_video.numpy().astype(np.float32)
