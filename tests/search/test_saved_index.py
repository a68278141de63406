"""Saving and loading a search index: same results after a round trip, atomic replacement,
and a one-line ArtifactError for a missing, damaged or stale file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stages.runtime.errors import ArtifactError
from stages.search.fingerprint import features_fingerprint
from stages.search.index import SearchIndex, StaleIndex
from stages.search.index_file import END, LENGTH, MAGIC
from tests.search.clustered import clustered_rows

ROWS = clustered_rows(3_000, seed=4)
QUERIES = clustered_rows(50, seed=5)


@pytest.fixture(scope="module", params=["exact", "ivf", "hnsw"])
def saved(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> tuple[SearchIndex, Path]:
    index = SearchIndex.build(ROWS, request.param, seed=1)
    path = tmp_path_factory.mktemp(request.param) / "collection.index"
    index.save(path)
    return index, path


def test_a_loaded_index_gives_the_same_results(saved: tuple[SearchIndex, Path]) -> None:
    index, path = saved
    loaded = SearchIndex.load(path, fingerprint=features_fingerprint(ROWS))
    assert loaded.description == index.description
    for before, after in zip(index.search(QUERIES, 10), loaded.search(QUERIES, 10)):
        np.testing.assert_array_equal(before, after)


def test_saving_leaves_no_temporary_and_replaces_the_file(saved: tuple[SearchIndex, Path]
                                                          ) -> None:
    index, path = saved
    other = SearchIndex.build(ROWS[:100], "exact")
    copy = path.with_name("copy.index")
    other.save(copy)
    index.save(copy)
    assert sorted(p.name for p in path.parent.iterdir()) == ["collection.index", "copy.index"]
    assert copy.read_bytes() == path.read_bytes()


def test_an_index_of_other_features_is_refused_as_stale(saved: tuple[SearchIndex, Path]
                                                        ) -> None:
    _, path = saved
    changed = ROWS.copy()
    changed[7, 3] += 0.01
    with pytest.raises(StaleIndex) as error:
        SearchIndex.load(path, fingerprint=features_fingerprint(changed))
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def _damaged_copies(path: Path, folder: Path) -> dict[str, Path]:
    data = path.read_bytes()
    header_end = len(MAGIC) + LENGTH.size + LENGTH.unpack_from(data, len(MAGIC))[0]
    header = json.loads(data[len(MAGIC) + LENGTH.size:header_end])
    lying = json.dumps({**header, "count": header["count"] + 1}).encode()
    cuts = {
        "header with another count": MAGIC + LENGTH.pack(len(lying)) + lying + data[header_end:],
        "truncated": data[: len(data) * 2 // 3],
        "no end": data[: -len(END)],
        "garbage": MAGIC + b"\x00" * 200,
        "other file": b"PK\x03\x04" + data[4:],
        "payload overwritten": data[:header_end] + b"\xff" * 64 + data[header_end + 64:],
        "payload shortened": data[:header_end] + data[header_end + 64:],
    }
    copies = {}
    for name, content in cuts.items():
        copies[name] = folder / f"{name}.index"
        copies[name].write_bytes(content)
    return copies


def test_a_damaged_file_is_a_one_line_error_naming_it(saved: tuple[SearchIndex, Path],
                                                      tmp_path: Path) -> None:
    _, path = saved
    for name, copy in _damaged_copies(path, tmp_path).items():
        with pytest.raises(ArtifactError) as error:
            SearchIndex.load(copy)
        message = str(error.value)
        assert str(copy) in message and "\n" not in message, name


def test_a_missing_file_is_an_artifact_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        SearchIndex.load(tmp_path / "absent.index")


def test_the_fingerprint_follows_every_value_and_the_shape() -> None:
    base = features_fingerprint(ROWS)
    assert features_fingerprint(ROWS.astype(np.float64)) == base  # same float32 rows
    assert features_fingerprint(ROWS[:-1]) != base
    assert features_fingerprint(ROWS.reshape(-1, 16)) != base
    nudged = ROWS.copy()
    nudged[-1, -1] = np.nextafter(nudged[-1, -1], np.float32(2))
    assert features_fingerprint(nudged) != base
