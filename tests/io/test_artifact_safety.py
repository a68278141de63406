"""An artifact whose datasets declare far more bytes than the file holds (a crafted shape with
no data behind it, a chunked dataset of fill values) is refused with one line when opened,
before any reader allocates it; every real artifact declares no more than its file."""

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from slic_cli.app import app
from stages.io.artifacts import (
    KIND_FEATURES,
    StoredFeatures,
    open_artifact,
    read_video_table,
    write_artifact,
    write_features,
    write_provenance,
)
from stages.io.artifacts.core import Provenance
from stages.io.artifacts.safety import declared_bytes, declared_limit
from stages.io.features import load_features
from stages.runtime.errors import ArtifactError

HUGE = 10**12  # elements: terabytes in any dtype


def write_small_features(path):
    """A features.h5 of 6 videos of 4-D features, 2 classes, written as retrieve writes it."""
    labels = np.array([0, 1, 0, 1, 0, 1])
    stored = StoredFeatures(np.eye(6, 4, dtype=np.float32), np.array([f"v{i}" for i in range(6)],
                            dtype=object), labels, np.array(["train"] * 4 + ["test"] * 2,
                                                            dtype=object), ["A", "B"], "projection")
    with write_artifact(path, KIND_FEATURES, "tests") as h5:
        write_features(h5, stored)
        write_provenance(h5, Provenance("tests", {}, "test", [], "0"))
    return path


def replace_dataset(source, target, name, **declared):
    """A copy of artifact `source` at `target` whose dataset `name` is replaced by an empty
    one created with `declared` (shape, dtype, chunks): HDF5 stores none of its data."""
    target.write_bytes(source.read_bytes())
    with h5py.File(target, "a") as h5:
        del h5[name]
        h5.create_dataset(name, **declared)
    return target


def all_datasets(h5):
    found = []
    h5.visititems(lambda name, item: found.append(item) if isinstance(item, h5py.Dataset)
                  else None)
    return found


def test_real_artifacts_declare_no_more_than_their_file(tiny_frames, tmp_path):
    """The bound rests on this: slic writes no compressed dataset."""
    for path in (tiny_frames, write_small_features(tmp_path / "features.h5")):
        with h5py.File(path, "r") as h5:
            datasets = all_datasets(h5)
            assert datasets and all(d.compression is None for d in datasets)
            assert max(declared_bytes(d) for d in datasets) <= path.stat().st_size
        open_artifact(path).close()


@pytest.mark.parametrize("name, declared", [
    ("videos/label", {"shape": (HUGE,), "dtype": np.int32, "chunks": (1 << 20,)}),
    ("videos/num_images", {"shape": (HUGE,), "dtype": np.int32}),  # contiguous, never written
    ("classes/name", {"shape": (HUGE,), "dtype": h5py.string_dtype(), "chunks": (1 << 16,),
                      "fillvalue": None}),
])
def test_a_video_table_column_declaring_terabytes_is_refused(tiny_frames, tmp_path, name,
                                                            declared):
    crafted = replace_dataset(tiny_frames, tmp_path / "frames.h5", name, **declared)
    size = crafted.stat().st_size
    assert size < tiny_frames.stat().st_size + 2**16  # nothing of the terabytes is stored
    with pytest.raises(ArtifactError) as error:
        with open_artifact(crafted, "frames") as h5:
            read_video_table(h5)
    message = str(error.value)
    assert f"{crafted} is a damaged or unsafe artifact: /{name} declares" in message
    assert f"in a file of {size} bytes" in message and "\n" not in message
    result = CliRunner().invoke(app, ["inspect", str(crafted), "--videos"])
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.rstrip("\n").splitlines()
    assert len(lines) == 1 and "damaged or unsafe artifact" in lines[0] and name in lines[0]


def test_features_declaring_more_than_the_bound_are_refused(tmp_path):
    real = write_small_features(tmp_path / "features.h5")
    rows = declared_limit(real.stat().st_size) // (4 * 64) + 1  # just past the bound
    crafted = replace_dataset(real, tmp_path / "crafted.h5", "features", shape=(rows, 64),
                              dtype=np.float32, chunks=(1024, 64))
    with pytest.raises(ArtifactError, match=r"/features declares \d+ bytes \(shape \("
                                            f"{rows}, 64\\)"):
        load_features(crafted)
    assert len(load_features(real).features) == 6
