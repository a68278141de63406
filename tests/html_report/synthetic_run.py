"""A tiny run folder written straight through slic's artifact writers (no training): frames of
16 moving-square videos in 4 classes, metrics of 4 epochs, 2 clustering rounds, features,
a retrieval result and two classifier results, laid out as the stages lay them out."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import yaml

from stages.io.artifacts import (
    KIND_ASSIGNMENTS,
    KIND_FEATURES,
    KIND_FRAMES,
    KIND_RETRIEVAL,
    Assignments,
    ImageStreamWriter,
    Provenance,
    RetrievalTable,
    StoredFeatures,
    VideoTable,
    write_artifact,
    write_assignment_rounds,
    write_failures,
    write_features,
    write_provenance,
    write_retrieval,
    write_video_table,
)
from stages.io.images import encode_image

CLASSES = ["Slide", "Rise", "Fall", "Spin"]
TRAIN_PER_CLASS, TEST_PER_CLASS, FRAMES = 3, 1, 12
PROVENANCE = Provenance("slic pretrain --run-name tiny", {"pretrain": {"arch": "r3d_tiny"}},
                        "0.1.0", [{"path": "frames.h5", "size": 1, "checksum": "abc"}],
                        "2026-01-01T00:00:00+00:00", "2026-01-01T00:01:00+00:00")
RECORDS = [
    {"epoch": 0, "loss": 0.40, "triplet_loss": 0.30, "temporal_loss": 0.10, "lr": 0.1,
     "positive_fp_rate": 0.5, "negative_fn_rate": 0.1, "seconds": 2.0, "mean_cosine": 0.9,
     "novel_metric": 3.0},
    {"epoch": 1, "num_clusters": 6, "nmi": 0.3, "ami": 0.1, "loss": 0.30, "r1": 0.25,
     "r5": 0.75, "lr": 0.1, "positive_fp_rate": 0.4, "negative_fn_rate": 0.1,
     "seconds": 2.0, "mean_cosine": 0.8, "novel_metric": 2.0},
    {"epoch": 2, "loss": 0.20, "triplet_loss": 0.15, "temporal_loss": 0.05, "lr": 0.1,
     "r1": 0.5, "r5": 1.0, "seconds": 2.0, "mean_cosine": 0.7, "positive_fp_rate": None},
    {"epoch": 3, "final": True, "num_clusters": 4, "nmi": 0.6, "ami": 0.4},
]


def _clip(label: int, seed: int) -> np.ndarray:
    """(FRAMES, 48, 64, 3) uint8: a square moving in the class's direction."""
    rng = np.random.default_rng(seed)
    background = rng.integers(40, 200, 3)
    frames = np.empty((FRAMES, 48, 64, 3), np.uint8)
    frames[:] = background
    for t in range(FRAMES):
        x, y = 24, 18
        if label == 0:
            x = 4 + 4 * t
        elif label == 1:
            y = 36 - 3 * t
        elif label == 2:
            y = 3 * t
        else:
            x, y = 24 + int(10 * np.cos(t)), 18 + int(10 * np.sin(t))
        frames[t, max(y, 0):y + 10, max(x, 0):x + 10] = (255, 230, 0)
    return frames


def _videos() -> list[dict]:
    videos = []
    for label, name in enumerate(CLASSES):
        for group in range(TRAIN_PER_CLASS + TEST_PER_CLASS):
            videos.append({"video_id": f"v_{name}_g{group:02d}", "label": label, "name": name,
                           "split": "train" if group < TRAIN_PER_CLASS else "test"})
    return videos


def _write_frames(path: Path, videos: list[dict]) -> None:
    rows, memberships = [], []
    with write_artifact(path, KIND_FRAMES, "synthetic") as h5:
        digest = hashlib.blake2b(digest_size=16)
        stream = ImageStreamWriter(h5, "images", "jpeg", 3, digest)
        for index, video in enumerate(videos):
            encoded = [encode_image(frame, "jpeg", 90) for frame in _clip(video["label"], index)]
            offsets = np.concatenate([[0], np.cumsum([len(e) for e in encoded])])
            first = stream.append(np.concatenate(encoded), offsets)
            rows.append({"video_id": video["video_id"], "class_name": video["name"],
                         "relpath": f"{video['name']}/{video['video_id']}.avi",
                         "label": video["label"], "frame_count": FRAMES, "fps": 25.0,
                         "src_fps": 25.0, "src_width": 64, "src_height": 48, "width": 64,
                         "height": 48, "file_size": 0, "checksum": "", "first_image": first,
                         "num_images": FRAMES})
            memberships.append((1 if video["split"] == "train" else 2,))
        write_video_table(h5, VideoTable.from_rows(rows, CLASSES, ["split1"], memberships))
        write_failures(h5, [], [])
        h5.attrs["content_digest"] = digest.hexdigest()
        write_provenance(h5, PROVENANCE)


def _features(videos: list[dict], seed: int) -> np.ndarray:
    """(N, 16) float32: class centres plus noise, so neighbours mostly share a class."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(CLASSES), 16))
    labels = np.array([v["label"] for v in videos])
    return (centres[labels] + 0.6 * rng.normal(size=(len(videos), 16))).astype(np.float32)


def _write_features(path: Path, videos: list[dict], features: np.ndarray,
                    source: dict) -> None:
    stored = StoredFeatures(features, np.array([v["video_id"] for v in videos], dtype=object),
                            np.array([v["label"] for v in videos]),
                            np.array([v["split"] for v in videos], dtype=object), CLASSES,
                            "projection", source)
    with write_artifact(path, KIND_FEATURES, "features") as h5:
        write_features(h5, stored)
        write_provenance(h5, PROVENANCE)


def _assignments(videos: list[dict], chosen: list[int]) -> Assignments:
    labels = np.array([v["label"] for v in videos])
    partition = np.array(chosen, dtype=np.int64)
    return Assignments(partition[None], partition, "partition 0",
                       np.array([v["video_id"] for v in videos], dtype=object), labels,
                       [{"nmi": 0.5, "ami": 0.3, "ari": 0.2, "purity": 0.75,
                         "pair_false_positive_rate": 0.2}] * 2, "finch")


def _write_results(folder: Path, stage: str, protocol: str | None, top1: float) -> None:
    folder.mkdir(parents=True)
    confusion = [[3, 0, 0, 0], [0, 2, 1, 0], [0, 1, 2, 0], [1, 0, 0, 2]]
    per_class = [{"class": name, "videos": 3, "accuracy": confusion[i][i] / 3}
                 for i, name in enumerate(CLASSES)]
    results = {"stage": stage, "top1": top1, "top5": 1.0, "best_epoch": 1, "num_test": 12,
               "per_class": per_class, "confusion": confusion, "command": "slic demo"}
    if protocol:
        results["protocol"] = protocol
    (folder / "results.json").write_text(json.dumps(results))


def make_run_folder(root: Path) -> Path:
    """Write the dataset folder under `root`; returns its run folder `runs/tiny`."""
    videos = _videos()
    train = [v for v in videos if v["split"] == "train"]
    dataset = root / "synthetic"
    _write_frames(dataset / "frames.h5", videos)
    run = dataset / "runs" / "tiny"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(
        {"data": {"dataset": "synthetic"}, "pretrain": {"arch": "r3d_tiny", "lr": 1e-4,
                                                        "epochs": 3}}))
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    # Round 1: six clusters (two per class for Slide and Rise); the final round merges them.
    first = [0, 0, 1, 2, 2, 3, 4, 4, 4, 5, 5, 5]
    final = [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    with write_artifact(run / "assignments.h5", KIND_ASSIGNMENTS, "rounds") as h5:
        write_assignment_rounds(h5, [(1, _assignments(train, first)),
                                     (3, _assignments(train, final))])
        write_provenance(h5, PROVENANCE)
    _write_features(run / "features.h5", train, _features(train, 1), {"epoch": 3})
    retrieval = run / "retrieval" / "synthetic-projection-0123abcd"
    features = _features(videos, 2)
    _write_features(retrieval / "features.h5", videos, features,
                    {"frames": str(dataset / "frames.h5"), "clips": 10, "feature": "projection"})
    queries = [i for i, v in enumerate(videos) if v["split"] == "test"]
    gallery = [i for i, v in enumerate(videos) if v["split"] == "train"]
    similarities = features[queries] @ features[gallery].T
    neighbours = np.argsort(-similarities, axis=1)[:, :5]
    labels = np.array([v["label"] for v in videos])
    ids = np.array([v["video_id"] for v in videos], dtype=object)
    hits = labels[gallery][neighbours] == labels[queries][:, None]
    table = RetrievalTable(neighbours, np.take_along_axis(similarities, neighbours, 1),
                           ids[queries], labels[queries], ids[gallery], labels[gallery],
                           {1: float(hits[:, 0].mean()), 5: float(hits.any(axis=1).mean())},
                           [{"class": name, "queries": 1} for name in CLASSES])
    with write_artifact(retrieval / "retrieval.h5", KIND_RETRIEVAL, "retrieval") as h5:
        write_retrieval(h5, table)
        write_provenance(h5, PROVENANCE)
    os.symlink(retrieval.name, run / "retrieval" / "synthetic-projection")
    _write_results(run / "finetune", "finetune", None, 0.75)
    (run / "finetune" / "metrics.jsonl").write_text(
        json.dumps({"epoch": 0, "loss": 1.3, "val_top1": 0.5}) + "\n")
    _write_results(run / "linear-probe-cached-4567cdef", "linear-probe", "cached", 0.5)
    os.symlink("linear-probe-cached-4567cdef", run / "linear-probe-cached")
    return run
