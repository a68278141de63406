"""The one way a command runs a stage: resolve the config, show progress, give the stage its
provenance context, and print its summary (only the main process under torchrun)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rich.table import Table

from slic_cli.console import command_line, emit, user_errors
from stages.runtime.context import RunContext, launch_position

if TYPE_CHECKING:
    from stages.config import SlicConfig


class StageResult(Protocol):
    def summary(self) -> dict[str, Any]:
        """What the stage did, as JSON-ready values."""


def run_stage(stage: Callable[[SlicConfig, RunContext], StageResult],
              tables: Callable[[dict[str, Any]], list[Table]], *, config: Path | None,
              options: dict[str, Any] | None, set_items: list[str] | None, force: bool,
              quiet: bool, as_json: bool) -> None:
    """Resolve the config (defaults, `config`, the command's `options`, `--set`), run
    `stage(resolved, context)` under a progress display, and emit its summary as `tables`
    (or JSON). Under torchrun only rank 0 draws and prints; a user mistake is one line."""
    from slic_cli.progress_bars import RichProgress  # only commands that run a stage draw
    from stages.config import load_config

    with user_errors():
        resolved = load_config(config, options, set_items)
        main_process = launch_position()[0] == 0
        progress = RichProgress(quiet or not main_process)
        with progress:
            result = stage(resolved, RunContext(command_line(), resolved.as_dict(), progress,
                                                force))
        if main_process:
            summary = result.summary()
            emit(summary, as_json, quiet, tables(summary))
