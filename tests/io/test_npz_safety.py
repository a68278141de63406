"""A user's .npz of features is checked before numpy allocates what its headers declare."""

import io
import zipfile

import numpy as np
import pytest
from numpy.lib import format as npy

from stages.io.features import load_features
from stages.runtime.errors import ArtifactError


def npy_bytes(shape: tuple[int, ...], data: bytes) -> bytes:
    """A .npy member: a float32 header declaring `shape`, then `data`."""
    buffer = io.BytesIO()
    npy.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False,
                                        "shape": shape})
    return buffer.getvalue() + data


def test_a_compressed_npz_of_real_features_loads(tmp_path):
    features = np.zeros((500, 32), np.float32)  # compresses about 500x
    np.savez_compressed(tmp_path / "ok.npz", features=features, labels=np.arange(500) % 4)
    assert load_features(tmp_path / "ok.npz").features.shape == (500, 32)


def test_a_header_declaring_far_more_than_its_member_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "lie.npz", "w") as archive:
        archive.writestr("features.npy", npy_bytes((10**9, 128), bytes(64)))
    with pytest.raises(ArtifactError, match="declares 512000000000 bytes in a member of"):
        load_features(tmp_path / "lie.npz")


def test_members_that_inflate_far_past_the_file_are_refused_unread(tmp_path):
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("features.npy", npy_bytes((2**27,), bytes(2**29)))  # 512 MiB of zeros
    assert (tmp_path / "bomb.npz").stat().st_size < 2**20
    with pytest.raises(ArtifactError, match="would inflate to") as error:
        load_features(tmp_path / "bomb.npz")
    assert "\n" not in str(error.value)


def test_too_many_members_are_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "many.npz", "w") as archive:
        for index in range(100):
            archive.writestr(f"a{index}.npy", npy_bytes((1,), bytes(4)))
    with pytest.raises(ArtifactError, match="holds 100 members"):
        load_features(tmp_path / "many.npz")
