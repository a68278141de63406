"""End to end: `slic inspect` of a crafted file exits 2 with exactly one line on stderr and
nothing on stdout, and refusing an inflating file costs memory in proportion to the file,
not to what it declares; the HDF5 attribute bound refuses an attribute from its header."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from stages.io.artifacts import open_artifact, safety
from stages.runtime.errors import ArtifactError
from tests.conftest import run_slic
from tests.fuzz import samples
from tests.fuzz.damage import HUGE, declare_huge, replace, set_attribute


def crafted_files(folder: Path) -> list[Path]:
    """A features.h5 with an attribute declaring terabytes, one whose provenance is JSON
    nested far past Python's recursion limit, a checkpoint whose pickle is deep marks, and a
    results.json that claims to be a checkpoint."""
    huge = samples.features(folder / "huge" / "features.h5")
    declare_huge(huge, "/", as_attribute=True)
    deep = samples.features(folder / "deep" / "features.h5")
    replace(deep, "provenance", 16)
    mark_bomb = folder / "best.pt"
    mark_bomb.write_bytes(checkpoint_with_pickle(b"(" * 50_000 + b"t" * 50_000 + b"."))
    results = folder / "results.json"
    results.write_text('{"stage": "linear_probe", "kind": "checkpoint", "per_class": 3}')
    return [huge, deep, mark_bomb, results]


def checkpoint_with_pickle(data: bytes) -> bytes:
    from tests.fuzz.test_checkpoints import PICKLE, archive, real_members

    return archive({**real_members(), PICKLE: data})


@pytest.mark.slow
def test_inspect_of_crafted_files_is_one_line_and_exit_2(tmp_path):
    for path in crafted_files(tmp_path):
        for extra in ([], ["--json"]):
            result = run_slic("inspect", str(path), *extra, check=False)
            lines = result.stderr.rstrip("\n").splitlines()
            assert result.returncode == 2, (path, result.stderr)
            assert result.stdout == "" and len(lines) == 1, (path, result.stderr)
            assert lines[0].startswith("error:") and "Traceback" not in result.stderr


MEASURE = textwrap.dedent("""
    import resource, sys
    from stages.io.features import load_features
    from stages.runtime.errors import ArtifactError
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        load_features(sys.argv[1])
    except ArtifactError as error:
        print(str(error), file=sys.stderr)
    print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
""")


@pytest.mark.slow
@pytest.mark.parametrize("as_attribute", [True, False])
def test_refusing_a_file_that_declares_terabytes_costs_memory_like_the_file(tmp_path,
                                                                           as_attribute):
    """Measured in a process of its own (HDF5 allocates outside Python's tracemalloc): the
    peak grows by no more than a few times the file and a few MiB, not by HUGE bytes."""
    path = samples.features(tmp_path / "features.h5")
    declare_huge(path, "/videos", as_attribute)
    result = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True,
                            text=True, timeout=120)
    assert "is a damaged" in result.stderr, result.stderr
    assert int(result.stdout) < 8 * path.stat().st_size + 16 * 2**20 < HUGE


def test_an_attribute_declaring_more_than_the_bound_is_refused_from_its_header(tmp_path,
                                                                              monkeypatch):
    """A real attribute is no larger than its file, so the bound is lowered to see it work:
    the refusal names the file, the attribute and its size."""
    path = samples.features(tmp_path / "features.h5")
    with h5py.File(path, "a") as h5:
        h5["classes/name"].attrs["crafted"] = np.zeros(40_000, np.uint8)
    monkeypatch.setattr(safety, "DECLARED_FACTOR", 0)
    monkeypatch.setattr(safety, "DECLARED_SLACK", 20_000)
    with pytest.raises(ArtifactError) as error:
        open_artifact(path, "features")
    message = str(error.value)
    assert str(path) in message and "attribute 'crafted' of /classes/name declares 40000 " \
        "bytes" in message and "\n" not in message


def test_an_attribute_of_another_type_is_one_line_naming_it(tmp_path):
    path = samples.features(tmp_path / "features.h5")
    set_attribute(path, ("/", "schema_version"), 5)  # "abc"
    with pytest.raises(ArtifactError, match="attribute 'schema_version' of / is str, not int"):
        open_artifact(path, "features")
