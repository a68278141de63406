"""How stages report progress without knowing who listens (the CLI fills this in with rich)."""

from __future__ import annotations

from typing import Any, Protocol


class Progress(Protocol):
    """Receives progress from a stage. All methods must be cheap; stages call them often."""

    def start(self, description: str, total: int) -> None:
        """A new long loop of `total` steps begins."""

    def advance(self, steps: int = 1) -> None:
        """`steps` more steps of the current loop are done."""

    def message(self, text: str) -> None:
        """A one-line note for the user (a skipped video, a resumed run)."""

    def finish(self) -> None:
        """The current loop is over."""

    def row(self, values: dict[str, Any]) -> None:
        """One row of a stage's running table (an epoch's metrics, for example)."""


class SilentProgress:
    """A `Progress` that ignores everything: the default for library use and `--quiet`."""

    def start(self, description: str, total: int) -> None:
        """Ignore the start of a loop."""
        pass

    def advance(self, steps: int = 1) -> None:
        """Ignore the steps done."""
        pass

    def message(self, text: str) -> None:
        """Drop the note."""
        pass

    def finish(self) -> None:
        """Ignore the end of a loop."""
        pass

    def row(self, values: dict[str, Any]) -> None:
        """Drop the row."""
        pass
