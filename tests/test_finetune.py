import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from stages.io.checkpoint import load_checkpoint
from tests.conftest import TINY_PRETRAIN, run_slic, run_slic_json, slic_executable

pytestmark = pytest.mark.slow  # every test here trains through the `slic` command

TINY = [*(f"--set=pretrain.{key}={value}" for key, value in TINY_PRETRAIN.items()),
        "--set=finetune.workers=0", "--batch-size", "4", "--windows", "2", "--crops", "1"]


def test_finetune_resumes_after_sigkill_with_the_same_weights(training_workspace,
                                                              pretrained_run, tmp_path):
    common = ["--dataset", "synthetic", "--workspace", str(training_workspace), "--quiet"]
    best = pretrained_run / "best.pt"
    for name in ("straight", "killed"):
        (tmp_path / name).mkdir()
        shutil.copy(best, tmp_path / name / "best.pt")
    args = ["finetune", *common, *TINY, "--epochs", "3"]
    straight = run_slic_json(*args, "--checkpoint", str(tmp_path / "straight" / "best.pt"))
    assert straight["status"] == "trained" and 0 <= straight["top1"] <= straight["top5"] <= 1
    assert any("only 8 test videos" in w for w in straight["warnings"])
    assert "2 windows x 1 crops" in straight["made"]
    process = subprocess.Popen([slic_executable(), *args, "--checkpoint",
                                str(tmp_path / "killed" / "best.pt")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = tmp_path / "killed" / "finetune" / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (metrics.is_file() and metrics.read_text().strip()):
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    resumed = run_slic_json(*args, "--checkpoint", str(tmp_path / "killed" / "best.pt"),
                            "--resume")
    first = load_checkpoint(tmp_path / "straight" / "finetune" / "checkpoint.pt")["model"]
    second = load_checkpoint(tmp_path / "killed" / "finetune" / "checkpoint.pt")["model"]
    # Bitwise equal on this machine in every local run; one CI run differed in the last bits
    # (CPU kernels need not round alike in every process). A resume that lost any state
    # differs by at least an optimiser step (lr 1e-4 on weights ~1e-2), far above this bound.
    for name, tensor in first.items():
        torch.testing.assert_close(second[name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    assert resumed["top1"] == straight["top1"]
    results = json.loads((tmp_path / "killed" / "finetune" / "results.json").read_text())
    assert sum(map(sum, results["confusion"])) == 8
    again = run_slic_json(*args, "--checkpoint", str(tmp_path / "killed" / "best.pt"))
    assert again["status"] == "up to date" and again["top1"] == straight["top1"]
    longer = run_slic(*args, "--checkpoint", str(tmp_path / "killed" / "best.pt"),
                      "--set=finetune.dropout=0.5", check=False)
    assert longer.returncode == 2 and "finetune.dropout was 0.9, now 0.5" in longer.stderr


def test_finetune_from_random_init_with_bf16_autocast_on_cpu(training_workspace):
    summary = run_slic_json("finetune", "--dataset", "synthetic", "--workspace",
                            str(training_workspace), "--quiet", *TINY, "--random-init",
                            "--epochs", "1", "--crops", "10", "--force", "--device", "cpu",
                            "--amp", "bf16")
    assert Path(summary["folder"]).name == "finetune"
    assert Path(summary["folder"]).parent.name.startswith("random-r3d_tiny-seed7-")
    confusion = json.loads((Path(summary["folder"]) / "results.json").read_text())["confusion"]
    correct, total = sum(row[i] for i, row in enumerate(confusion)), sum(map(sum, confusion))
    assert total == 8 and summary["top1"] == pytest.approx(correct / total, abs=1e-6)
    assert len(summary["per_class"]) == 4


@pytest.mark.skipif(sys.platform != "linux", reason="gloo on CPU is tested on Linux")
def test_finetune_under_torchrun_two_ranks_agree(training_workspace, pretrained_run, tmp_path):
    common = ["--dataset", "synthetic", "--workspace", str(training_workspace), "--quiet"]
    shutil.copy(pretrained_run / "best.pt", tmp_path / "best.pt")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
               "--master-port", "29563", slic_executable(), "finetune", *common, *TINY,
               "--epochs", "2", "--checkpoint", str(tmp_path / "best.pt"), "--json"]
    process = subprocess.run(command, capture_output=True, text=True, timeout=600,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert process.returncode == 0, process.stderr[-3000:]
    summary = json.loads(process.stdout)
    assert summary["status"] == "trained" and 0 <= summary["top1"] <= summary["top5"] <= 1
    folder = tmp_path / "finetune"
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1]
    assert all(r["ranks_agree"] for r in records)
    results = json.loads((folder / "results.json").read_text())
    assert sum(map(sum, results["confusion"])) == 8  # every test video, gathered from 2 ranks


def test_a_diverged_finetune_keeps_its_last_good_checkpoint_and_resumes_with_a_lower_lr(
        training_workspace):
    common = ["finetune", "--dataset", "synthetic", "--workspace", str(training_workspace),
              "--quiet", *TINY, "--random-init", "--crops", "1"]
    first = run_slic_json(*common, "--epochs", "1", "--force")
    checkpoint = Path(first["folder"]) / "checkpoint.pt"
    before = checkpoint.read_bytes()
    diverged = run_slic(*common, "--epochs", "2", "--resume", "--set=finetune.lr=1e30",
                        "--set=finetune.backbone_lr=1e30", check=False)
    assert diverged.returncode == 2 and "Traceback" not in diverged.stderr
    assert "finetune.lr" in diverged.stderr and "last good checkpoint" in diverged.stderr
    assert checkpoint.read_bytes() == before
    resumed = run_slic_json(*common, "--epochs", "2", "--resume", "--set=finetune.lr=1e-4")
    assert resumed["status"] == "trained" and load_checkpoint(checkpoint)["epoch"] == 2
