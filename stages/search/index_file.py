"""The one file a search index is cached in, written atomically.

Layout: MAGIC, the header's length (8 bytes, little-endian), the header (JSON: the method, its
settings, the features' fingerprint), the payload (the index: a .npy array of unit rows, or a
faiss index), then the payload's length (8 bytes) and END. One file, so the header can never
describe another payload than the one beside it; the trailing length and END show a truncated
file before any of it is parsed.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from stages.io.space import describe, disk_full_cause, free_bytes
from stages.io.temporaries import remove_stale_temporaries, temporary_for
from stages.runtime.errors import ArtifactError, DiskFull

MAGIC = b"slic search index\n"
END = b"\nend\n"
LENGTH = struct.Struct("<Q")
FORMAT_VERSION = 1
_Payload = TypeVar("_Payload")
_FAISS_WHERE = re.compile(r"^Error in .*? at \S+:\d+: ")  # faiss's C++ location: noise here


def write_index_file(path: Path, header: dict[str, Any],
                     write_payload: Callable[[BinaryIO], None]) -> None:
    """Write `header` and the payload `write_payload` streams into a temporary file beside
    `path`, fsync it and rename it over `path`: readers see the old file or the new one, never
    half of one. A full disk is a DiskFull naming the path; the old file is kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    temporary = temporary_for(path)
    encoded = json.dumps({"format_version": FORMAT_VERSION, **header}, sort_keys=True).encode()
    try:
        with open(temporary, "wb") as handle:
            handle.write(MAGIC + LENGTH.pack(len(encoded)) + encoded)
            start = handle.tell()
            write_payload(handle)
            handle.write(LENGTH.pack(handle.tell() - start) + END)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        if disk_full_cause(error) is None:
            raise
        raise DiskFull(f"no space left to write the search index {path} "
                       f"({describe(free_bytes(path))} free there); free some space or write "
                       "it elsewhere (the previous index, if any, is kept)") from None
    finally:
        temporary.unlink(missing_ok=True)


def _damaged(path: Path, reason: str) -> ArtifactError:
    return ArtifactError(f"{path} is not a readable slic search index ({reason}); delete it and "
                         "it is built again from the features")


def _read_header(handle: BinaryIO, path: Path, size: int) -> tuple[dict[str, Any], int, int]:
    """The header of an open index file of `size` bytes, and where its payload starts and
    ends; ArtifactError naming `path` for a file that is not one, is truncated, or is of
    another format version."""
    if size < len(MAGIC) + 2 * LENGTH.size + len(END) or handle.read(len(MAGIC)) != MAGIC:
        raise _damaged(path, "it does not start as one")
    (length,) = LENGTH.unpack(handle.read(LENGTH.size))
    try:
        header = json.loads(handle.read(min(length, size)))
    except (UnicodeDecodeError, ValueError):
        header = None
    if not isinstance(header, dict):
        raise _damaged(path, "its header is not a JSON object")
    start = handle.tell()
    handle.seek(size - LENGTH.size - len(END))
    trailer = handle.read(LENGTH.size + len(END))
    if trailer[LENGTH.size:] != END or start + LENGTH.unpack(trailer[:LENGTH.size])[0] != (
            size - len(trailer)):
        raise _damaged(path, "it is truncated or was not written to the end")
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise _damaged(path, f"format version {version!r}, this slic reads {FORMAT_VERSION}")
    handle.seek(start)
    return header, start, size - len(trailer)


def read_index_file(path: Path, read_payload: Callable[[BinaryIO, dict[str, Any]], _Payload]
                    ) -> tuple[dict[str, Any], _Payload]:
    """The header and the payload `read_payload(handle, header)` reads from the file at
    `path`. ArtifactError (one line, naming `path`) where the file is missing, is not an
    index file, or its payload cannot be read or does not end where the file says."""
    if not path.is_file():
        raise ArtifactError(f"search index {path} does not exist")
    with open(path, "rb") as handle:
        header, _, end = _read_header(handle, path, os.fstat(handle.fileno()).st_size)
        try:
            payload = read_payload(handle, header)
        except (ValueError, RuntimeError, KeyError, TypeError, EOFError, MemoryError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            reason = _FAISS_WHERE.sub("", reason)
            raise _damaged(path, f"its index cannot be read: {reason}") from None
        if handle.tell() != end:
            raise _damaged(path, "its index does not end where the file says")
    return header, payload
