"""What every stage receives besides its config: provenance facts and a progress listener."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from stages.runtime.progress import Progress, SilentProgress


@dataclass
class RunContext:
    """The command line and resolved config (stored as provenance), and how to report."""

    command: str = "python"
    config: dict[str, Any] = field(default_factory=dict)
    progress: Progress = field(default_factory=SilentProgress)
    force: bool = False

    def running(self, **sections: Any) -> RunContext:
        """This context with `config` holding the sections a stage actually runs with (section
        name -> its dataclass), so provenance is the truth whoever called the stage: the CLI,
        `slic demo` with its own budget, or Python code with no config at all."""
        config = {**self.config}
        for name, section in sections.items():
            if section is not None:
                config[name] = dataclasses.asdict(section)
        return dataclasses.replace(self, config=config)


def now() -> str:
    """The current UTC time, ISO 8601, for provenance."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def fingerprint(description: Any) -> str:
    """A stable hash of a JSON-able description of a stage's inputs and settings."""
    text = json.dumps(description, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def launch_position() -> tuple[int, int]:
    """(rank, world size) of this process as torchrun launched it (its RANK and WORLD_SIZE
    variables); (0, 1) for a process started on its own."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
