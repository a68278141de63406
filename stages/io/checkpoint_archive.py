"""A torch checkpoint's zip archive, checked before anything inflates it.

`torch.save` stores every member of its zip uncompressed (tensors are read, or memory-mapped,
straight from the file), so the members of a real checkpoint add up to its file size, less
the zip's headers. A crafted archive can declare a member of gigabytes that deflates from a few
kilobytes, and `torch.load` (or `slic inspect`) would allocate it whole before reading one
opcode of the pickle. Both of slic's readers trust the sizes of the zip's central directory:
torch's reader (miniz) inflates into a buffer of the declared size and fails when the data does
not fit, Python's zipfile stops at the declared size. So refusing declared sizes out of
proportion with the file bounds what either allocates. The pickle slic reads itself is read in
blocks, up to the same bound: zipfile inflates all that one read asks for before cutting it at
the declared size, so a header that understates a member would cost a whole `read()` of it.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from stages.runtime.errors import ArtifactError
from stages.runtime.settings import quoted

# torch.save writes a member per tensor storage and five of its own; slic's checkpoints (model,
# optimizer state, a few tensors of its own) hold hundreds. zipfile has already read the
# central directory, in proportion to the file, when this is checked: the bound stops a
# crafted archive from making every later step (torch's, slic's) walk millions of entries.
MAX_MEMBERS = 100_000
# What the members may declare, in all: 4x the file leaves room for an archive compressed by
# another tool (torch never compresses; weights deflate by a few percent, zeros 1000x), and
# 64 MiB for small files. A real checkpoint declares at most its own size.
INFLATION_FACTOR = 4
INFLATION_SLACK = 64 * 2**20
_BLOCK = 2**20


def inflation_limit(file_size: int) -> int:
    """The most bytes the members of an archive of `file_size` bytes may declare, in all."""
    return INFLATION_FACTOR * file_size + INFLATION_SLACK


def _unsafe(path: Path, reason: str) -> ArtifactError:
    return ArtifactError(f"{path} is a damaged or unsafe checkpoint: {reason}; slic reads no "
                         "further (use a checkpoint slic or torch.save wrote)")


def check_archive(path: Path, archive: zipfile.ZipFile) -> None:
    """Raise ArtifactError (one line) when `archive`, opened from `path`, holds more than
    MAX_MEMBERS members, a member that declares more than `inflation_limit` bytes, or members
    that declare more than that in all."""
    size = Path(path).stat().st_size
    members = archive.infolist()
    if len(members) > MAX_MEMBERS:
        raise _unsafe(path, f"it holds {len(members)} members (at most {MAX_MEMBERS} are read)")
    limit = inflation_limit(size)
    for member in members:
        if member.file_size > limit:
            raise _unsafe(path, f"member {quoted(member.filename)} would inflate to "
                                f"{member.file_size} bytes from a file of {size} bytes")
    total = sum(member.file_size for member in members)
    if total > limit:
        raise _unsafe(path, f"its {len(members)} members would inflate to {total} bytes in all "
                            f"from a file of {size} bytes")


def check_checkpoint(path: Path) -> None:
    """`check_archive` for a file `torch.load` is about to read; a file that is not a zip
    archive (torch's legacy format, or no checkpoint at all) is left to torch's own errors."""
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            check_archive(path, archive)
    except zipfile.BadZipFile as error:
        raise ArtifactError(f"{path} is not a readable checkpoint: a damaged zip archive "
                            f"({error})") from None


def read_member(path: Path, archive: zipfile.ZipFile, name: str) -> bytes:
    """The bytes of member `name` of a checked `archive` (from `path`), read in 1 MiB blocks
    and refused past `inflation_limit` of the file, whatever its header declares."""
    limit = inflation_limit(Path(path).stat().st_size)
    blocks, read = [], 0
    with archive.open(name) as member:
        while block := member.read(_BLOCK):
            read += len(block)
            if read > limit:
                raise _unsafe(path, f"member {quoted(name)} inflates past {limit} bytes from a "
                                    f"file of {Path(path).stat().st_size} bytes")
            blocks.append(block)
    return b"".join(blocks)
