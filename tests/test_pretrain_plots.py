"""Pretraining redraws its PNG curves at most every PLOT_EVERY_SECONDS."""

import math
from types import SimpleNamespace

from stages import slic_training


def plotting_task(tmp_path) -> slic_training.SlicTraining:
    task = slic_training.SlicTraining.__new__(slic_training.SlicTraining)  # only the plotting state
    task.folder, task.plotted_at = SimpleNamespace(path=tmp_path), -math.inf
    return task


def test_curves_are_drawn_first_then_throttled(monkeypatch, tmp_path):
    calls: list = []
    monkeypatch.setattr(slic_training, "draw_plots", lambda records, folder: calls.append(records))
    monkeypatch.setattr(slic_training, "PLOT_EVERY_SECONDS", math.inf)
    task = plotting_task(tmp_path)
    for epoch in range(3):
        task.epoch_written([{"epoch": epoch}])
    assert calls == [[{"epoch": 0}]]
    monkeypatch.setattr(slic_training, "PLOT_EVERY_SECONDS", 0.0)
    task.epoch_written([{"epoch": 3}])
    assert calls[-1] == [{"epoch": 3}]
