"""What a random-init baseline is, as every output names it: an untrained encoder with the
architecture and clip settings of the run it is compared with, drawn under one seed. Light to
import (no torch), so the report can name a baseline folder it finds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.io.run_folder import RunFolder


@dataclass(frozen=True)
class RandomInit:
    """A random-init baseline: `seed`, under which its weights were drawn
    (`torch.manual_seed(seed)` before the encoder is built), and `compared_with`, the checkpoint
    of the run whose architecture and clip settings it takes (None: the pretrain.* settings)."""

    seed: int
    compared_with: Path | None = None

    @property
    def run_name(self) -> str | None:
        """The compared run's folder name (its checkpoint's path where that is no run's
        best.pt or checkpoint.pt); None without a compared run."""
        if self.compared_with is None:
            return None
        files = RunFolder(self.compared_with.parent)
        if self.compared_with in (files.best, files.checkpoint):
            return self.compared_with.parent.name
        return str(self.compared_with)

    def description(self) -> str:
        """'random-init encoder with RUN's architecture and clip settings, seed S'."""
        source = "pretrain.*" if self.run_name is None else f"{self.run_name}'s"
        return f"random-init encoder with {source} architecture and clip settings, seed {self.seed}"

    def summary(self) -> dict[str, Any]:
        """The keys a stage's summary adds for a baseline: `random_init` (the description) and
        `random_init_seed`."""
        return {"random_init": self.description(), "random_init_seed": self.seed}


def baseline_summary(baseline: RandomInit | None) -> dict[str, Any]:
    """`RandomInit.summary` of `baseline`, with both keys None for a trained encoder, so a
    summary holds the same keys either way."""
    return baseline.summary() if baseline else {"random_init": None, "random_init_seed": None}


def saved_baseline(saved: Any) -> RandomInit | None:
    """The baseline a checkpoint's saved dict describes (read with or without unpickling),
    or None when it is not a random-init checkpoint or names no integer seed."""
    if not isinstance(saved, dict) or saved.get("criterion") != "random init":
        return None
    config = saved.get("config")
    seed = config.get("seed") if isinstance(config, dict) else None
    if not isinstance(seed, int):
        return None
    compared = saved.get("compared_with")
    return RandomInit(seed, Path(compared) if isinstance(compared, str) else None)
