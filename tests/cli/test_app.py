"""The Typer app in this process (typer's CliRunner): quick checks of what tests/cli/test_cli.py
checks on the installed command, where a process start would cost more than the check."""

import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from slic_cli.app import app
from tests.cli.test_cli import USER_MISTAKES

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.mark.parametrize("args, words", USER_MISTAKES)
def test_user_mistakes_get_one_line_and_exit_2(tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "example.yaml").write_text("data: {}\n")
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.rstrip("\n").splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for word in words:
        assert word in lines[0]
    assert result.stdout == ""
    assert (tmp_path / "example.yaml").read_text() == "data: {}\n"


def test_config_prints_the_resolved_yaml():
    result = invoke("config", "--set", "compute_flow.bound=15", "--set", "data.split=2")
    assert result.exit_code == 0
    resolved = yaml.safe_load(result.stdout)
    assert resolved["compute_flow"]["bound"] == 15.0 and resolved["data"]["split"] == 2


def test_inspect_describes_a_frames_artifact_as_json_and_as_tables(tiny_frames):
    described = json.loads(invoke("inspect", str(tiny_frames), "--json").stdout)
    assert described["kind"] == "frames" and described["num_videos"] == 8
    assert described["num_images"] == 12 + 9 + 16 + 6 + 20 + 11 + 14 + 8
    assert [c["videos"] for c in described["classes"]] == [4, 4]
    tables = invoke("inspect", str(tiny_frames)).stdout
    assert "frames artifact" in tables and "per class" in tables and "Class1" in tables


def test_cluster_prints_json_or_a_partition_table(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    features = (10 * np.eye(3, 8)[labels] + rng.normal(size=(60, 8))).astype(np.float32)
    path = tmp_path / "f.npz"
    np.savez(path, features=features, labels=labels)
    summary = json.loads(invoke("cluster", "--features", str(path), "--split", "all",
                                "--json").stdout)
    assert summary["num_videos"] == 60 and (tmp_path / "f.assignments.h5").is_file()
    table = invoke("cluster", "--features", str(path), "--split", "all",
                   "--out", str(tmp_path / "again.h5")).stdout
    assert "60 videos clustered" in table and "nmi" in table
    assert table.count("\n") > len(summary["num_clusters"])  # a row per partition


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 not really a zip"])
def test_an_unreadable_feature_file_is_one_line(tmp_path, content):
    path = tmp_path / "f.npz"
    path.write_bytes(content)
    result = invoke("cluster", "--features", str(path))
    assert result.exit_code == 2
    assert result.stderr.startswith("error:") and len(result.stderr.strip().splitlines()) == 1
    assert "cannot be read as .npz" in result.stderr


def test_figures_of_a_thin_split_come_with_their_warnings(tmp_path):
    """3 test videos, class 2 never tested: R@k is shown with both warnings beside it."""
    rng = np.random.default_rng(0)
    labels = np.array([0, 1, 2] * 4 + [0, 1, 0])
    split = np.array(["train"] * 12 + ["test"] * 3)
    path = tmp_path / "thin.npz"
    np.savez(path, features=rng.normal(size=(15, 8)).astype(np.float32), labels=labels,
             split=split)
    common = ["retrieve", "--features", str(path), "--workspace", str(tmp_path), "--k", "1"]
    summary = json.loads(invoke(*common, "--json").stdout)
    assert any("only 3 test videos" in w for w in summary["warnings"])
    assert any("1 of 3 classes have no test video, first: 2" in w for w in summary["warnings"])
    shown = " ".join(invoke(*common).stdout.split())
    assert "read these figures with care" in shown and "only 3 test videos" in shown


@pytest.mark.parametrize("kind", ["frames", "features", "retrieval", "assignments"])
def test_inspect_shows_an_artifact_whose_provenance_lacks_fields(tmp_path, kind):
    """Provenance written by another tool (no times, an input without a path) is shown with
    "-" where a field is missing, not a KeyError."""
    import h5py

    from tests.fuzz import samples

    path = samples.ARTIFACTS[kind](tmp_path / f"{kind}.h5")
    with h5py.File(path, "r+") as h5:
        del h5["provenance"]
        h5["provenance"] = json.dumps({"command": "made elsewhere", "inputs": [{"size": 3}]})
    result = invoke("inspect", str(path))
    assert result.exit_code == 0, result.output
    assert "made elsewhere" in result.stdout


def test_the_demo_table_says_which_numbers_are_a_smoke_test() -> None:
    from rich.console import Console

    from slic_cli.inspect_view import demo_table

    rows = [{"metric": "R@1", "slic": 0.8, "random_init": 0.3, "how": "5 clips a video"}]

    def shown(budget: str, warnings: tuple[str, ...] = ()) -> str:
        console = Console(width=200, record=True)
        console.print(demo_table({"seconds": 1.0, "results": rows, "budget": budget,
                                  "retrieve_clips": 5, "warnings": list(warnings)}))
        return " ".join(console.export_text().split())  # the caption wraps at the table

    assert "smoke test" in shown("quick") and "smoke test" not in shown("full")
    assert "not the paper's numbers" in shown("full")
    # How the figures were made, and how to make them again with slic retrieve.
    assert "5 clips a video" in shown("full") and "slic retrieve --clips 5" in shown("full")
    assert "warning: only 3 test videos" in shown("full", ("only 3 test videos",))


HOSTILE_NAMES = ["[/]", "[bold red]RED[/]", "\x1b[2J\x1b]0;pwned\x07Clear", "Tab\tok"]


def test_names_from_files_reach_the_terminal_as_text(tmp_path):
    """Class and video names are shown as written: never read as rich markup (a class named
    "[/]" crashed every table), control characters escaped (no escape sequence reaches the
    terminal)."""
    from tests.helpers import TinyVideo, write_frames

    frames = np.zeros((3, 8, 8, 3), np.uint8)
    videos = [TinyVideo(f"v{i}\x1b[31m", i, frames) for i in range(len(HOSTILE_NAMES))]
    path = write_frames(tmp_path / "frames.h5", videos, HOSTILE_NAMES)
    result = invoke("inspect", str(path), "--videos")
    assert result.exit_code == 0, result.output
    assert "[/]" in result.stdout and "[bold red]RED[/]" in result.stdout
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "\\x1b[2J\\x1b]0;pwned\\x07Clear" in result.stdout
    assert "v0\\x1b[31m" in result.stdout


def test_an_error_naming_a_hostile_path_is_one_plain_line(tmp_path):
    missing = tmp_path / "[bold]x\x1b[2J.h5"
    result = invoke("inspect", str(missing))
    assert result.exit_code == 2
    lines = result.stderr.rstrip("\n").splitlines()
    assert len(lines) == 1 and "[bold]x\\x1b[2J.h5" in lines[0] and "\x1b" not in lines[0]


def test_help_shows_the_default_of_each_config_key_an_option_sets():
    """Options default to None (a config file may set them); --help shows the key's own
    default from the config section."""
    import typer

    from slic_cli.app import with_config_defaults
    from stages.pretrain_config import PretrainConfig

    command = with_config_defaults(typer.main.get_command(app))
    options = {option.name: option.help for option in command.commands["pretrain"].params}
    assert f"[pretrain.epochs, default {PretrainConfig().epochs}]" in options["epochs"]
    assert "[pretrain.run_name, default null]" in options["run_name"]
    assert "[data.split, default 1]" in options["split"]
