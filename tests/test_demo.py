"""`slic demo --quick`: every stage runs, every artifact stays, one comparison table."""

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import run_slic, run_slic_json

pytestmark = pytest.mark.slow  # runs `slic demo` end to end
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A folder where `slic demo --quick` ran (default workspace slic-demo/), and its summary."""
    folder = tmp_path_factory.mktemp("demo")
    return folder, run_slic_json("demo", "--quick", cwd=folder)


def test_quick_demo_runs_every_stage(quick_demo):
    tmp_path, summary = quick_demo
    metrics = [row["metric"] for row in summary["results"]]
    assert metrics == ["R@1", "R@5", "NMI (FINCH finest)", "linear probe top-1 (cached)"]
    steps = summary["stage_seconds"]
    assert list(steps)[:4] == ["make-dataset", "extract-frames", "compute-flow", "pretrain"]
    assert {"retrieve (SLIC)", "linear-probe (random)"} <= set(steps)
    rounding = 0.0005 * (len(steps) + 1)  # each figure is rounded to milliseconds
    assert 0 < sum(steps.values()) <= summary["seconds"] + rounding
    for row in summary["results"]:
        for key in ("slic", "random_init"):
            assert 0.0 <= row[key] <= 1.0
    folder = tmp_path / "slic-demo" / "synthetic"  # the default workspace
    run_folder = folder / "runs" / "demo-slic-quick"
    for path in (folder / "frames.h5", folder / "flow.h5", run_folder / "checkpoint.pt",
                 run_folder / "assignments.h5", run_folder / "features.h5",
                 run_folder / "linear-probe-cached" / "results.json",
                 run_folder / "retrieval" / "synthetic-projection" / "retrieval.h5",
                 folder / "random-init" / "demo-random-quick" / "linear-probe-cached"
                 / "results.json"):
        assert path.is_file(), path
    # The table repeats what the stages wrote: R@1 of retrieval.h5, top-1 of results.json
    table = {row["metric"]: row for row in summary["results"]}
    retrieval = run_slic_json("inspect", str(run_folder / "retrieval" / "synthetic-projection"
                                             / "retrieval.h5"))
    assert table["R@1"]["slic"] == pytest.approx(retrieval["recall"]["1"])
    assert table["R@1"]["slic"] <= table["R@5"]["slic"]
    # What the table's caption says repeats its R@k with the demo's own features.
    repeated = run_slic_json("retrieve", "--workspace", "slic-demo", "--dataset", "synthetic",
                             "--k", "1,5", "--clips", str(summary["retrieve_clips"]),
                             cwd=tmp_path)
    assert repeated["features_reused"] and repeated["r1"] == pytest.approx(table["R@1"]["slic"])
    assert f"{summary['retrieve_clips']} clips a video" in repeated["made"]
    assert f"{summary['retrieve_clips']} clips a video" in table["R@1"]["how"]
    for who, folder_of in (("slic", run_folder),
                           ("random_init", folder / "random-init" / "demo-random-quick")):
        probe = json.loads((folder_of / "linear-probe-cached" / "results.json").read_text())
        confusion = np.array(probe["confusion"])
        assert table["linear probe top-1 (cached)"][who] == pytest.approx(
            np.trace(confusion) / confusion.sum())
    ran = yaml.safe_load((run_folder / "config.yaml").read_text())
    assert ran["pretrain"]["arch"] == "r3d_tiny" and ran["pretrain"]["epochs"] == 2
    assert ran["data"]["dataset"] == "synthetic"
    flow = json.loads(run_slic("inspect", str(folder / "flow.h5"), "--json").stdout)
    assert flow["provenance"]["config"]["data"]["dataset"] == "synthetic"
    assert not (run_folder / "finetune").exists()  # fine-tuning is not part of the demo
    trained = [run_folder / "checkpoint.pt", folder / "frames.h5", folder / "flow.h5"]
    before = [path.stat().st_mtime_ns for path in trained]
    again = run_slic("demo", "--quick", cwd=tmp_path)
    assert [path.stat().st_mtime_ns for path in trained] == before  # nothing retrained
    table = again.stdout
    assert "SLIC" in table and "random init" in table and "time per step" in table
    assert summary["budget"] == "quick" and "smoke test" in table  # its numbers mean nothing
    second = run_slic_json("demo", "--quick", cwd=tmp_path)
    assert second["results"] == summary["results"]  # the same table from the stored results


def after_the_demo_commands() -> list[str]:
    """The README's block of commands that run as written after `slic demo`."""
    readme = (REPO_ROOT / "README.md").read_text()
    block = readme.split("<!-- after-the-demo -->\n```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in block.strip().splitlines()]


def test_the_readme_commands_after_the_demo_run_as_written(quick_demo):
    commands = after_the_demo_commands()
    assert any(c.startswith("slic retrieve") for c in commands)
    for command in commands:
        # the quick demo's run stands in for the full demo's (same layout, smaller budget)
        words = shlex.split(command.replace("demo-slic-full", "demo-slic-quick"))
        assert words[0] == "slic", command
        run_slic(*words[1:], cwd=quick_demo[0])
