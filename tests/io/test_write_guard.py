"""The write guard: a path given by the user is written only when it is new or a file of the
same kind that slic wrote, recognised by content; nothing else is ever replaced."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from stages.io.write_guard import PAGE_MARK, guard_output, publish
from stages.runtime.errors import ConfigError, SlicError


def test_a_new_path_or_slics_own_page_may_be_written(tmp_path):
    fresh = tmp_path / "sub" / "gallery.html"
    assert guard_output(fresh, "page", option="--gallery") == fresh
    own = tmp_path / "own.html"
    own.write_text(f"<!doctype html><html><head><meta charset=utf-8>{PAGE_MARK}</head>")
    earlier = tmp_path / "earlier.html"  # a report of a slic without the mark
    earlier.write_text('<!doctype html><html><head><title>slic report: run</title></head>')
    for path in (own, earlier):
        assert guard_output(path, "page", option="--out") == path


@pytest.mark.parametrize("content", [
    b"<html><body>my notes</body></html>",
    b"\x89HDF\r\n\x1a\n" + bytes(100),  # a frames.h5, say
    b"PK\x03\x04" + bytes(100),  # a checkpoint
    b"",
])
def test_anything_else_is_refused_and_left_as_it_was(tmp_path, content):
    path = tmp_path / "page.html"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=r"--gallery .*page.html exists and is not an HTML "
                                          r"page slic wrote"):
        guard_output(path, "page", option="--gallery")
    assert path.read_bytes() == content


def test_folders_inputs_and_dangling_links_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="is a folder"):
        guard_output(tmp_path, "page", option="--out")
    page = tmp_path / "page.html"
    page.write_text(PAGE_MARK)
    with pytest.raises(ConfigError, match="one of this command's inputs"):
        guard_output(page, "page", option="--out", inputs=[tmp_path / "." / "page.html"])
    dangling = tmp_path / "link.html"
    dangling.symlink_to(tmp_path / "nowhere" / "x.html")
    with pytest.raises(ConfigError, match="link to nothing"):
        guard_output(dangling, "page", option="--out")


def test_an_export_is_known_by_its_sidecar_and_format(tmp_path):
    weights = tmp_path / "backbone.pt"
    weights.write_bytes(b"PK\x03\x04" + bytes(64))
    with pytest.raises(ConfigError, match="not weights slic exported"):
        guard_output(weights, "export", option="--out")
    (tmp_path / "backbone.pt.json").write_text(json.dumps({"format": "torchvision"}))
    assert guard_output(weights, "export", option="--out") == weights
    other = tmp_path / "notes.safetensors"
    other.write_bytes(b"{}")
    (tmp_path / "notes.safetensors.json").write_text(json.dumps({"format": "safetensors"}))
    with pytest.raises(ConfigError):  # its header has no slic metadata
        guard_output(other, "export", option="--out")


def test_published_files_get_the_users_usual_mode(tmp_path):
    temporary = tmp_path / ".x.writing"
    temporary.write_bytes(b"x")
    os.chmod(temporary, 0o600)
    mask = os.umask(0o022)
    try:
        publish(temporary, tmp_path / "x")
    finally:
        os.umask(mask)
    assert (tmp_path / "x").stat().st_mode & 0o777 == 0o644 and not temporary.exists()


def test_report_refuses_to_write_over_the_runs_own_checkpoint(tmp_path):
    from stages.report import write_report

    run = tmp_path / "run"
    run.mkdir()
    checkpoint = run / "checkpoint.pt"
    checkpoint.write_bytes(b"PK\x03\x04 weights")
    with pytest.raises(ConfigError, match="--out .*checkpoint.pt exists and is not an HTML"):
        write_report(run, out=checkpoint)
    assert checkpoint.read_bytes() == b"PK\x03\x04 weights"


def test_make_dataset_writes_only_into_a_new_empty_or_own_folder(tmp_path):
    from stages.make_dataset import MAKING_MARKER, MARKER, MakeDatasetConfig
    from stages.make_dataset import run as make_dataset

    foreign = tmp_path / "UCF101"
    (foreign / "ucfTrainTestlist").mkdir(parents=True)
    lists = foreign / "ucfTrainTestlist" / "classInd.txt"
    lists.write_text("1 ApplyEyeMakeup\n")
    tiny = MakeDatasetConfig(num_classes=1, groups_per_class=2, clips_per_group=1,
                             test_groups=1, min_size=32, max_size=32, min_seconds=0.2,
                             max_seconds=0.2)
    with pytest.raises(SlicError, match="not a dataset slic made.*choose another --out$"):
        make_dataset(tiny, foreign)
    # The demo chose the folder with --workspace: its message says so.
    with pytest.raises(SlicError, match="choose another --workspace$"):
        make_dataset(tiny, foreign, option="--workspace")
    assert lists.read_text() == "1 ApplyEyeMakeup\n"
    killed = tmp_path / "killed"  # a run stopped after it began: its own folder
    killed.mkdir()
    (killed / MAKING_MARKER).touch()
    (killed / "half-written.avi").write_bytes(b"")
    made = make_dataset(tiny, killed)
    assert made.status != "up to date" and not (killed / MAKING_MARKER).exists()
    assert make_dataset(tiny, killed).status == "up to date"
    (killed / MARKER).write_bytes(b"\xff{" + b"[" * 100_000)  # a damaged marker: remade
    assert make_dataset(tiny, killed).status != "up to date"
    assert make_dataset(tiny, killed).status == "up to date"


def test_a_run_name_of_someone_elses_folder_is_refused(motion_workspace, tmp_path):
    from stages.pretrain import PretrainConfig
    from stages.pretrain import run as pretrain
    from stages.runtime.sections import DataConfig, WorkspaceConfig
    from tests.conftest import TINY_PRETRAIN

    root = tmp_path / "ws"
    (root / "synthetic").mkdir(parents=True)
    for name in ("frames.h5", "flow.h5"):
        (root / "synthetic" / name).write_bytes((motion_workspace / "synthetic" / name)
                                                 .read_bytes())
    foreign = root / "synthetic" / "runs" / "mine"
    foreign.mkdir(parents=True)
    (foreign / "config.yaml").write_text("learning_rate: 3\n")
    (foreign / "metrics.jsonl").write_text("my own numbers\n")
    with pytest.raises(ConfigError, match="is not a slic run folder"):
        pretrain(PretrainConfig(**TINY_PRETRAIN, epochs=1, run_name="mine"),
                 DataConfig(dataset="synthetic"), WorkspaceConfig(root=str(root)))
    assert (foreign / "config.yaml").read_text() == "learning_rate: 3\n"
    assert sorted(p.name for p in Path(foreign).iterdir()) == ["config.yaml", "metrics.jsonl"]


def test_slics_report_pages_are_known_as_its_own(tmp_path):
    from stages.html_report.markup import page

    path = tmp_path / "report.html"
    path.write_text(page("run", "a run", []), encoding="utf-8")  # known by the mark
    assert guard_output(path, "page", option="--out") == path
