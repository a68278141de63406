"""A run folder holds one training process at a time, an artifact one writer (each shard of it
one); a dead holder leaves no lock that stops the next one."""

import os
import subprocess
import sys

import numpy as np
import pytest

from stages.runtime.errors import ConfigError
from stages.runtime.run_lock import artifact_lock, artifact_lock_path, run_folder_lock

HOLD = """
import sys, time
from pathlib import Path
from stages.runtime.run_lock import run_folder_lock
with run_folder_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_second_process_is_refused_until_the_holder_dies(tmp_path):
    folder = tmp_path / "runs" / "x"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=f"in use by process {holder.pid}") as error:
            with run_folder_lock(folder):
                pass
        assert "\n" not in str(error.value) and "--run-name" in str(error.value)
    finally:
        holder.kill()
        holder.wait()
    with run_folder_lock(folder):  # the kernel dropped the dead holder's lock
        assert (folder / ".lock").read_text() != str(holder.pid)


def test_the_lock_is_released_at_the_end_of_the_block(tmp_path):
    with run_folder_lock(tmp_path / "run"):
        pass
    with run_folder_lock(tmp_path / "run"):
        pass
    with run_folder_lock(tmp_path / "other", active=False):
        assert not (tmp_path / "other").exists()


HOLD_ARTIFACT = """
import sys, time
from pathlib import Path
from stages.runtime.run_lock import artifact_lock
with artifact_lock(Path(sys.argv[1]), "extract-frames"):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_second_writer_of_an_artifact_is_refused_with_one_line(tmp_path):
    output = tmp_path / "ws" / "frames.h5"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_ARTIFACT, str(output)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError) as error:
            with artifact_lock(output, "extract-frames"):
                pass
        message = str(error.value)
        assert "\n" not in message and str(output) in message
        assert f"process {holder.pid}" in message and "--out" in message
        with artifact_lock(output, "extract-frames", "shard-1-of-2"):  # another shard: free
            pass
    finally:
        holder.kill()
        holder.wait()
    assert artifact_lock_path(output).read_text() == str(holder.pid)  # stale: a dead pid
    with artifact_lock(output, "extract-frames"):  # taken over
        assert artifact_lock_path(output).read_text() == str(os.getpid())
    assert not artifact_lock_path(output).exists()  # removed on release


def test_a_stage_refuses_an_output_another_process_writes(tmp_path):
    from stages.cluster import ClusterConfig
    from stages.cluster import run as cluster
    from tests.test_cluster import write_npz

    features = write_npz(tmp_path / "features.npz", n=60)
    output = tmp_path / "assignments.h5"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_ARTIFACT, str(output)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=f"process {holder.pid}, another slic cluster"):
            cluster(ClusterConfig(), features, out=output)
        assert not output.exists()
    finally:
        holder.kill()
        holder.wait()
    assert cluster(ClusterConfig(), features, out=output).status == "written"


@pytest.mark.slow
def test_a_second_extract_frames_exits_2_naming_the_holder(tmp_path):
    from stages.io.video import write_video
    from tests.conftest import run_slic

    root = tmp_path / "data"
    (root / "Walk").mkdir(parents=True)
    write_video(root / "Walk" / "v.avi", np.zeros((4, 48, 64, 3), np.uint8), 25)
    output = tmp_path / "frames.h5"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_ARTIFACT, str(output)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        process = run_slic("extract-frames", "--dataset", "folder", "--root", str(root),
                           "--out", str(output), check=False)
    finally:
        holder.kill()
        holder.wait()
    assert process.returncode == 2
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and str(output) in lines[0] and str(holder.pid) in lines[0]
