"""slic's pipeline library: every stage as a plain Python function, usable without the CLI."""

from __future__ import annotations

import functools


@functools.cache
def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # slow: read only when asked

    try:
        return version("slic")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "0.0.0+source"


def __getattr__(name: str) -> str:
    """`stages.__version__`, looked up on first use so that the command line starts fast."""
    if name == "__version__":
        return _installed_version()
    raise AttributeError(f"module 'stages' has no attribute {name!r}")
