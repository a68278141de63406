"""Helpers for tests: comparing artifacts, building datasets with bad videos."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np

from stages.io.video import write_video


def artifact_contents(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of an artifact except its provenance (which holds times)."""
    contents: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as h5:
        def visit(name: str, item) -> None:
            if isinstance(item, h5py.Dataset) and name != "provenance":
                contents[name] = item[()]
        h5.visititems(visit)
        contents["@attrs"] = np.array(sorted((k, str(v)) for k, v in h5.attrs.items()))
    return contents


def assert_same_contents(first: Path, second: Path) -> None:
    a, b = artifact_contents(first), artifact_contents(second)
    assert a.keys() == b.keys()
    for name in a:
        assert np.array_equal(a[name], b[name]), f"{name} differs"


def copy_with_bad_videos(source: Path, target: Path) -> dict[str, str]:
    """Copy a synthetic dataset and add broken videos to its train list.

    Returns relpath -> a word the failure reason must contain.
    """
    shutil.copytree(source, target)
    folder = target / "Rise"
    (folder / "v_Rise_g09_c01.avi").write_bytes(b"")
    (folder / "v_Rise_g09_c02.avi").write_bytes(b"RIFF not really an avi" * 40)
    write_video(folder / "v_Rise_g09_c03.avi", np.zeros((1, 32, 32, 3), np.uint8), fps=25)
    good = (folder / "v_Rise_g02_c01.avi").read_bytes()
    (folder / "v_Rise_g09_c04 with space.avi").write_bytes(good[: len(good) // 3])
    lists = target / "ucfTrainTestlist" / "trainlist01.txt"
    extra = [f"Rise/v_Rise_g09_c0{i}.avi 2" for i in (1, 2, 3)]
    extra.append("Rise/v_Rise_g09_c04 with space.avi 2")
    lists.write_text(lists.read_text() + "\n".join(extra) + "\n")
    return {"Rise/v_Rise_g09_c01.avi": "ffmpeg",
            "Rise/v_Rise_g09_c02.avi": "ffmpeg",
            "Rise/v_Rise_g09_c03.avi": "too short"}
