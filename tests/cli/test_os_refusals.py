"""A place the user cannot write (read-only, forbidden, full, missing) stops a command with one
line naming the path, exit code 2, never a traceback; any other OSError keeps its traceback.

Root ignores chmod, so the in-process tests inject the operating system's errors; the slow test
runs the installed command on a chmod 555 workspace (as root without the capability that
ignores file modes, through setpriv)."""

import errno
import os
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from slic_cli.app import app
from slic_cli.console import user_errors
from tests.conftest import slic_executable

runner = CliRunner()


def invoke(*args: str):
    """Run the app in this process; an exception it lets through fails the test as itself."""
    return runner.invoke(app, list(args), catch_exceptions=False)

REFUSALS = [
    (errno.EROFS, "Read-only file system", "cannot write", "read-only file system"),
    (errno.EACCES, "Permission denied", "permission denied for", "choose another path"),
    (errno.EPERM, "Operation not permitted", "permission denied for", "choose another path"),
    (errno.ENOSPC, "No space left on device", "no space left", "free some space"),
    (errno.EDQUOT, "Disk quota exceeded", "no space left", "free some space"),
]


def write_features(path: Path) -> Path:
    """A .npz of 24 separable 8-D features of 3 classes, 16 train and 8 test rows."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 8)
    features = (10 * np.eye(3, 8)[labels] + rng.normal(size=(24, 8))).astype(np.float32)
    np.savez(path, features=features, labels=labels, split=np.array(["train", "train",
                                                                      "test"] * 8))
    return path


def one_error_line(result) -> str:
    """The single stderr line of a command that failed as a user's mistake should."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    lines = result.stderr.rstrip("\n").splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


@pytest.mark.parametrize("code, strerror, first, second", REFUSALS)
def test_an_artifact_that_cannot_be_created_is_one_line_naming_it(tmp_path, monkeypatch, code,
                                                                  strerror, first, second):
    """h5py's OSError carries the errno but no filename: write_artifact names the file."""
    real_file = h5py.File

    def refused(name, mode="r", *args, **kwargs):
        if mode == "w":
            raise OSError(code, f"Unable to synchronously create file ({strerror})")
        return real_file(name, mode, *args, **kwargs)

    monkeypatch.setattr(h5py, "File", refused)
    features = write_features(tmp_path / "f.npz")
    out = tmp_path / "out" / "a.h5"
    line = one_error_line(invoke("cluster", "--features", str(features), "--split", "all",
                                 "--out", str(out)))
    assert first in line and second in line
    assert f"{out.parent}/.a.h5.writing-{os.getpid()}" in line
    assert not out.exists()


def refuse_folders_under(monkeypatch: pytest.MonkeyPatch, read_only: Path) -> None:
    """Make os.mkdir fail under `read_only` as on a read-only file system (an existing folder
    still says EEXIST first, as Linux does)."""
    real_mkdir = os.mkdir

    def mkdir(path, *args, **kwargs):
        if Path(path).is_relative_to(read_only) and not Path(path).exists():
            raise OSError(errno.EROFS, "Read-only file system", os.fspath(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)


@pytest.mark.parametrize("command, refused", [
    (["cluster", "--features", "{features}", "--split", "all", "--out", "{ro}/sub/a.h5"],
     "{ro}/sub"),
    (["retrieve", "--features", "{features}", "--workspace", "{ro}"], "{ro}/retrieval"),
    (["make-dataset", "synthetic", "--out", "{ro}/made"], "{ro}/made"),
])
def test_a_read_only_workspace_stops_a_command_with_one_line(tmp_path, monkeypatch, command,
                                                             refused):
    read_only = tmp_path / "ro"
    read_only.mkdir()
    features = write_features(tmp_path / "f.npz")
    refuse_folders_under(monkeypatch, read_only)
    filled = [part.format(ro=read_only, features=features) for part in command]
    line = one_error_line(invoke(*filled))
    assert refused.format(ro=read_only) in line and "read-only file system" in line.lower()
    assert list(read_only.iterdir()) == []


def raised_in(error: BaseException, capsys: pytest.CaptureFixture) -> str:
    """The one line user_errors prints for `error` (which it must turn into exit code 2)."""
    with pytest.raises(typer.Exit) as stopped:
        with user_errors():
            raise error
    assert stopped.value.exit_code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    return lines[0]


def test_a_missing_folder_is_one_line_naming_it(tmp_path, capsys):
    missing = tmp_path / "no" / "such" / "file.h5"
    line = raised_in(FileNotFoundError(errno.ENOENT, "No such file or directory",
                                       str(missing)), capsys)
    assert f"the folder {missing.parent} does not exist" in line


def test_a_path_with_control_characters_stays_one_plain_line(tmp_path, capsys):
    hostile = tmp_path / "a\nb\x1b[2J"
    line = raised_in(PermissionError(errno.EACCES, "Permission denied", str(hostile)), capsys)
    assert "\x1b" not in line and "a b\\x1b[2J" in line


def bad_descriptor() -> None:
    raise OSError(errno.EBADF, "Bad file descriptor")


def missing_file_in_an_existing_folder() -> None:
    raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/no-such-file")


def bug_while_handling_a_read_only_error() -> None:
    try:
        raise OSError(errno.EROFS, "Read-only file system", "/ro/x")
    except OSError:
        raise KeyError("handling it failed")  # noqa: B904 - the bug under test


def plain_bug() -> None:
    raise ValueError("a bug")


@pytest.mark.parametrize("fail, kind", [
    (bad_descriptor, OSError), (missing_file_in_an_existing_folder, FileNotFoundError),
    (bug_while_handling_a_read_only_error, KeyError), (plain_bug, ValueError)])
def test_other_errors_keep_their_traceback(fail, kind):
    with pytest.raises(kind):
        with user_errors():
            fail()


def without_file_modes_bypass() -> list[str] | None:
    """A command prefix under which chmod binds this user: none for a normal user; for root,
    setpriv dropping CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH; None where neither works."""
    if os.geteuid() != 0:
        return []
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    if shutil.which("setpriv") is None:
        return None
    probe = subprocess.run([*prefix, "true"], capture_output=True)
    return prefix if probe.returncode == 0 else None


@pytest.mark.slow
def test_a_chmod_555_workspace_is_one_line_for_every_writing_command(tmp_path, synthetic_root):
    prefix = without_file_modes_bypass()
    if prefix is None:
        pytest.skip("running as root without setpriv: chmod would not bind")
    features = write_features(tmp_path / "f.npz")
    workspace = tmp_path / "ws"
    workspace.mkdir(mode=0o555)
    workspace.chmod(0o555)
    commands = [
        ["make-dataset", "synthetic", "--out", f"{workspace}/made"],
        ["cluster", "--features", str(features), "--split", "all", "--out", f"{workspace}/a.h5"],
        ["retrieve", "--features", str(features), "--workspace", str(workspace)],
        ["extract-frames", "--dataset", "synthetic", "--root", str(synthetic_root),
         "--workspace", str(workspace)],
    ]
    try:
        for command in commands:
            done = subprocess.run([*prefix, slic_executable(), *command], capture_output=True,
                                  text=True, timeout=300, cwd=tmp_path)
            lines = done.stderr.strip().splitlines()
            assert done.returncode == 2, done.stderr
            assert "Traceback" not in done.stderr, done.stderr
            assert [line for line in lines if line.startswith("error:")] == lines[-1:], lines
            assert str(workspace) in lines[-1] and "ermission denied" in lines[-1], lines
        assert list(workspace.iterdir()) == []
    finally:
        workspace.chmod(0o755)
