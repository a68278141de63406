"""`slic report` and `slic export` through a small Typer app of their own (app.py registers
them the same way): JSON summaries, tables, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from slic_cli.share_commands import export_command, report_command
from tests.html_report.synthetic_run import make_run_folder

app = typer.Typer()
app.command("report")(report_command)
app.command("export")(export_command)


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_the_module_loads_without_torch():
    code = ("import sys, slic_cli.share_commands; "
            "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.slow
def test_report_writes_the_page_and_says_where(tmp_path):
    run = make_run_folder(tmp_path)
    result = invoke("report", str(run), "--queries", "4", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["report"] == str(run / "report.html") and summary["open"].startswith("file:")
    assert "retrieval" in summary["sections"] and (run / "report.html").is_file()
    shown = invoke("report", str(run), "--out", str(tmp_path / "page.html"))
    assert shown.exit_code == 0 and "open in a browser" in shown.output


def test_report_of_a_missing_folder_is_one_line(tmp_path):
    result = invoke("report", str(tmp_path / "nothing"))
    assert result.exit_code == 2
    assert result.output.startswith("error:") and "not a folder" in result.output


@pytest.mark.slow
def test_export_refuses_what_torchvision_cannot_hold_in_one_line(tmp_path):
    import torch

    from stages.io.checkpoint import save_checkpoint
    from stages.models.encoder import Encoder

    config = {"arch": "r3d_tiny", "projection_hidden": 8, "projection_dim": 4,
              "clip_length": 4, "stride": 1, "crop_size": 32}
    torch.manual_seed(0)
    save_checkpoint({"model": Encoder("r3d_tiny", 8, 4).state_dict(), "config": config},
                    tmp_path / "best.pt")
    refused = invoke("export", str(tmp_path))
    assert refused.exit_code == 2 and "--format safetensors" in refused.output
    assert refused.output.startswith("error:") and len(refused.output.strip().splitlines()) == 1
    written = invoke("export", str(tmp_path / "best.pt"), "--format", "safetensors", "--json")
    assert written.exit_code == 0, written.output
    summary = json.loads(written.output)
    assert summary["format"] == "safetensors" and summary["tensors"] > 0
