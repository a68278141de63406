"""Video features from any model: a `.npz` with `features` (N, D) and optional metadata."""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.io.artifacts import KIND_FEATURES, open_artifact, read_features
from stages.runtime.errors import ArtifactError


@dataclass
class FeatureSet:
    """(N, D) float32 features and, where known, per-video labels, split and ids."""

    features: np.ndarray
    labels: np.ndarray | None = None
    split: np.ndarray | None = None
    video_ids: np.ndarray | None = None
    class_names: list[str] | None = None

    def select(self, keep: np.ndarray) -> FeatureSet:
        """The rows where the boolean mask `keep` is true."""
        def pick(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else values[keep]

        return FeatureSet(self.features[keep], pick(self.labels), pick(self.split),
                          pick(self.video_ids), self.class_names)


def _check(path: Path, found: FeatureSet) -> FeatureSet:
    features = found.features
    if features.ndim != 2 or features.shape[1] == 0:
        raise ArtifactError(f"{path}: features must be a 2-D array (N, D) with D >= 1, "
                            f"got shape {features.shape}")
    if len(features) < 2:
        raise ArtifactError(f"{path}: clustering needs at least 2 feature rows, got "
                            f"{len(features)}")
    bad = ~np.isfinite(features).all(axis=1)
    if bad.any():
        raise ArtifactError(f"{path}: {int(bad.sum())} feature rows hold NaN or Inf (first: row "
                            f"{int(np.flatnonzero(bad)[0])}); fix or drop them")
    for name in ("labels", "split", "video_ids"):
        values = getattr(found, name)
        if values is not None and len(values) != len(features):
            raise ArtifactError(f"{path}: array '{name}' has {len(values)} entries but "
                                f"'features' has {len(features)} rows")
    return found


def _load_artifact(path: Path) -> FeatureSet:
    with open_artifact(path, KIND_FEATURES) as h5:
        stored = read_features(h5)
    labels = stored.labels if (stored.labels >= 0).any() else None
    return FeatureSet(stored.features.astype(np.float32), labels, stored.split,
                      stored.video_ids, stored.class_names)


# A user's .npz may be compressed (numpy.savez_compressed), so its arrays may rightly inflate
# well past the file: features of a few distinct values compress about 50x. Past this, or with
# more members than arrays anyone saves, it is refused before numpy allocates anything.
NPZ_INFLATION_FACTOR = 256
NPZ_INFLATION_SLACK = 64 * 2**20
NPZ_MAX_MEMBERS = 64


def check_npz(path: Path) -> None:
    """Raise ArtifactError (one line) unless the .npz at `path` is safe to load: at most
    NPZ_MAX_MEMBERS members, which declare at most NPZ_INFLATION_FACTOR x the file (+ slack)
    in all, each .npy holding no more array bytes than its member declares (numpy allocates
    the array its header names before reading it). A file that is no zip is left to
    numpy's own error."""
    if not zipfile.is_zipfile(path):
        return
    size = path.stat().st_size
    limit = NPZ_INFLATION_FACTOR * size + NPZ_INFLATION_SLACK

    def unsafe(reason: str) -> ArtifactError:
        return ArtifactError(f"{path} is a damaged or unsafe .npz: {reason}; save the features "
                             "with numpy.savez or savez_compressed")

    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > NPZ_MAX_MEMBERS:
                raise unsafe(f"it holds {len(members)} members (at most {NPZ_MAX_MEMBERS})")
            total = sum(member.file_size for member in members)
            if total > limit:
                raise unsafe(f"its members would inflate to {total} bytes from a file of "
                             f"{size} bytes")
            for member in members:
                with archive.open(member) as stream:
                    declared = _npy_array_bytes(stream)
                if declared is not None and declared > member.file_size:
                    raise unsafe(f"array {member.filename!r} declares {declared} bytes in a "
                                 f"member of {member.file_size}")
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error, NotImplementedError,
            RuntimeError) as error:  # a bad offset, bad deflate data, method or flags
        raise unsafe(f"a damaged zip archive ({error})") from None


def _npy_array_bytes(stream) -> int | None:
    """Bytes of the array a .npy stream's header declares (shape x item size), or None when
    the stream is no .npy (numpy then refuses it itself)."""
    from numpy.lib import format as npy

    try:
        major, _ = npy.read_magic(stream)
        read_header = npy.read_array_header_1_0 if major == 1 else npy.read_array_header_2_0
        shape, _, dtype = read_header(stream)
    except (ValueError, EOFError, SyntaxError, TypeError):
        return None
    count = 1
    for extent in shape:
        count *= int(extent)
    return count * dtype.itemsize


def load_features(path: Path) -> FeatureSet:
    """Read slic's features.h5, or a `.npz` with `features` and optional `labels`, `split`,
    `video_ids`, `class_names`."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path} does not exist; pass a features.h5 or .npz with --features")
    if path.suffix == ".h5":
        return _check(path, _load_artifact(path))
    if path.suffix != ".npz":
        raise ArtifactError(f"{path} is neither a features.h5 nor a .npz; pass slic's "
                            "features.h5 or a .npz holding an array 'features' (N, D) and "
                            "optionally labels, split, video_ids")
    check_npz(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error,
            NotImplementedError, RuntimeError) as error:
        reason = str(error).splitlines()[0] if str(error) else "empty or truncated file"
        raise ArtifactError(f"{path} cannot be read as .npz of plain arrays ({reason}); save "
                            "numbers and strings with numpy.savez, no Python objects") from None
    if "features" not in arrays:
        raise ArtifactError(f"{path} has no array 'features' (it has: "
                            f"{', '.join(arrays) or 'nothing'})")
    for name in ("labels", "split", "video_ids", "class_names"):
        if name in arrays and arrays[name].ndim != 1:
            raise ArtifactError(f"{path}: array '{name}' must be 1-D (one entry a video, or a "
                                f"class), got shape {arrays[name].shape}")
    labels = arrays.get("labels")
    if labels is not None and labels.dtype.kind == "f" and np.isfinite(labels).all() and (
            labels == np.round(labels)).all():
        arrays["labels"] = labels.astype(np.int64)  # whole numbers stored as floats
    for name, kinds, what in (("features", "fiub", "numbers"), ("labels", "iu",
                                                                 "integer class indices")):
        if name in arrays and arrays[name].dtype.kind not in kinds:
            raise ArtifactError(f"{path}: array '{name}' must hold {what}, got dtype "
                                f"{arrays[name].dtype}" + (
                                    "; map class names to 0..C-1 and store the names as "
                                    "'class_names'" if name == "labels" else ""))
    class_names = arrays.get("class_names")
    with np.errstate(over="ignore"):  # past float32's range: Inf, which _check refuses
        features = np.asarray(arrays["features"], dtype=np.float32)
    found = FeatureSet(
        features=features,
        labels=arrays.get("labels"), split=arrays.get("split"),
        video_ids=arrays.get("video_ids"),
        class_names=None if class_names is None else [str(c) for c in class_names],
    )
    return _check(path, found)
