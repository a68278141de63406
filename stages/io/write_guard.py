"""The one rule for the files slic writes outside its own artifacts' checks: a path given by
the user (`--gallery`, `report --out`, `export --out`) may be a new file, or a file of the same
kind that slic wrote, recognised by its content; never a folder, never one of the command's
own inputs, never anything else. Refused at start-up, with one line, before any work.

(HDF5 artifacts go through `io.artifacts.check_output`, which applies the same rule with the
artifact's `kind` attribute as the mark; run folders and dataset folders have their own marks,
`RunFolder` and make-dataset's marker file.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from stages.runtime.errors import ConfigError

# Written into every HTML page slic makes (report, gallery): how a page is known as slic's.
PAGE_MARK = '<meta name="generator" content="slic">'
_HEAD_BYTES = 4096


# The title of the report pages slic wrote before PAGE_MARK: still known as slic's.
_EARLIER_REPORT_TITLE = b"<title>slic report: "


def _is_slic_page(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(_HEAD_BYTES)
    return PAGE_MARK.encode() in head or _EARLIER_REPORT_TITLE in head


def _is_slic_export(path: Path) -> bool:
    """An export is known by its sidecar (`<file>.json`, written with it), which records the
    checksum of the source checkpoint and the format; the weights file itself must be what
    the sidecar's format says (a safetensors header with slic's metadata, or a torch zip)."""
    sidecar = path.with_name(path.name + ".json")
    try:
        described = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(described, dict) or described.get("format") not in (
            "torchvision", "safetensors"):
        return False
    with open(path, "rb") as handle:
        head = handle.read(_HEAD_BYTES)
    if described["format"] == "safetensors":
        return b'"slic"' in head
    return head.startswith(b"PK\x03\x04")  # torch.save's zip archive


KIND_CHECKS: dict[str, tuple[str, Callable[[Path], bool]]] = {
    "page": ("an HTML page slic wrote", _is_slic_page),
    "export": ("weights slic exported", _is_slic_export),
}


def guard_output(path: Path, kind: str, *, option: str,
                 inputs: Sequence[Path | None] = ()) -> Path:
    """Check that `path` (given as `option`) may be written as a `kind` file (a key of
    KIND_CHECKS); returns it. Raises ConfigError naming the path, what it is and the fix."""
    path = Path(path)
    what, is_own = KIND_CHECKS[kind]
    for source in inputs:
        if source is not None and Path(source).exists() and path.exists() and os.path.samefile(
                source, path):
            raise ConfigError(f"{option} {path} is one of this command's inputs; write "
                              "elsewhere")
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a folder; give a file path in it")
    if not path.exists():
        if path.is_symlink():
            raise ConfigError(f"{option} {path} is a link to nothing; give a file path")
        return path
    if not path.is_file():
        raise ConfigError(f"{option} {path} is not a regular file; give a file path")
    try:
        own = is_own(path)
    except OSError as error:
        raise ConfigError(f"{option} {path} cannot be read ({error.strerror}); give another "
                          "path") from None
    if not own:
        raise ConfigError(f"{option} {path} exists and is not {what}; slic replaces only "
                          "its own files: choose another path or move that file away")
    return path


def publish(temporary: Path, path: Path) -> None:
    """Give `temporary` the mode a new file of this user gets (0644 under umask 022: some
    writers create theirs private) and move it onto `path` atomically."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(temporary, 0o666 & ~mask)
    os.replace(temporary, path)
