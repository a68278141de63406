"""The operating system's refusals a user can fix (a read-only or forbidden place, a full disk,
a missing folder) as one line that names the path and the fix; any other OSError is a bug and
keeps its traceback."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from stages.io.space import disk_full_cause, disk_full_message

PERMISSION_ERRNOS = (errno.EACCES, errno.EPERM)
WHERE_TO_WRITE = "--workspace or --out"


def _path_of(error: OSError) -> Path | None:
    """The path `error` names, or None (an error on a file descriptor names none)."""
    name = error.filename
    return Path(os.fsdecode(name)) if isinstance(name, (str, bytes, os.PathLike)) else None


def _missing_folder(error: OSError) -> Path | None:
    """The folder that does not exist on the way to the path of an ENOENT `error`, or None
    when that folder exists (then the file itself is missing: a bug, or a message elsewhere)."""
    path = _path_of(error)
    if error.errno != errno.ENOENT or path is None or path.parent.exists():
        return None
    return path.parent


def user_os_error(error: BaseException) -> OSError | None:
    """The OSError behind `error` that the user can fix, or None: the out-of-space error in its
    chain (see `disk_full_cause`), or `error` itself when it is an OSError of a read-only file
    system, a refused permission or a missing folder. Only `error` itself is looked at for
    those: an exception raised while handling one of them is a bug, shown in full."""
    full = disk_full_cause(error)
    if full is not None:
        return full
    if not isinstance(error, OSError):
        return None
    if error.errno in (errno.EROFS, *PERMISSION_ERRNOS) or _missing_folder(error) is not None:
        return error
    return None


def os_error_message(error: OSError) -> str:
    """One line for an error `user_os_error` returned: what could not be done, to which path,
    and the fix."""
    if disk_full_cause(error) is not None:
        return disk_full_message(error)
    path = _path_of(error)
    target = f" {path}" if path is not None else ""
    if error.errno == errno.EROFS:
        return f"cannot write{target}: read-only file system; choose a writable {WHERE_TO_WRITE}"
    if error.errno in PERMISSION_ERRNOS:
        return (f"permission denied for{target}; change its permissions or choose another path "
                f"({WHERE_TO_WRITE})")
    folder = _missing_folder(error)
    return (f"cannot open{target}: the folder {folder} does not exist; create it or choose "
            "another path")
