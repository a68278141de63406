"""Terminal output: summary tables, JSON, and one-line errors (progress bars: progress_bars)."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from stages.io.os_errors import os_error_message, user_os_error
from stages.runtime.errors import SlicError

# Piped or redirected, rich would cut tables at 80 columns ("ucfTrainTes…"); a file or
# another program gets them whole.
PIPED_WIDTH = 200
# C0 and C1 control characters (escape sequences start with ESC or CSI): a video or class
# name must not clear the user's screen or retitle their window.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """`text` with each control character shown as its escape (\\x1b), tabs and newlines
    kept."""
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


class NamesConsole(Console):
    """A console for text that carries names from files (videos, classes, paths): strings
    are shown as they are, never read as rich markup ("[/]" would crash a table, "[bold]"
    vanish), with their control characters escaped. Styling is given as styles or Text."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(markup=False, **kwargs)

    def render_str(self, text: str, **kwargs: Any) -> Text:
        kwargs["markup"] = False
        return super().render_str(visible(text), **kwargs)


def labelled(label: str, style: str, message: str) -> Text:
    """`label` in `style`, then the plain `message`: "error: ...", "note: ..."."""
    return Text.assemble((label, style), " ", visible(message))


stderr = NamesConsole(stderr=True)
stdout = NamesConsole(width=None if sys.stdout.isatty() else PIPED_WIDTH)


def command_line() -> str:
    """The command as the user typed it, for provenance."""
    return " ".join(shlex.quote(a) for a in ["slic", *sys.argv[1:]])


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's kill, `kill PID`): stops the command as Ctrl-C does, so the
    same clean-up runs (worker pools stopped, finished work kept) and one line is printed."""


def stop_on_sigterm() -> None:
    """Make SIGTERM raise Terminated in the main thread (the default would end the process
    at once, leaving its worker processes to print BrokenPipeError tracebacks)."""
    main = os.getpid()

    def terminate(signum: int, frame: object) -> None:
        if os.getpid() != main:  # a forked worker: die as SIGTERM kills, quietly
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        # The workers are stopped by their pool as the exception unwinds (Pool.terminate sends
        # them SIGTERM, which kills a worker quietly: its handler is the default). Killing
        # them here first would hang that teardown: a worker killed while it sends a result
        # keeps the result queue's lock forever (seen under load, 5 stops in 25).
        raise Terminated

    signal.signal(signal.SIGTERM, terminate)


def _error_line(message: str) -> NoReturn:
    """Print `message` as one "error:" line on stderr (its whitespace, newlines included,
    folded to single spaces) and exit with code 2."""
    stderr.print(labelled("error:", "bold red", " ".join(message.split())), highlight=False,
                 soft_wrap=True)
    raise typer.Exit(2) from None


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a user's mistake (SlicError) or an OS refusal the user can fix (read-only or
    forbidden path, full disk, missing folder: `user_os_error`) into one line on stderr and
    exit code 2; any other exception keeps its traceback."""
    try:
        yield
    except SlicError as error:
        _error_line(str(error))
    except KeyboardInterrupt as stop:
        terminated = isinstance(stop, Terminated)
        stderr.print(labelled("terminated:" if terminated else "interrupted:", "red",
                              "finished videos are kept; run again to resume"))
        raise typer.Exit(143 if terminated else 130) from None
    except Exception as error:
        refused = user_os_error(error)
        if refused is None:
            raise
        _error_line(os_error_message(refused))


def key_value_table(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows.items():
        table.add_row(key, str(value))
    return table


def warnings_tables(warnings: list[str]) -> list[Table]:
    """A table of what makes a stage's figures mean little (a split with classes left out, a
    handful of test videos), shown beside them; [] when there is nothing to say."""
    if not warnings:
        return []
    table = Table(title="read these figures with care", title_justify="left", show_header=False)
    table.add_column(style="yellow")
    for warning in warnings:
        table.add_row(warning)
    return [table]


def failures_table(failures: list[dict[str, str]], limit: int = 20) -> Table:
    table = Table(title=f"failed videos ({len(failures)})", title_justify="left")
    table.add_column("video")
    table.add_column("reason", style="red")
    for failure in failures[:limit]:
        table.add_row(failure["relpath"], failure["reason"])
    if len(failures) > limit:
        table.add_row(f"... {len(failures) - limit} more", "see slic inspect --json")
    return table


def emit(summary: dict[str, Any], as_json: bool, quiet: bool, tables: list[Table]) -> None:
    """Print a stage's result: one JSON object on stdout, or its tables (unless quiet)."""
    if as_json:
        sys.stdout.write(json.dumps(summary, default=str) + "\n")
    elif not quiet:
        for table in tables:
            stdout.print(table)
