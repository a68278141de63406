"""Whether an artifact holds the layout its kind promises, checked when it is opened so that
its readers can trust it: each dataset of the dtype and rank they read, the columns of one
table of one length, the attributes they read present and of their type, the JSON texts
parsed into what they describe, split codes among 0, 1, 2. A damaged or crafted file fails
here with the member named, not later in a reader with numpy's or h5py's words."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import h5py
import numpy as np

from stages.io.artifacts.core import (
    FAILURE_COLUMNS,
    FLOW_STREAMS,
    FRAME_STREAM,
    HDF5_ERRORS,
    KIND_FLOW,
    KIND_FRAMES,
    OPTIONAL_COLUMNS,
    STRING,
    VIDEO_COLUMNS,
)
from stages.io.artifacts.results import KIND_ASSIGNMENTS, KIND_FEATURES, KIND_RETRIEVAL

TEXT, INTEGERS, NUMBERS = "T", "iu", "iuf"  # dtype kinds a dataset may have
# The fields of a Provenance record (stages.io.artifacts.core.Provenance) and their types,
# checked where present (artifacts of older slic or of tests may lack some).
PROVENANCE_FIELDS = {"command": str, "config": dict, "slic_version": str, "inputs": list,
                     "started": str, "finished": str}


class LayoutProblem(Exception):
    """What is wrong with one member of an artifact, as a clause ("/videos/label is ...")."""


def _where(group: h5py.Group, name: str) -> str:
    return f"{group.name.rstrip('/')}/{name}"


def dataset(group: h5py.Group, name: str, kinds: str, rank: int) -> h5py.Dataset:
    """Dataset `name` of `group`, of `rank` dimensions and a dtype of `kinds` (numpy kind
    letters, TEXT for strings)."""
    where = _where(group, name)
    try:
        item = group.get(name)
        shape, dtype = (item.shape, item.dtype) if isinstance(item, h5py.Dataset) else (0, 0)
    except HDF5_ERRORS as error:
        raise LayoutProblem(f"{where} cannot be read ({_first_line(error)})") from None
    if item is None:
        raise LayoutProblem(f"{where} is missing")
    if not isinstance(item, h5py.Dataset):
        raise LayoutProblem(f"{where} is not a dataset")
    is_text = h5py.check_string_dtype(dtype) is not None
    if shape is None or len(shape) != rank or (
            not is_text if kinds == TEXT else is_text or dtype.kind not in kinds):
        raise LayoutProblem(f"{where} is {shape} of {dtype}, not {rank}-D "
                            f"{'text' if kinds == TEXT else 'numbers'}")
    return item


def read(item: h5py.Dataset) -> np.ndarray:
    """The whole of `item` (checked by `dataset`), text decoded as the readers decode it
    (bytes that are no UTF-8 replaced)."""
    try:
        if h5py.check_string_dtype(item.dtype) is not None:
            return np.array(item.asstr(errors="replace")[()], dtype=object)
        return item[()]
    except HDF5_ERRORS as error:
        raise LayoutProblem(f"{item.name} cannot be read ({_first_line(error)})") from None


def attribute(owner: h5py.HLObject, name: str, kind: type) -> Any:
    """Attribute `name` of `owner` as a `kind` (str, int or float: finite), or a problem."""
    where = f"attribute {name!r} of {owner.name}"
    try:
        value = owner.attrs.get(name)
    except HDF5_ERRORS as error:
        raise LayoutProblem(f"{where} cannot be read ({_first_line(error)})") from None
    if value is None:
        raise LayoutProblem(f"{where} is missing")
    if isinstance(value, np.generic):
        value = value.item()
    fits = {str: isinstance(value, str),
            int: isinstance(value, int) and not isinstance(value, bool),
            float: isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value)}[kind]
    if not fits:
        raise LayoutProblem(f"{where} is {type(value).__name__}, not {kind.__name__}")
    return value


def parsed(text: str, where: str, kind: type) -> Any:
    """`text` parsed as JSON holding a `kind` (dict or list)."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise LayoutProblem(f"{where} is not JSON (or is nested too deeply)") from None
    if not isinstance(value, kind):
        raise LayoutProblem(f"{where} holds a JSON {type(value).__name__}, not a "
                            f"{kind.__name__}")
    return value


def json_dataset(group: h5py.Group, name: str, kind: type) -> Any:
    """The JSON of scalar text dataset `name` of `group`, holding a `kind`."""
    return parsed(read(dataset(group, name, TEXT, 0))[()], _where(group, name), kind)


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


def columns(group: h5py.Group, kinds: dict[str, str]) -> int:
    """Check the 1-D columns `kinds` (name -> dtype kinds) of `group` are of one length;
    return it."""
    lengths = {name: dataset(group, name, kind, 1).shape[0] for name, kind in kinds.items()}
    if len(set(lengths.values())) > 1:
        raise LayoutProblem(f"the columns of {group.name} differ in length ({lengths})")
    return next(iter(lengths.values()), 0)


def _group(group: h5py.Group, name: str) -> h5py.Group:
    try:
        item = group.get(name)
    except HDF5_ERRORS as error:
        raise LayoutProblem(f"{_where(group, name)} cannot be read ({_first_line(error)})"
                            ) from None
    if not isinstance(item, h5py.Group):
        what = "missing" if item is None else "not a group"
        raise LayoutProblem(f"{_where(group, name)} is {what}")
    return item


def _dtype_kinds(dtype: Any) -> str:
    if dtype is STRING:
        return TEXT
    return INTEGERS if np.issubdtype(dtype, np.integer) else NUMBERS


def _video_table(h5: h5py.File) -> None:
    videos = _group(h5, "videos")
    wanted = {name: _dtype_kinds(dtype) for name, dtype in VIDEO_COLUMNS.items()}
    wanted.update({name: TEXT for name in OPTIONAL_COLUMNS if name in videos})
    count = columns(videos, wanted)
    splits = dataset(videos, "splits", INTEGERS, 2)
    names = splits.attrs.get("names") if "names" in splits.attrs else None
    if names is None or np.ndim(names) != 1 or splits.shape != (count, len(names)):
        raise LayoutProblem(f"{splits.name} is {splits.shape}, not one row a video and one "
                            "column a name of its 'names' attribute")
    if not np.isin(read(splits), (0, 1, 2)).all():
        raise LayoutProblem(f"{splits.name} holds codes other than 0, 1, 2")
    dataset(h5, "classes/name", TEXT, 1)
    columns(h5, {f"failures/{name}": TEXT for name in FAILURE_COLUMNS})
    dataset(h5, "missing", TEXT, 1)


def _stream(h5: h5py.File, name: str) -> None:
    group = _group(h5, name)
    attribute(group, "codec", str)
    attribute(group, "channels", int)
    dataset(group, "data", "u", 1)
    dataset(group, "offsets", INTEGERS, 1)


def _streams(h5: h5py.File, required: list[str]) -> None:
    found = [name for name in h5 if isinstance(h5.get(name), h5py.Group)
             and "offsets" in h5[name]]
    for name in sorted({*required, *found}):
        _stream(h5, name)


def _frames(h5: h5py.File) -> None:
    _video_table(h5)
    _streams(h5, [FRAME_STREAM])


def _flow(h5: h5py.File) -> None:
    _video_table(h5)
    _streams(h5, list(FLOW_STREAMS.values()))
    attribute(h5, "bound", float)
    attribute(h5, "method", str)
    if "reference_short_side" in h5.attrs:
        attribute(h5, "reference_short_side", int)


def _assignments_in(group: h5py.Group) -> None:
    labels = dataset(group, "partitions/labels", INTEGERS, 2)
    attribute(labels, "method", str)
    chosen = dataset(group, "partitions/chosen", INTEGERS, 1)
    attribute(chosen, "chosen_from", str)
    count = columns(group, {"partitions/chosen": INTEGERS, "videos/video_id": TEXT,
                            "videos/label": INTEGERS})
    if 0 in labels.shape or labels.shape[1] != count:
        raise LayoutProblem(f"{labels.name} is {labels.shape}, not one row a partition "
                            f"(at least one) and one column for each of the {count} videos")
    for scores in json_dataset(group, "partitions/quality", list):
        _scores(scores, _where(group, "partitions/quality"))


def _scores(scores: Any, where: str) -> None:
    if not isinstance(scores, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in scores.values()):
        raise LayoutProblem(f"{where} holds {str(scores)[:40]!r}, not a dict of scores")


def _assignments(h5: h5py.File) -> None:
    _assignments_in(h5)
    if "rounds" in h5:
        rounds = _group(h5, "rounds")
        for name in rounds:
            epoch = _group(rounds, name)
            attribute(epoch, "epoch", int)
            _assignments_in(epoch)


def _features(h5: h5py.File) -> None:
    features = dataset(h5, "features", NUMBERS, 2)
    attribute(features, "feature", str)
    parsed(attribute(features, "source", str), f"attribute 'source' of {features.name}", dict)
    count = columns(_group(h5, "videos"), {"video_id": TEXT, "label": INTEGERS, "split": TEXT})
    if features.shape[0] != count:
        raise LayoutProblem(f"{features.name} has {features.shape[0]} rows for {count} videos")
    dataset(h5, "classes/name", TEXT, 1)


def _retrieval(h5: h5py.File) -> None:
    shapes = {dataset(h5, "neighbours", INTEGERS, 2).shape,
              dataset(h5, "similarities", NUMBERS, 2).shape}
    queries = columns(_group(h5, "queries"), {"video_id": TEXT, "label": INTEGERS})
    columns(_group(h5, "gallery"), {"video_id": TEXT, "label": INTEGERS})
    if len(shapes) > 1 or next(iter(shapes))[0] != queries:
        raise LayoutProblem(f"/neighbours and /similarities are {sorted(shapes)}, not one "
                            f"row for each of the {queries} queries")
    recall = json_dataset(h5, "recall", dict)
    if not all(key.isdecimal() for key in recall):
        raise LayoutProblem("/recall holds keys other than numbers k")
    _scores(recall, "/recall")
    if not all(isinstance(row, dict) for row in json_dataset(h5, "per_class", list)):
        raise LayoutProblem("/per_class holds rows that are not objects")


def _provenance(h5: h5py.File) -> None:
    found = json_dataset(h5, "provenance", dict)
    for key, kind in PROVENANCE_FIELDS.items():
        if key in found and not isinstance(found[key], kind):
            raise LayoutProblem(f"/provenance holds a {type(found[key]).__name__} as {key}, "
                                f"not a {kind.__name__}")
    if not all(isinstance(item, dict) for item in found.get("inputs", [])):
        raise LayoutProblem("/provenance lists inputs that are not objects")


LAYOUTS: dict[str, Callable[[h5py.File], None]] = {
    KIND_FRAMES: _frames, KIND_FLOW: _flow, KIND_ASSIGNMENTS: _assignments,
    KIND_FEATURES: _features, KIND_RETRIEVAL: _retrieval,
}


def layout_problem(h5: h5py.File, kind: str) -> str | None:
    """What in `h5`, a `kind` artifact, is not as its readers read it, or None (always for a
    kind without a layout here)."""
    if kind not in LAYOUTS:
        return None
    try:
        attribute(h5, "fingerprint", str)
        if "content_digest" in h5.attrs:
            attribute(h5, "content_digest", str)
        _provenance(h5)
        LAYOUTS[kind](h5)
    except LayoutProblem as problem:
        return str(problem)
    return None
