"""A run folder holds one training process at a time; a dead holder leaves no stale lock."""

import subprocess
import sys

import pytest

from stages.runtime.errors import ConfigError
from stages.runtime.run_lock import run_folder_lock

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
