"""Writes that lose nothing: a full disk is one line naming the path and the space (the
out-of-space errors are injected), killed writers leave no temporaries, merges never race."""

import errno
import os
from collections import namedtuple

import pytest
import torch
import typer

from stages.io.checkpoint import load_checkpoint, save_checkpoint
from stages.runtime.errors import DiskFull

Usage = namedtuple("Usage", "total used free")


def test_a_checkpoint_write_that_fails_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"model": {"w": torch.ones(2)}, "epoch": 1}, path)

    def full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos; "
                           "PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(DiskFull, match=f"cannot write the checkpoint {path}") as error:
        save_checkpoint({"model": {"w": torch.zeros(2)}, "epoch": 2}, path)
    assert "\n" not in str(error.value) and "inline_container" not in str(error.value)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_enospc_during_fsync_is_disk_full(tmp_path, monkeypatch):
    def full(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DiskFull, match="free on its device"):
        save_checkpoint({"model": {}}, tmp_path / "best.pt")


@pytest.mark.slow
def test_a_merge_that_cannot_fit_stops_before_writing_and_resumes(synthetic_root, tmp_path,
                                                                  monkeypatch):
    from stages.extract_frames import ExtractFramesConfig
    from stages.extract_frames import run as extract_frames
    from stages.io import space
    from stages.runtime.sections import DataConfig, WorkspaceConfig

    settings = ExtractFramesConfig(short_side=32, workers=1)
    data = DataConfig(dataset="synthetic", root=str(synthetic_root))
    workspace = WorkspaceConfig(root=str(tmp_path / "ws"))
    real = space.shutil.disk_usage
    monkeypatch.setattr(space.shutil, "disk_usage", lambda path: Usage(1, 1, 1024))
    with pytest.raises(DiskFull, match="merging 24 videos into frames.h5 needs about"):
        extract_frames(settings, data, workspace)
    output = tmp_path / "ws" / "synthetic" / "frames.h5"
    assert not output.exists()
    monkeypatch.setattr(space.shutil, "disk_usage", real)
    result = extract_frames(settings, data, workspace)
    assert result.status == "written" and result.counts.reused == 24


def test_the_cli_turns_a_chained_enospc_into_one_line(capsys):
    from slic_cli.console import user_errors

    def write():
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/data/ws/frames.h5")
        except OSError as error:
            raise RuntimeError("merge failed") from error

    with pytest.raises(typer.Exit) as stopped:
        with user_errors():
            write()
    assert stopped.value.exit_code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "no space left" in lines[0] and "/data/ws/frames.h5" in lines[0]


def test_part_temporaries_of_killed_writers_are_removed(tmp_path):
    import subprocess
    import sys

    from stages.io.staging import StagingArea

    staging = StagingArea(tmp_path / "frames.h5", "f" * 32)
    staging.prepare()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = staging.folder / f".00000003.{dead}.tmp"
    live = staging.folder / f".00000004.{os.getpid()}.tmp"
    stale.write_bytes(b"half a part")
    live.write_bytes(b"being written")
    staging.prepare()
    assert not stale.exists() and live.exists()


def test_a_whole_run_waits_for_a_twin_merging_the_same_output(tmp_path):
    import threading
    import time

    from stages.io.staging import StagingArea

    staging = StagingArea(tmp_path / "frames.h5", "f" * 32)
    holding, release = threading.Event(), threading.Event()

    def twin() -> None:
        with staging.merge_lock() as acquired:
            assert acquired
            holding.set()
            release.wait(5)

    thread = threading.Thread(target=twin)
    thread.start()
    holding.wait(5)
    with staging.merge_lock() as acquired:  # a shard: leaves the merge to the twin
        assert not acquired
    threading.Timer(0.3, release.set).start()
    started = time.perf_counter()
    with staging.merge_lock(wait=True) as acquired:  # a whole run: waits for it
        assert acquired and time.perf_counter() - started >= 0.2
    thread.join()
