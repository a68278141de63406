"""slic's pipeline library: every stage as a plain Python function, usable without the CLI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("slic")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"
