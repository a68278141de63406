"""The index cached beside the features: reused only when it matches them, rebuilt otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.search.cache import cached_index
from stages.search.index import SearchIndex
from tests.search.clustered import clustered_rows

ROWS = clustered_rows(2_000, seed=6)


def test_a_matching_cache_is_reused_without_writing(tmp_path: Path) -> None:
    path = tmp_path / "collection.index"
    first = cached_index(ROWS, path, "ivf", seed=2)
    written = path.stat()
    second = cached_index(ROWS.copy(), path, "ivf", seed=2)
    assert (first.outcome, second.outcome) == ("built", "reused")
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == (written.st_mtime_ns, written.st_ino)
    for a, b in zip(first.index.search(ROWS[:20], 5), second.index.search(ROWS[:20], 5)):
        np.testing.assert_array_equal(a, b)


def test_auto_reuses_the_method_it_stands_for(tmp_path: Path) -> None:
    path = tmp_path / "collection.index"
    cached_index(ROWS, path, "exact")
    assert cached_index(ROWS, path, "auto").outcome == "reused"


def test_changed_features_rebuild_the_cache_for_the_new_ones(tmp_path: Path) -> None:
    path = tmp_path / "collection.index"
    cached_index(ROWS, path, "exact")
    changed = np.concatenate([ROWS, clustered_rows(10, seed=7)])
    rebuilt = cached_index(changed, path, "exact")
    assert rebuilt.outcome == "rebuilt: it was built from other features"
    assert SearchIndex.load(path).description.count == len(changed)
    _, indices = rebuilt.index.search(changed[-3:], 1)
    np.testing.assert_array_equal(indices[:, 0], np.arange(len(ROWS), len(changed))[-3:])


def test_another_method_or_seed_rebuilds(tmp_path: Path) -> None:
    path = tmp_path / "collection.index"
    cached_index(ROWS, path, "exact")
    assert cached_index(ROWS, path, "ivf", seed=1).outcome == (
        "rebuilt: it is exact, ivf was asked for")
    assert cached_index(ROWS, path, "ivf", seed=3).outcome == (
        "rebuilt: it was built with seed 1, not 3")
    assert SearchIndex.load(path).description.seed == 3


def test_a_damaged_cache_is_rebuilt_and_says_why(tmp_path: Path) -> None:
    path = tmp_path / "collection.index"
    cached_index(ROWS, path, "exact")
    path.write_bytes(path.read_bytes()[:1000])
    rebuilt = cached_index(ROWS, path, "exact")
    assert rebuilt.outcome.startswith("rebuilt: it could not be read: ")
    assert "truncated" in rebuilt.outcome
    assert SearchIndex.load(path).description.count == len(ROWS)
