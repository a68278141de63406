"""benchmarks/gpu_check.py: `prepare` here, then `run` as on a GPU node's fixed image (no
faiss, ffmpeg, imageio_ffmpeg, threadpoolctl or psutil, no `slic` on PATH), on the CPU."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
# What a GPU node image lacks: a sitecustomize makes each unimportable in every process.
MISSING_ON_NODE = ("faiss", "ffmpeg", "imageio_ffmpeg", "threadpoolctl", "psutil")
MAX_PREPARED_BYTES = 30 * 2**20


def gpu_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gpu_check", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def node_environment(folder: Path) -> dict[str, str]:
    """This environment as a GPU node has it: the modules it lacks blocked in every process
    and grandchild (sitecustomize.py first on PYTHONPATH), and no `slic` on PATH."""
    site = folder / "node-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys\n\n"
        f"for name in {MISSING_ON_NODE!r}:\n"
        "    sys.modules[name] = None\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO)])
    env["PATH"] = os.pathsep.join(entry for entry in env.get("PATH", "").split(os.pathsep)
                                  if not (Path(entry) / "slic").exists())
    return env


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


@pytest.mark.parametrize("layout", ["missing", "empty"])
def test_run_refuses_a_workspace_prepare_did_not_make(tmp_path: Path, layout: str) -> None:
    workspace = tmp_path / "workspace"
    if layout == "empty":
        workspace.mkdir()
    with pytest.raises(SystemExit) as stop:
        gpu_check().main(["run", "--workspace", str(workspace), "--device", "cpu"])
    message = str(stop.value.code)
    assert str(workspace) in message and "prepare" in message and "\n" not in message


@pytest.mark.slow  # makes a dataset, then trains and evaluates several times (minutes)
def test_prepare_then_run_on_cpu_as_on_a_node(tmp_path: Path) -> None:
    workspace, results = tmp_path / "workspace", tmp_path / "results.json"
    subprocess.run([sys.executable, str(SCRIPT), "prepare", "--out", str(workspace),
                    "--preset", "smoke"], check=True, capture_output=True, text=True)
    prepared = folder_bytes(workspace)
    assert prepared < MAX_PREPARED_BYTES
    env = node_environment(tmp_path)
    blocked = subprocess.run([sys.executable, "-c", "import threadpoolctl"], env=env,
                             capture_output=True, text=True)
    assert blocked.returncode != 0 and "ModuleNotFoundError" in blocked.stderr

    done = subprocess.run([sys.executable, str(SCRIPT), "run", "--workspace", str(workspace),
                           "--device", "cpu", "--out", str(results), "--budget", "1200",
                           "--timeout", "600"], env=env, cwd=tmp_path, capture_output=True,
                          text=True)

    assert done.returncode == 0, done.stdout + done.stderr
    found = json.loads(results.read_text())
    entries: dict[str, list[dict]] = {}
    for entry in found["entries"]:
        entries.setdefault(entry["section"], []).append(entry)
    for section in "abcdef":
        assert entries[section], section
        for entry in entries[section]:
            assert entry["status"] == "ok" and entry["figures"], entry
    assert [e["status"] for e in entries["g"]] == ["skipped"]
    assert entries["g"][0]["message"] == "skipped: needs 2 GPUs, found 0"
    assert entries["f"][0]["figures"]["equal"] is True  # CPU: resumed = uninterrupted
    assert found["machine"]["torch"] and found["failed"] == []
    assert "| (a) |" in done.stdout and "| (g) |" in done.stdout
    assert folder_bytes(workspace) == prepared  # the run worked on a copy
