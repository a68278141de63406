"""Every reader of an HDF5 artifact (`slic inspect`, with and without --videos, and the
loaders the stages use) given a damaged artifact of each kind returns or stops with one of
slic's one-line errors."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stages.clips.store import ClipStore
from stages.inspect_artifact import describe
from stages.io.artifacts import (
    ImageStream,
    core,
    feature_dim,
    isolated,
    open_artifact,
    read_assignment_rounds,
    read_assignments,
    read_failures,
    read_features,
    read_flow_settings,
    read_header,
    read_provenance,
    read_retrieval,
    read_video_table,
    stream_info,
    stream_names,
)
from stages.io.features import load_features
from tests.fuzz import samples
from tests.fuzz.damage import Damage, damages, shrink_heap_free_space
from tests.fuzz.promise import QUICK, SLOW, examples, kept_promise

KINDS = sorted(samples.ARTIFACTS)


def read_videos(h5) -> None:
    """What the stages read of frames.h5 and flow.h5, and a first image of each stream."""
    table = read_video_table(h5)
    read_failures(h5)
    read_flow_settings(h5)
    for name in stream_names(h5):
        stream_info(h5, name)
        ImageStream(h5, name).read(0, min(len(table), 1))


LOADERS = {
    "frames": read_videos, "flow": read_videos,
    "features": lambda h5: (read_features(h5), feature_dim(h5)),
    "assignments": lambda h5: (read_assignments(h5), read_assignment_rounds(h5)),
    "retrieval": read_retrieval,
}


def load(path: Path, kind: str) -> None:
    """Open `path` as a `kind` artifact and read it as the stages do."""
    with open_artifact(path, kind) as h5:
        read_header(h5)
        read_provenance(h5)
        LOADERS[kind](h5)


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One valid artifact of each kind."""
    folder = tmp_path_factory.mktemp("originals")
    return {kind: write(folder / f"{kind}.h5") for kind, write in samples.ARTIFACTS.items()}


def readers(path: Path, kind: str, originals: dict[str, Path]) -> list:
    """Each reader of a `kind` artifact at `path`, as a call without arguments."""
    found = [lambda: describe(path), lambda: load(path, kind)]
    if kind != "retrieval":  # the one kind without a per-video table
        found.append(lambda: describe(path, videos=True))
    if kind == "features":
        found.append(lambda: load_features(path))
    if kind == "frames":
        found.append(lambda: ClipStore(path))
    if kind == "flow":
        found.append(lambda: ClipStore(originals["frames"], path))
    return found


def check(kind: str, damage: Damage, originals: dict[str, Path], folder: Path) -> None:
    """Damage a copy of the `kind` sample and run every reader of it."""
    folder.mkdir(exist_ok=True)
    path = folder / f"{kind}.h5"
    path.write_bytes(originals[kind].read_bytes())
    damage(path)
    for read in readers(path, kind, originals):
        kept_promise(read)


@pytest.mark.parametrize("kind", KINDS)
def test_the_samples_read_whole(kind, originals):
    for read in readers(originals[kind], kind, originals):
        assert kept_promise(read) is None


def damaged_artifacts(count: int):
    """The battery for one kind, `count` damages drawn per kind."""
    @pytest.mark.parametrize("kind", KINDS)
    @examples(count)
    @given(data=st.data())
    def battery(kind, originals, tmp_path, data):
        damage = data.draw(damages(originals[kind]), label="damage")
        check(kind, damage, originals, tmp_path / "damaged")

    return battery


test_damaged_artifacts = damaged_artifacts(QUICK)
test_damaged_artifacts_many = pytest.mark.slow(damaged_artifacts(SLOW))


def test_a_damaged_global_heap_is_one_line_though_hdf5_never_ends_reading_it(tmp_path,
                                                                            monkeypatch):
    """HDF5 loops forever, holding Python's lock, on a global heap whose free space is
    misdeclared: open_artifact's first read happens in a child, which is stopped."""
    path = samples.assignments(tmp_path / "assignments.h5")
    shrink_heap_free_space(path)
    monkeypatch.setattr(isolated, "PROBE_TIMEOUT_S", 2.0)
    error = kept_promise(lambda: describe(path))
    assert error is not None and "HDF5 did not finish reading it in 2 s" in str(error)


def test_a_crash_of_hdf5_in_the_first_read_is_one_line(tmp_path, monkeypatch):
    """What HDF5 cannot survive (a native crash) happens in the child: one line here."""
    written = samples.assignments(tmp_path / "written.h5")  # trusted: this process wrote it
    path = tmp_path / "assignments.h5"
    path.write_bytes(written.read_bytes())  # a file from elsewhere
    monkeypatch.setattr(core, "_probe", lambda *args: os.kill(os.getpid(), signal.SIGSEGV))
    error = kept_promise(lambda: describe(path))
    assert error is not None and "HDF5 crashed reading it (SIGSEGV)" in str(error)
