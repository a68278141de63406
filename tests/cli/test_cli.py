"""The installed `slic` command, run as a subprocess the way users and scripts run it."""

import json
import os
import signal
import subprocess
import time

import pytest
import torch
import yaml

from tests.conftest import run_slic, run_slic_json, slic_executable
from tests.helpers import assert_same_contents

pytestmark = pytest.mark.slow  # every test here starts the `slic` command

SMALL_SET = ["--set", "make_dataset.groups_per_class=2", "--set", "make_dataset.clips_per_group=2",
             "--set", "make_dataset.test_groups=1", "--set", "make_dataset.max_seconds=1.0",
             "--set", "make_dataset.min_seconds=0.6", "--set", "make_dataset.max_size=96",
             "--set", "make_dataset.min_size=64"]


def test_quick_start_chain_and_inspect(tmp_path):
    made = run_slic_json("make-dataset", "synthetic", "--out", "demo data", "--num-classes", "3",
                         *SMALL_SET, cwd=tmp_path)
    assert made["num_videos"] == 12
    frames = run_slic_json("extract-frames", "--dataset", "synthetic", "--root", "demo data",
                           "--short-side", "64", cwd=tmp_path)
    assert frames["status"] == "written" and frames["num_failed"] == 0
    flow = run_slic_json("compute-flow", "--dataset", "synthetic", cwd=tmp_path)
    assert flow["status"] == "written"
    assert flow["num_images"] == frames["num_images"] - 12
    for name, kind in (("frames.h5", "frames"), ("flow.h5", "flow")):
        info = run_slic_json("inspect", f"slic-work/synthetic/{name}", cwd=tmp_path)
        assert info["kind"] == kind and info["schema_version"] == 1
        assert (info["num_videos"], info["num_classes"]) == (12, 3)
        provenance = info["provenance"]
        stage = "extract-frames" if kind == "frames" else "compute-flow"
        assert provenance["command"].startswith(f"slic {stage}")
        assert provenance["config"]["data"]["dataset"] == "synthetic"
        assert all("size" in i and "checksum" in i for i in provenance["inputs"])
        assert provenance["started"] <= provenance["finished"]
        assert sum(c["videos"] for c in info["classes"]) == 12
    frames_config = run_slic_json("inspect", "slic-work/synthetic/frames.h5", cwd=tmp_path)
    assert frames_config["provenance"]["config"]["extract_frames"]["short_side"] == 64
    table = run_slic("inspect", "slic-work/synthetic/flow.h5", cwd=tmp_path).stdout
    assert "per class" in table and "Slide" in table
    cached = run_slic_json("compute-flow", "--dataset", "synthetic", cwd=tmp_path)
    assert cached["status"] == "up to date"


NO_CUDA_ONLY = pytest.mark.skipif(torch.cuda.is_available(),
                                  reason="checks the error on a machine without CUDA")


# Commands a user gets wrong, and the words the one error line must hold; also run in
# process by tests/cli/test_app.py.
USER_MISTAKES = [
    (["extract-frames", "--dataset", "ucf101", "--root", "no/such/dir"], ["no/such/dir"]),
    (["extract-frames", "--dataset", "ucf"], ["data.dataset", "ucf101, hmdb51"]),
    (["extract-frames", "--set", "extract_frames.short_side=tiny"], ["short_side"]),
    (["extract-frames", "--config", "missing.yaml"], ["missing.yaml"]),
    (["compute-flow", "--dataset", "hmdb51"], ["frames.h5", "extract-frames"]),
    (["inspect", "example.yaml"], ["example.yaml", "not an HDF5 file"]),
    (["make-dataset", "imagenet"], ["imagenet", "synthetic"]),
    (["extract-frames", "--shard", "2/2", "--root", "."], ["--shard"]),
    *[pytest.param([command, "--device", "cuda"], ["compute.device", "no CUDA device"],
                   marks=NO_CUDA_ONLY)
      for command in ("pretrain", "finetune", "linear-probe", "retrieve")],
    (["finetune", "--device", "gpu"], ["compute.device", "'gpu'"]),
    (["extract-frames", "--dataset", "folder", "--root", ".", "--out", "example.yaml"],
     ["example.yaml", "not a slic artifact"]),
    (["extract-frames", "--dataset", "folder", "--root", ".", "--out", "."],
     ["is a folder"]),
    (["pretrain", "--amp", "fp8"], ["compute.amp", "bf16"]),
    (["retrieve", "--name", "nothere"], ["nothere", "slic pretrain"]),
    (["linear-probe", "--name", "nothere"], ["nothere", "slic pretrain"]),
    (["pretrain", "--run-name", "../../x"], ["pretrain.run_name", "folder name"]),
]


@pytest.mark.parametrize("args, words", USER_MISTAKES)
def test_user_mistakes_get_one_line_and_exit_2(tmp_path, args, words):
    (tmp_path / "example.yaml").write_text("data: {}\n")
    process = run_slic(*args, cwd=tmp_path, check=False)
    assert process.returncode == 2
    lines = process.stderr.rstrip("\n").splitlines()  # one line, not even a blank before it
    assert len(lines) == 1 and lines[0].startswith("error:"), process.stderr
    assert "Traceback" not in process.stderr
    for word in words:
        assert word in lines[0]
    assert (tmp_path / "example.yaml").read_text() == "data: {}\n"


def test_config_command_prints_resolved_yaml(tmp_path):
    out = run_slic("config", "--set", "compute_flow.bound=15", cwd=tmp_path).stdout
    assert yaml.safe_load(out)["compute_flow"]["bound"] == 15.0


def test_sigkill_then_resume_gives_the_same_artifact(synthetic_root, tmp_path):
    args = ["extract-frames", "--dataset", "synthetic", "--root", str(synthetic_root),
            "--workers", "1", "--codec", "raw", "--fps", "50", "--quiet"]
    process = subprocess.Popen([slic_executable(), *args, "--workspace", "killed"], cwd=tmp_path,
                               start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    parts = tmp_path / "killed" / "synthetic" / ".frames.h5.parts"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("*/*.npz"))) < 3:
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished_before_kill = len(list(parts.glob("*/*.npz")))
    assert 3 <= finished_before_kill < 24
    assert not (tmp_path / "killed" / "synthetic" / "frames.h5").exists()
    resumed = json.loads(run_slic(*args, "--workspace", "killed", "--json", cwd=tmp_path).stdout)
    assert resumed["reused"] >= finished_before_kill
    assert resumed["reused"] + resumed["processed"] == 24
    run_slic(*args, "--workspace", "clean", cwd=tmp_path)
    assert_same_contents(tmp_path / "killed/synthetic/frames.h5",
                         tmp_path / "clean/synthetic/frames.h5")


def test_sigterm_stops_with_one_line_and_the_run_resumes(synthetic_root, tmp_path):
    """A scheduler's kill (SIGTERM to the command only): the same clean stop as Ctrl-C, one
    line, exit 143, no worker's traceback; the next run goes on from the finished videos."""
    args = ["extract-frames", "--dataset", "synthetic", "--root", str(synthetic_root),
            "--workers", "2", "--codec", "raw", "--fps", "50", "--workspace", "ws"]
    process = subprocess.Popen([slic_executable(), *args], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    parts = tmp_path / "ws" / "synthetic" / ".frames.h5.parts"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("*/*.npz"))) < 2:
        time.sleep(0.005)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("terminated:") and "run again to resume" in lines[-1]
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr
    resumed = json.loads(run_slic(*args, "--quiet", "--json", cwd=tmp_path).stdout)
    assert resumed["reused"] >= 2 and resumed["reused"] + resumed["processed"] == 24
