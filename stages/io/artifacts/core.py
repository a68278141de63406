"""Video artifacts (frames.h5, flow.h5) and what every artifact shares: schema version,
provenance, atomic writing, opening with clear errors.

Layout of a video artifact (frames.h5, flow.h5):

    attrs            kind, schema_version, fingerprint, content_digest
    /provenance      JSON: command, resolved config, slic version, inputs, start and end time
    /classes/name    (C,) class names, index = label
    /videos/<col>    (N,) one column per VIDEO_COLUMNS entry; /videos/splits (N, S) int8 with
                     attrs names (S,): 0 unused, 1 train, 2 test
    /<stream>/data   (total bytes,) uint8: encoded images back to back
    /<stream>/offsets (num images + 1,) int64: image i is data[offsets[i]:offsets[i+1]]
                     attrs codec, channels; video n owns images first_image[n] ... + num_images[n]
    /failures/<col>  (F,) video_id, relpath, reason
    /missing         (M,) names listed in split files but absent on disk
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import h5py
import numpy as np

from stages.io.artifacts.isolated import PROBE_WHOLE_BYTES, can_isolate, run_isolated
from stages.io.artifacts.safety import unsafe_attributes, unsafe_content
from stages.io.space import disk_full_message, free_bytes, is_disk_full
from stages.io.temporaries import remove_stale_temporaries, temporary_for
from stages.runtime.errors import ArtifactError, DiskFull

SCHEMA_VERSION = 1
KIND_FRAMES, KIND_FLOW = "frames", "flow"
STRING = h5py.string_dtype("utf-8")
FRAME_STREAM = "images"  # frames.h5: the RGB frames, one image stream
FLOW_STREAMS = {"u": "flow_u", "v": "flow_v"}  # flow.h5: a flow channel -> its image stream
ArtifactFile = h5py.File  # an open artifact, as open_artifact and reopen_artifact return it
# What h5py raises for what HDF5 cannot decode of a damaged file (it maps HDF5's errors onto
# these builtins).
HDF5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError)
Read = TypeVar("Read", bound=Callable[..., Any])


def damage_is_artifact_error(read: Read) -> Read:
    """`read`, a reader of an artifact `open_artifact` has checked (its first argument the
    file or a group of it), with what HDF5 cannot read of the file's data (a damaged chunk or
    heap) raised as a one-line ArtifactError naming the file."""
    @functools.wraps(read)
    def checked(h5: h5py.Group, *args: Any, **kwargs: Any) -> Any:
        try:
            return read(h5, *args, **kwargs)
        except HDF5_ERRORS as error:
            reason = (str(error).splitlines() or [type(error).__name__])[0]
            raise ArtifactError(f"{h5.file.filename} is damaged: {read.__name__} failed "
                                f"({reason}); make it again") from None

    return checked  # type: ignore[return-value]

# Column name -> dtype of the per-video index table.
VIDEO_COLUMNS: dict[str, Any] = {
    "video_id": STRING,
    "relpath": STRING,
    "class_name": STRING,
    "label": np.int32,
    "frame_count": np.int32,
    "fps": np.float32,
    "src_fps": np.float32,
    "src_width": np.int32,
    "src_height": np.int32,
    "width": np.int32,
    "height": np.int32,
    "file_size": np.int64,
    "checksum": STRING,
    "first_image": np.int64,
    "num_images": np.int32,
}
# Columns of the index that artifacts written before them lack (read as their empty value):
# note, what a stage noted of a video it kept ("" for most), such as a truncated file's
# "decoded 37 of ~120 frames: ffmpeg stopped with ...".
OPTIONAL_COLUMNS: dict[str, Any] = {"note": STRING}
FAILURE_COLUMNS = ("video_id", "relpath", "reason")
# Chunks of an image stream: its data in 1 MiB, its offsets in 16384 int64s (128 KiB). HDF5
# allocates whole chunks, so each stream's last chunks take their full size on disk.
DATA_CHUNK = 1 << 20
OFFSETS_CHUNK = 1 << 14
# What a video artifact holds beside its streams' chunks, for the space it needs: per video,
# its index row (variable-length strings sit in a heap, 16 bytes of reference and 16 of header
# each) and a failure's reason; per chunk, its entry in the chunk index (a B-tree); per file,
# superblock, object headers, provenance and failures lists.
ROW_BYTES = 1 << 10
CHUNK_INDEX_BYTES = 64
FILE_BYTES = 1 << 20
# HDF5's chunk cache of each dataset of a file being written (its default, 8 MiB from HDF5
# 2.0, would hold a stream's last 8 MiB in memory until the file closes), and the free space
# an image stream keeps beyond each append: the dirty chunks of both flow streams' data and
# offsets and the metadata written at close. HDF5 2.0 can crash the process when one of its
# own writes fails for want of space, so the writer stops before that can happen.
WRITE_CACHE = 2 * DATA_CHUNK
APPEND_MARGIN = 4 * WRITE_CACHE + (1 << 20)


def file_checksum(path: Path, chunk: int = 1 << 20) -> str:
    """blake2b-128 of a file's bytes, as hex."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class VideoTable:
    """The per-video index of an artifact: one numpy array per VIDEO_COLUMNS and
    OPTIONAL_COLUMNS name, length N."""

    columns: dict[str, np.ndarray]
    class_names: list[str]
    split_names: list[str]
    splits: np.ndarray  # (N, S) int8

    def __len__(self) -> int:
        return len(self.columns["video_id"])

    def row(self, index: int) -> dict[str, Any]:
        """One video's values as plain Python objects."""
        return {name: values[index].item() if hasattr(values[index], "item") else values[index]
                for name, values in self.columns.items()}

    @classmethod
    def from_rows(
        cls, rows: list[dict[str, Any]], class_names: list[str], split_names: list[str],
        splits: list[tuple[int, ...]],
    ) -> VideoTable:
        """A table from one dict per video (every VIDEO_COLUMNS key; an OPTIONAL_COLUMNS key
        left out is "") and each video's split codes, one per split name (0 unused, 1 train,
        2 test)."""
        columns = {
            name: np.array([row[name] for row in rows],
                           dtype=object if dtype is STRING else dtype)
            for name, dtype in VIDEO_COLUMNS.items()
        }
        columns.update({name: np.array([row.get(name, "") for row in rows], dtype=object)
                        for name in OPTIONAL_COLUMNS})
        matrix = np.array(splits, dtype=np.int8).reshape(len(rows), len(split_names))
        return cls(columns, class_names, split_names, matrix)


@dataclass
class Failure:
    """A video a stage could not process, and why."""

    video_id: str
    relpath: str
    reason: str


class ImageStreamWriter:
    """Appends encoded images to `/<name>/data` and `/<name>/offsets`, hashing what it writes."""

    def __init__(self, h5: h5py.File, name: str, codec: str, channels: int, digest) -> None:
        group = h5.create_group(name)
        group.attrs["codec"], group.attrs["channels"] = codec, channels
        self.data = group.create_dataset("data", (0,), np.uint8, maxshape=(None,),
                                         chunks=(DATA_CHUNK,))
        self.offsets = group.create_dataset("offsets", (1,), np.int64, maxshape=(None,),
                                            chunks=(OFFSETS_CHUNK,), data=[0])
        self.digest = digest
        self.num_images = 0

    def append(self, data: np.ndarray, offsets: np.ndarray) -> int:
        """Append images given as concatenated bytes and their (n + 1,) relative offsets.

        Returns the index of the first appended image in the stream.
        """
        first, start = self.num_images, int(self.offsets[-1])
        size, count = len(data), len(offsets) - 1
        self._require_space(start, size)
        self.data.resize((start + size,))
        self.data[start:] = data
        self.offsets.resize((first + count + 1,))
        self.offsets[first + 1:] = start + offsets[1:]
        self.digest.update(data.tobytes())
        self.digest.update(offsets.astype(np.int64).tobytes())
        self.num_images += count
        return first

    def _require_space(self, start: int, size: int) -> None:
        """Raise OSError(ENOSPC) naming the file, before HDF5 writes, unless the chunks that
        appending `size` bytes at byte `start` allocates fit with APPEND_MARGIN to spare."""
        new_chunks = -(-(start + size) // DATA_CHUNK) - -(-start // DATA_CHUNK)
        path = self.data.file.filename
        if free_bytes(Path(path)) < new_chunks * DATA_CHUNK + APPEND_MARGIN:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)


def video_artifact_space(streams: dict[str, tuple[int, int]], num_videos: int,
                         text_bytes: int = 0) -> int:
    """The free bytes writing a video artifact needs: APPEND_MARGIN plus an upper bound of the
    file's size, for image streams holding name -> (bytes of encoded images, number of
    images) and `num_videos` videos whose metadata is `text_bytes` of text: each stream's data
    and offsets rounded up to whole chunks, plus the index, chunk index and file overhead
    (ROW_BYTES, CHUNK_INDEX_BYTES, FILE_BYTES)."""
    total = APPEND_MARGIN + FILE_BYTES + num_videos * ROW_BYTES + 2 * text_bytes
    for data_bytes, num_images in streams.values():
        data_chunks = -(-data_bytes // DATA_CHUNK)  # rounded up
        offsets_chunks = -(-(num_images + 1) // OFFSETS_CHUNK)
        total += data_chunks * DATA_CHUNK + offsets_chunks * OFFSETS_CHUNK * 8
        total += (data_chunks + offsets_chunks) * CHUNK_INDEX_BYTES
    return total


@dataclass
class Provenance:
    """Where an artifact came from; stored as JSON in `/provenance`."""

    command: str
    config: dict[str, Any]
    slic_version: str
    inputs: list[dict[str, Any]]
    started: str
    finished: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _create_file(path: Path) -> h5py.File:
    """A new HDF5 file at `path`, open for writing. h5py's OSError carries the errno but no
    filename (HDF5's internals are in its message): re-raised naming `path`, so a read-only or
    forbidden folder is one line that names it."""
    try:
        return h5py.File(path, "w", rdcc_nbytes=WRITE_CACHE)
    except OSError as error:
        if error.errno is None or error.filename is not None:
            raise
        raise OSError(error.errno, os.strerror(error.errno), str(path)) from error


@contextmanager
def write_artifact(path: Path, kind: str, fingerprint: str) -> Iterator[h5py.File]:
    """Open a new artifact for writing; it appears at `path` only if the block succeeds.

    The file is written beside `path` under a temporary name and renamed into place, so no
    reader ever sees a half-written artifact. A device found full midway (an OSError, or
    HDF5's RuntimeError quoting ENOSPC) is DiskFull, one line naming the temporary beside
    `path`; the temporary is removed and whatever the block read from is left alone.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    temporary = temporary_for(path)
    try:
        with _create_file(temporary) as h5:
            h5.attrs["kind"], h5.attrs["schema_version"] = kind, SCHEMA_VERSION
            h5.attrs["fingerprint"] = fingerprint
            yield h5
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        _PROBED.add(_probe_key(path))  # what this process wrote needs no first read in a child
    except (OSError, RuntimeError) as error:
        if not is_disk_full(error):
            raise
        full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(temporary))
        raise DiskFull(disk_full_message(full)) from None
    finally:
        temporary.unlink(missing_ok=True)


def check_output(path: Path, kind: str, inputs: Sequence[Path | None] = ()) -> None:
    """Refuse, before any work, an output path that would destroy something: one of the
    stage's own inputs, a folder, or an existing file that is not a slic `kind` artifact (a
    stage writes over its own kind of artifact only, under the cache rules)."""
    path = Path(path)
    target = path.resolve()
    for source in inputs:
        if source is not None and Path(source).resolve() == target:
            raise ArtifactError(f"the output {path} is also this stage's input; write it "
                                "elsewhere (--out)")
    if path.is_dir():
        raise ArtifactError(f"the output {path} is a folder; give a file path such as "
                            f"{path / (kind + '.h5')} (--out)")
    if not path.exists():
        return
    found = None
    if h5py.is_hdf5(path):
        try:
            with h5py.File(path, "r") as h5:
                found = h5.attrs.get("kind")
        except OSError:
            found = None
    if found != kind:
        what = f"a {found} artifact" if found else "not a slic artifact"
        raise ArtifactError(f"the output {path} exists and is {what}; slic writes over its "
                            f"own {kind} artifacts only: choose another path (--out) or move "
                            "that file away")


def write_provenance(h5: h5py.File, provenance: Provenance) -> None:
    """Store `provenance` as JSON in `/provenance` (values JSON cannot hold become strings)."""
    h5.create_dataset("provenance", data=json.dumps(provenance.__dict__, default=str),
                      dtype=STRING)


def write_video_table(h5: h5py.File, table: VideoTable) -> None:
    """Write `/classes/name`, one `/videos/<col>` per VIDEO_COLUMNS and OPTIONAL_COLUMNS entry
    in its dtype (an optional one the table lacks as ""), and `/videos/splits` (N, S) int8 with
    the split names in its attrs."""
    h5.create_dataset("classes/name", data=np.array(table.class_names, dtype=object),
                      dtype=STRING)
    for name, dtype in VIDEO_COLUMNS.items():
        h5.create_dataset(f"videos/{name}", data=table.columns[name], dtype=dtype)
    for name, dtype in OPTIONAL_COLUMNS.items():
        values = table.columns.get(name, np.full(len(table), "", dtype=object))
        h5.create_dataset(f"videos/{name}", data=values, shape=(len(table),), dtype=dtype)
    splits = h5.create_dataset("videos/splits", data=table.splits)
    splits.attrs["names"] = np.array(table.split_names, dtype=object)


def write_failures(h5: h5py.File, failures: list[Failure], missing: list[str]) -> None:
    """Write the videos that failed as `/failures/<col>` (F,) strings, and the names listed but
    absent on disk as `/missing` (M,)."""
    for name in FAILURE_COLUMNS:
        values = np.array([getattr(f, name) for f in failures], dtype=object)
        h5.create_dataset(f"failures/{name}", data=values, shape=(len(failures),), dtype=STRING)
    h5.create_dataset("missing", data=np.array(missing, dtype=object), shape=(len(missing),),
                      dtype=STRING)


MADE_BY = {KIND_FRAMES: "slic extract-frames", KIND_FLOW: "slic compute-flow"}


_VIDEO_INDEX = ("provenance", *(f"videos/{column}" for column in VIDEO_COLUMNS),
                "videos/splits")
# What a reader needs of each kind with a fixed layout (assignments come as one partition
# set or as per-round groups, so only their provenance is required).
_REQUIRED: dict[str, tuple[str, ...]] = {
    KIND_FRAMES: (*_VIDEO_INDEX, "images/data", "images/offsets"),
    KIND_FLOW: (*_VIDEO_INDEX, *(f"flow_{c}/{part}" for c in "uv" for part in ("data",
                                                                              "offsets"))),
}


def open_artifact(path: Path, kind: str | None = None) -> h5py.File:
    """Open an artifact for reading after checking it is one, of `kind`, of a known schema,
    that reads no other file and whose every dataset declares no more bytes than its size
    allows (`safety`), so that a whole read of any of them cannot exhaust memory."""
    path = Path(path)
    if path.is_dir():
        raise ArtifactError(f"{path} is a folder; pass an artifact file in it, for example "
                            f"{path / ((kind or 'frames') + '.h5')}")
    if not path.is_file():
        maker = MADE_BY.get(kind or "", "the stage that makes it")
        raise ArtifactError(f"{path} does not exist; run {maker} first (or pass its path)")
    _probe_once(path, kind)
    try:
        h5 = h5py.File(path, "r")
    except OSError as error:
        raise ArtifactError(f"{path} is not an HDF5 file or is damaged ({error})") from error
    try:
        _check_opened(h5, path, kind)
    except ArtifactError:
        h5.close()
        raise
    except HDF5_ERRORS as error:  # what HDF5 cannot decode of a damaged file's headers
        h5.close()
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise ArtifactError(f"{path} is a damaged artifact ({reason}); make it again") from None
    return h5


# Files this process has probed (`_probe_once`), by path, inode, size and modification time.
_PROBED: set[tuple[str, int, int, int]] = set()


def _probe_once(path: Path, kind: str | None) -> None:
    """Run `_probe` of `path` in a child (`run_isolated`) unless this process probed the
    same file (same inode, size and modification time) before; a crash or hang of HDF5 in it
    is an ArtifactError."""
    if not can_isolate():
        return
    key = _probe_key(path)
    if key in _PROBED:
        return
    problem = run_isolated(lambda: _probe(path, kind))
    if problem is not None:
        raise ArtifactError(f"{path} is a damaged artifact: {problem}; make it again")
    _PROBED.add(key)


def _probe_key(path: Path) -> tuple[str, int, int, int]:
    """What identifies a file's content for `_PROBED`: path, inode, size, modification time."""
    stat = path.stat()
    return str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns


def _probe(path: Path, kind: str | None) -> None:
    """In `run_isolated`'s child: `open_artifact`'s checks, then a read of every attribute and
    of every dataset (whole up to PROBE_WHOLE_BYTES, else its first and last element). Errors
    are left to the parent, which meets them again and says them; only a crash or a hang of
    HDF5 matters here."""
    try:
        with h5py.File(path, "r") as h5:
            _check_opened(h5, path, kind)
            h5.visititems(lambda name, item: _read_whole(item))
            _read_whole(h5)
    except (ArtifactError, *HDF5_ERRORS):
        return


def _read_whole(item: h5py.HLObject) -> None:
    """Read each attribute of `item` and, for a dataset, its values (see `_probe`)."""
    for name in list(item.attrs):
        try:
            item.attrs[name]
        except HDF5_ERRORS:
            continue
    if not isinstance(item, h5py.Dataset):
        return
    try:
        if item.size * item.dtype.itemsize <= PROBE_WHOLE_BYTES or item.ndim == 0:
            item[()]
        elif item.shape[0] > 0:
            item[0], item[-1]
    except HDF5_ERRORS:
        return


def _check_opened(h5: h5py.File, path: Path, kind: str | None) -> None:
    """The checks of `open_artifact` on the open file: its root attributes' declared sizes
    before any is read, kind, schema version, `safety`, required members, `schema`."""
    from stages.io.artifacts.schema import LayoutProblem, attribute, layout_problem

    size = path.stat().st_size
    unsafe = unsafe_attributes(h5, size)
    if unsafe is None and ("kind" not in h5.attrs or "schema_version" not in h5.attrs):
        raise ArtifactError(f"{path} is an HDF5 file but not a slic artifact (no 'kind' attr)")
    try:
        found, version = attribute(h5, "kind", str), attribute(h5, "schema_version", int)
    except LayoutProblem as problem:
        unsafe = unsafe or str(problem)
    if unsafe is not None:
        raise ArtifactError(f"{path} is a damaged or unsafe artifact: {unsafe} (make it again)")
    if kind is not None and found != kind:
        raise ArtifactError(f"{path} is a {found} artifact, but a {kind} artifact is needed")
    if version > SCHEMA_VERSION:
        raise ArtifactError(f"{path} has schema version {version}, newer than this slic reads "
                            f"({SCHEMA_VERSION}); upgrade slic")
    unsafe = unsafe_content(h5, size)
    if unsafe is not None:
        raise ArtifactError(f"{path} is a damaged or unsafe artifact: {unsafe} (make it again)")
    missing = [name for name in _REQUIRED.get(found, ()) if name not in h5]
    if missing:
        raise ArtifactError(f"{path} is a {found} artifact but lacks '{missing[0]}'"
                            + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
                            + ": it is damaged or was not written by slic; make it again")
    problem = layout_problem(h5, found)
    if problem is not None:
        raise ArtifactError(f"{path} is a {found} artifact, but {problem}: it is damaged or "
                            "was not written by slic; make it again")


def reopen_artifact(path: Path) -> h5py.File:
    """A read handle on an artifact that `open_artifact` has already checked, without checking
    it again: for worker processes, which must each open their own handle after the fork."""
    return h5py.File(path, "r")


@damage_is_artifact_error
def read_header(h5: h5py.File) -> dict[str, Any]:
    """What every artifact's attributes say of it: kind, schema version, fingerprint (the
    settings and inputs it was made from) and content digest ("" when it has none)."""
    return {"kind": str(h5.attrs["kind"]), "schema_version": int(h5.attrs["schema_version"]),
            "fingerprint": str(h5.attrs["fingerprint"]),
            "content_digest": read_content_digest(h5)}


def write_content_digest(h5: h5py.File, digest: str) -> None:
    """Record the digest of what the artifact holds (its images or partitions), which later
    stages quote as their input's checksum instead of hashing the whole file again."""
    h5.attrs["content_digest"] = digest


@damage_is_artifact_error
def read_content_digest(h5: h5py.File) -> str:
    """The artifact's content digest, or "" for an artifact written without one."""
    return str(h5.attrs.get("content_digest", ""))


def write_flow_settings(h5: h5py.File, bound: float, method: str,
                        reference_short_side: int | None) -> None:
    """flow.h5: the clipping bound its uint8 images map onto 0..255, in pixels of frames with
    `reference_short_side` (None: of the stored frames), and the method."""
    h5.attrs["bound"], h5.attrs["method"] = bound, method
    h5.attrs["reference_short_side"] = reference_short_side or 0


@damage_is_artifact_error
def read_flow_settings(h5: h5py.File) -> dict[str, Any]:
    """{"bound": pixels, "method": name, "reference_short_side": pixels or None} of a flow
    artifact; {} for any other. Flow written before the reference existed reads None."""
    if "bound" not in h5.attrs:
        return {}
    reference = int(h5.attrs.get("reference_short_side", 0)) or None
    return {"bound": float(h5.attrs["bound"]), "method": str(h5.attrs["method"]),
            "reference_short_side": reference}


@damage_is_artifact_error
def stream_codec(h5: h5py.File, name: str) -> str:
    """The image codec of stream `name` (jpeg, png or raw)."""
    return str(h5[name].attrs["codec"])


@damage_is_artifact_error
def video_count(h5: h5py.File) -> int:
    """How many videos the artifact's index table holds."""
    return int(h5["videos/video_id"].shape[0])


def content_digest_of(path: Path) -> str:
    """The content digest stored in the artifact at `path` ("" when it has none): read from
    its attributes, so a multi-gigabyte frames.h5 is not hashed again."""
    with h5py.File(path, "r") as h5:
        return read_content_digest(h5)


def artifact_input(path: Path) -> dict[str, Any]:
    """Provenance entry of an input artifact: its path, size and stored content digest."""
    return {"path": str(path), "size": Path(path).stat().st_size,
            "checksum": content_digest_of(path)}


def artifact_fingerprint(path: Path) -> str | None:
    """The fingerprint of the artifact at `path`, or None if there is no readable artifact."""
    try:
        with h5py.File(path, "r") as h5:
            value = h5.attrs.get("fingerprint")
            return str(value) if value is not None else None
    except OSError:
        return None


def _strings(dataset: h5py.Dataset) -> np.ndarray:
    return np.array(dataset.asstr(errors="replace")[()], dtype=object)


@damage_is_artifact_error
def read_provenance(h5: h5py.File) -> dict[str, Any]:
    """The `/provenance` JSON as a dict (command, config, slic_version, inputs, times, extra)."""
    return json.loads(h5["provenance"].asstr(errors="replace")[()])


@damage_is_artifact_error
def read_video_table(h5: h5py.File) -> VideoTable:
    """The per-video index: string columns as object arrays, the others in their stored dtype,
    optional columns an older artifact lacks as "" each, and splits (N, S) int8."""
    columns = {
        name: _strings(h5[f"videos/{name}"]) if dtype is STRING else h5[f"videos/{name}"][()]
        for name, dtype in VIDEO_COLUMNS.items()
    }
    count = len(columns["video_id"])
    columns.update({name: _strings(h5[f"videos/{name}"]) if f"videos/{name}" in h5
                    else np.full(count, "", dtype=object) for name in OPTIONAL_COLUMNS})
    splits = h5["videos/splits"]
    return VideoTable(columns, list(_strings(h5["classes/name"])),
                      [str(s) for s in splits.attrs["names"]], splits[()])


@damage_is_artifact_error
def read_failures(h5: h5py.File) -> tuple[list[Failure], list[str]]:
    """The failed videos and the names missing on disk, as `write_failures` stored them."""
    columns = [_strings(h5[f"failures/{name}"]) for name in FAILURE_COLUMNS]
    return [Failure(*values) for values in zip(*columns)], list(_strings(h5["missing"]))


@damage_is_artifact_error
def stream_names(h5: h5py.File) -> list[str]:
    """Names of the image streams an artifact holds."""
    return [name for name in h5 if isinstance(h5[name], h5py.Group) and "offsets" in h5[name]]


@damage_is_artifact_error
def stream_info(h5: h5py.File, name: str) -> dict[str, Any]:
    """Codec, channels, number of images and bytes of encoded data of image stream `name`."""
    group = h5[name]
    return {"codec": str(group.attrs["codec"]), "channels": int(group.attrs["channels"]),
            "num_images": len(group["offsets"]) - 1, "bytes": int(group["data"].shape[0])}


class ImageStream:
    """One image stream's datasets, looked up once for many reads (a loader worker reads a
    clip at a time, and each lookup by path costs as much as a small read)."""

    def __init__(self, h5: h5py.File, name: str) -> None:
        self.offsets, self.data = h5[f"{name}/offsets"], h5[f"{name}/data"]
        self.name, self.size = name, int(self.data.shape[0])

    def read(self, first: int, count: int) -> list[np.ndarray]:
        """The encoded bytes of images first ... first + count - 1, one read; offsets that
        go backwards or past the stream's bytes (a damaged file) are an ArtifactError."""
        offsets = self.offsets[first:first + count + 1]
        if (len(offsets) != count + 1 or offsets[0] < 0 or offsets[-1] > self.size
                or bool((np.diff(offsets) < 0).any())):
            raise ArtifactError(f"{self.data.file.filename}: the offsets of images {first} to "
                                f"{first + count - 1} of stream {self.name} lie outside its "
                                f"{self.size} bytes: the file is damaged; make it again")
        block = self.data[offsets[0]:offsets[-1]]
        relative = offsets - offsets[0]
        return [block[relative[i]:relative[i + 1]] for i in range(count)]


@damage_is_artifact_error
def read_encoded_images(h5: h5py.File, name: str, first: int, count: int) -> list[np.ndarray]:
    """The encoded bytes of images first ... first + count - 1 of a stream, one read."""
    return ImageStream(h5, name).read(first, count)
