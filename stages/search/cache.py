"""The index cached beside the features: reused when it was built from the same features
with the same method and seed, built again (and the file replaced) otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.runtime.errors import ArtifactError
from stages.search.fingerprint import features_fingerprint
from stages.search.index import SearchIndex, StaleIndex, resolved_method
from stages.search.rows import checked_rows


@dataclass(frozen=True)
class CachedIndex:
    """An index ready to search, and how it was obtained: "reused", "built" (no file was
    there) or "rebuilt: <why the file there was not reused>", for the command to report."""

    index: SearchIndex
    outcome: str


def _mismatch(index: SearchIndex, method: str, seed: int) -> str | None:
    """Why a saved index with the right fingerprint does not serve (method, seed), or None."""
    found = index.description
    if found.method != method:
        return f"it is {found.method}, {method} was asked for"
    if found.seed != seed:
        return f"it was built with seed {found.seed}, not {seed}"
    return None


def cached_index(features: np.ndarray, path: Path, method: str = "auto", seed: int = 0
                 ) -> CachedIndex:
    """The index of the (N, D) `features` with `method` and `seed` (see SearchIndex.build),
    read from `path` when the file there was built from the same features (fingerprint), the
    same resolved method and seed; otherwise built and written to `path` atomically, replacing
    a stale, damaged or different file. Errors reading the file other than its content (a
    folder without permission) are raised, not papered over by a rebuild."""
    path = Path(path)
    rows = checked_rows(features, "features")
    wanted = resolved_method(method, len(rows))
    reason = None
    if path.exists():
        try:
            index = SearchIndex.load(path, fingerprint=features_fingerprint(rows))
        except StaleIndex:
            reason = "it was built from other features"
        except ArtifactError as error:
            reason = f"it could not be read: {error}"
        else:
            reason = _mismatch(index, wanted, seed)
            if reason is None:
                return CachedIndex(index, "reused")
    index = SearchIndex.build(rows, wanted, seed)
    index.save(path)
    return CachedIndex(index, "built" if reason is None else f"rebuilt: {reason}")
