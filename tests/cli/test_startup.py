"""The command line starts without the heavy libraries: each command imports what it runs."""

import json
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # every test here starts the command line in a new process

HEAVY = ("torch", "torchvision", "faiss", "cv2", "h5py", "matplotlib")

# Runs the console entry point in a fresh interpreter, then lists the heavy modules it loaded.
PROBE = """
import json, sys
heavy = json.loads(sys.argv[2])
sys.argv = ["slic", *json.loads(sys.argv[1])]
from slic_cli.app import main
try:
    main()
except SystemExit as done:
    code = done.code
else:
    code = 0
print(json.dumps({"code": code, "loaded": [m for m in heavy if m in sys.modules]}), file=sys.stderr)
"""


def loaded_modules(*arguments: str, watched: tuple[str, ...] = HEAVY) -> tuple[int, list[str]]:
    command = [sys.executable, "-c", PROBE, json.dumps(arguments), json.dumps(watched)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    return report["code"], report["loaded"]


@pytest.mark.parametrize("arguments", [["--help"], ["inspect", "--help"], ["cluster", "--help"],
                                       ["pretrain", "--help"], ["report", "--help"],
                                       ["export", "--help"], ["config"]])
def test_help_and_config_import_nothing_heavy(arguments):
    code, loaded = loaded_modules(*arguments)
    assert code == 0
    assert loaded == []


@pytest.mark.parametrize("arguments", [["--help"], ["inspect", "--help"]])
def test_help_loads_no_progress_bars_and_no_pipeline_config(arguments):
    code, loaded = loaded_modules(*arguments, watched=("rich.progress", "stages.config",
                                                       "stages.pretrain_config"))
    assert code == 0
    assert loaded == []


def test_cluster_runs_without_torch_or_faiss(tmp_path):
    rng = np.random.default_rng(0)
    features = tmp_path / "features.npz"
    np.savez(features, features=rng.normal(size=(60, 8)).astype(np.float32),
             labels=np.arange(60) % 3)
    code, loaded = loaded_modules("cluster", "--features", str(features), "--quiet")
    assert code == 0
    assert (tmp_path / "features.assignments.h5").exists()
    assert "torch" not in loaded and "faiss" not in loaded and "cv2" not in loaded
