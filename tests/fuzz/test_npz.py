"""`load_features` given a .npz that is damaged or holds the wrong things (arrays of other
dtypes and ranks, object arrays, headers declaring absurd shapes, zips that are truncated or
inflate far past the file) returns features or stops with one of slic's one-line errors."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.lib import format as npy

from stages.io.features import load_features
from tests.fuzz.promise import QUICK, SLOW, file_battery, kept_promise

NAMES = ["features", "labels", "split", "video_ids", "class_names", "other"]
DTYPES = st.one_of(hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(), hnp.floating_dtypes(),
                   hnp.complex_number_dtypes(), hnp.boolean_dtypes(), hnp.unicode_string_dtypes(),
                   hnp.byte_string_dtypes(), hnp.datetime64_dtypes())
ARRAYS = hnp.arrays(DTYPES, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5))
VOID = np.zeros(3, dtype="V4")  # opaque bytes: no strategy of hypothesis makes them


def npy_header(shape: tuple[int, ...], descr: str, data: bytes) -> bytes:
    """A .npy member whose header declares `shape` of `descr`, followed by `data` only."""
    buffer = io.BytesIO()
    npy.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False,
                                        "shape": shape})
    return buffer.getvalue() + data


def zipped(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def saved(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


REAL = saved({"features": np.eye(4, 3, dtype=np.float32), "labels": np.array([0, 1, 0, 1]),
              "split": np.array(["train", "train", "test", "test"])})
NPZ = st.one_of(
    st.dictionaries(st.sampled_from(NAMES), ARRAYS, max_size=4).map(saved),
    st.dictionaries(st.sampled_from(NAMES), st.sampled_from([np.array([{"a": 1}, None]), VOID]),
                    min_size=1, max_size=2).map(saved),  # object arrays are pickled
    st.tuples(st.lists(st.integers(0, 10**12), max_size=3).map(tuple),
              st.sampled_from(["<f4", "<i8", "|O", "<U10", "|V8", "bogus"]),
              st.binary(max_size=64)).map(
        lambda spec: zipped({"features.npy": npy_header(*spec)})),
    st.integers(0, len(REAL)).map(lambda end: REAL[:end]),
    st.tuples(st.integers(0, len(REAL) - 1), st.binary(min_size=1, max_size=8)).map(
        lambda change: REAL[:change[0]] + change[1] + REAL[change[0] + len(change[1]):]),
    st.binary(max_size=100),
    st.integers(1, 70).map(lambda count: zipped({f"a{i}.npy": npy_header((1,), "<f4",
                                                                       bytes(4))
                                                 for i in range(count)})),
)


def test_the_sample_loads(tmp_path):
    (tmp_path / "f.npz").write_bytes(REAL)
    assert load_features(tmp_path / "f.npz").features.shape == (4, 3)


test_damaged_npz = file_battery("features.npz", NPZ, load_features, QUICK * 4)
test_damaged_npz_many = pytest.mark.slow(
    file_battery("features.npz", NPZ, load_features, SLOW * 4))


def test_a_compressed_bomb_is_refused_in_bounded_memory(tmp_path):
    """Zeros that deflate 1000x: refused from the zip's directory, nothing inflated."""
    path: Path = tmp_path / "bomb.npz"
    path.write_bytes(zipped({"features.npy": npy_header((2**26,), "<f4", bytes(2**28))},
                            zipfile.ZIP_DEFLATED))
    error = kept_promise(lambda: load_features(path))
    assert error is not None and "would inflate to" in str(error)
