"""Worker processes of the per-video data stages: every usable core by default, or a number."""

from __future__ import annotations

import os

import pytest

from stages.config import load_config
from stages.runtime import cores
from stages.runtime.errors import ConfigError


def test_auto_is_every_core_of_the_affinity_mask_and_a_number_is_kept(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3, 4, 5}, raising=False)
    assert cores.usable_cores() == 3  # a launcher's binding, not the machine
    assert cores.worker_processes("auto") == 3
    assert cores.worker_processes(7) == 7


@pytest.mark.parametrize("section", ["extract_frames", "compute_flow"])
def test_data_stage_workers_default_to_auto_and_take_a_number_typed_as_text(section: str) -> None:
    assert getattr(load_config(None, {}), section).workers == "auto"
    typed = load_config(None, {f"{section}.workers": "3"})  # the command line's --workers 3
    assert getattr(typed, section).workers == 3
    with pytest.raises(ConfigError, match=f"{section}.workers must be"):
        load_config(None, {f"{section}.workers": "0"})
    with pytest.raises(ConfigError, match=f"{section}.workers must be an integer or auto"):
        load_config(None, {f"{section}.workers": "many"})
