"""One small, valid file of every kind slic reads, for the battery to damage: each HDF5
artifact, a checkpoint, a .npz of features, a config, a results.json."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from stages.io.artifacts import (
    FLOW_STREAMS,
    KIND_ASSIGNMENTS,
    KIND_FEATURES,
    KIND_FLOW,
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
    write_flow_settings,
    write_provenance,
    write_retrieval,
    write_video_table,
)
from stages.io.staging import pack_images
from tests.helpers import write_tiny_frames

PROVENANCE = Provenance("tests", {"cluster": {"method": "finch"}}, "test", [], "0")
IDS = np.array([f"v{i}" for i in range(6)], dtype=object)
LABELS = np.array([0, 1, 0, 1, 0, 1])


def frames(path: Path) -> Path:
    """frames.h5 of 4 videos of 3 raw 8x8 frames, 2 classes."""
    return write_tiny_frames(path, (3, 3, 3, 3), height=8, width=8)


def flow(path: Path) -> Path:
    """flow.h5 of 2 videos of 2 raw 8x8 flow images a channel, 2 classes, with a failure."""
    rows = []
    with write_artifact(path, KIND_FLOW, "tests") as h5:
        digest = hashlib.blake2b(digest_size=16)
        for stream in FLOW_STREAMS.values():
            writer = ImageStreamWriter(h5, stream, "raw", 1, digest)
            for _ in range(2):
                writer.append(*pack_images([np.zeros(64, np.uint8)] * 2))
        for index in range(2):
            rows.append({"video_id": f"v{index}", "relpath": f"C{index}/v{index}.avi",
                         "class_name": f"C{index}", "label": index, "frame_count": 3,
                         "fps": 25.0, "src_fps": 25.0, "src_width": 8, "src_height": 8,
                         "width": 8, "height": 8, "file_size": 0, "checksum": "",
                         "first_image": 2 * index, "num_images": 2})
        write_video_table(h5, VideoTable.from_rows(rows, ["C0", "C1"], ["1"], [(1,), (2,)]))
        write_failures(h5, [], ["C0/gone.avi"])
        write_flow_settings(h5, 20.0, "dis", 240)
        write_provenance(h5, PROVENANCE)
    return path


def features(path: Path) -> Path:
    """features.h5 of 6 videos of 4-D features, 2 classes, as retrieve writes it."""
    stored = StoredFeatures(np.eye(6, 4, dtype=np.float32), IDS, LABELS,
                            np.array(["train"] * 4 + ["test"] * 2, dtype=object), ["A", "B"],
                            "projection", {"checkpoint": "best.pt"})
    with write_artifact(path, KIND_FEATURES, "tests") as h5:
        write_features(h5, stored)
        write_provenance(h5, PROVENANCE)
    return path


def assignments(path: Path) -> Path:
    """assignments.h5 of 6 videos, 2 partitions, with two pretraining rounds."""
    partitions = np.array([[0, 1, 2, 0, 1, 2], [0, 1, 0, 1, 0, 1]])
    quality = [{"nmi": 0.5, "ami": 0.4, "ari": 0.3, "purity": 0.6}] * 3
    found = Assignments(partitions, partitions[1], "partition 1", IDS, LABELS, quality, "finch")
    with write_artifact(path, KIND_ASSIGNMENTS, "tests") as h5:
        write_assignment_rounds(h5, [(0, found), (5, found)])
        write_provenance(h5, PROVENANCE)
    return path


def retrieval(path: Path) -> Path:
    """retrieval.h5 of 2 queries against 4 gallery videos, 2 neighbours each."""
    table = RetrievalTable(np.array([[0, 1], [2, 3]]), np.array([[0.9, 0.5], [0.8, 0.1]]),
                           IDS[4:], LABELS[4:], IDS[:4], LABELS[:4], {1: 0.5, 5: 1.0},
                           [{"class": "A", "queries": 2, "r1": 0.5}])
    with write_artifact(path, KIND_RETRIEVAL, "tests") as h5:
        write_retrieval(h5, table)
        write_provenance(h5, PROVENANCE)
    return path


ARTIFACTS = {"frames": frames, "flow": flow, "features": features,
             "assignments": assignments, "retrieval": retrieval}


def results(path: Path) -> Path:
    """A linear probe's results.json."""
    path.write_text(json.dumps({"stage": "linear_probe", "top1": 0.5, "epochs": 3}))
    return path
