"""Per-video results of a stage kept on disk until they are merged into one artifact.

Each finished video is one `<position>.npz` file, written under a temporary name and renamed,
so a run killed at any moment keeps every finished video and no half-written one. Results live
in a folder named after the stage's fingerprint: a changed config never mixes with old parts.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from stages.io.temporaries import process_alive
from stages.runtime.errors import SlicError

# Encoded images of one stream: concatenated bytes (uint8) and (n + 1,) int64 offsets.
EncodedStream = tuple[np.ndarray, np.ndarray]


def pack_images(encoded: list[np.ndarray]) -> EncodedStream:
    """Concatenate encoded images into one byte array plus offsets."""
    sizes = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    data = np.concatenate(encoded) if encoded else np.zeros(0, np.uint8)
    return data, offsets


class StagingArea:
    """The parts folder of one output artifact, for one fingerprint."""

    def __init__(self, output: Path, fingerprint: str) -> None:
        self.root = output.with_name(f".{output.name}.parts")
        self.folder = self.root / fingerprint[:16]

    def prepare(self) -> None:
        """Create the parts folder (SlicError naming it when it cannot be written) and remove the
        temporaries of writers that died."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SlicError(
                f"cannot write to {self.root.parent}: {error.strerror}; choose a writable "
                "--workspace or --out"
            ) from error
        for part in self.folder.glob(".*.tmp"):  # .<position>.<pid>.tmp of killed writers
            owner = part.name.split(".")[-2]
            if owner.isdigit() and not process_alive(int(owner)):
                part.unlink(missing_ok=True)

    def _path(self, position: int) -> Path:
        return self.folder / f"{position:08d}.npz"

    def done_positions(self) -> set[int]:
        """Positions of the videos whose parts are finished (empty before the folder exists)."""
        if not self.folder.is_dir():
            return set()
        return {int(p.stem) for p in self.folder.glob("*.npz") if p.stem.isdigit()}

    def write(self, position: int, streams: dict[str, EncodedStream], meta: dict[str, Any]) -> None:
        """Store one video's encoded streams and metadata as `<position>.npz`, atomically."""
        arrays = {"meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}
        for name, (data, offsets) in streams.items():
            arrays[f"{name}.data"], arrays[f"{name}.offsets"] = data, offsets
        temporary = self.folder / f".{position:08d}.{os.getpid()}.tmp"
        with open(temporary, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(temporary, self._path(position))

    def read(self, position: int) -> tuple[dict[str, EncodedStream], dict[str, Any]]:
        """One video's encoded streams, name -> (bytes, offsets), and its metadata."""
        with np.load(self._path(position)) as archive:
            meta = json.loads(archive["meta"].tobytes().decode())
            names = {key.split(".")[0] for key in archive.files if key != "meta"}
            streams = {n: (archive[f"{n}.data"], archive[f"{n}.offsets"]) for n in names}
        return streams, meta

    def remove_positions(self, positions: list[int]) -> None:
        """Delete the parts of `positions` (parts already gone are fine)."""
        for position in positions:
            self._path(position).unlink(missing_ok=True)

    @contextmanager
    def merge_lock(self, wait: bool = False) -> Iterator[bool]:
        """Yield True to the one process that may merge now (the lock dies with its holder);
        with `wait`, wait for a process merging now instead of yielding False."""
        self.prepare()
        with open(self.root / "merge.lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def contents(self) -> tuple[dict[str, tuple[int, int]], int]:
        """What the finished parts hold, read from their arrays' headers only: stream name ->
        (bytes of encoded images, number of images), and the bytes of their metadata."""
        streams: dict[str, tuple[int, int]] = {}
        meta_bytes = 0
        parts = self.folder.glob("*.npz") if self.folder.is_dir() else []
        for part in parts:
            for key, count in _array_lengths(part).items():
                name, _, role = key.partition(".")
                data_bytes, num_images = streams.get(name, (0, 0))
                if role == "data":
                    streams[name] = (data_bytes + count, num_images)
                elif role == "offsets":
                    streams[name] = (data_bytes, num_images + count - 1)
                else:
                    meta_bytes += count
        return streams, meta_bytes

    def clear(self) -> None:
        """Delete the output's whole parts folder, the parts of every fingerprint included."""
        shutil.rmtree(self.root, ignore_errors=True)


def _array_lengths(part: Path) -> dict[str, int]:
    """Array name -> length (first dimension) of each one-dimensional array of a part, read
    from the .npy headers in the zip without loading the arrays."""
    lengths = {}
    with zipfile.ZipFile(part) as archive:
        for member in archive.infolist():
            with archive.open(member) as handle:
                version = np.lib.format.read_magic(handle)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, _ = read_header(handle)
            lengths[member.filename.removesuffix(".npy")] = int(np.prod(shape))
    return lengths
