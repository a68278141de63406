"""metrics.jsonl: what a kill or a full disk leaves in it is read back, or named."""

import json

import pytest

from stages.runtime.errors import ArtifactError
from stages.training.monitor import MetricsLog


def written(tmp_path, *records) -> MetricsLog:
    log = MetricsLog(tmp_path / "metrics.jsonl")
    for record in records:
        log.append(record)
    return log


def test_appended_records_read_back_in_order(tmp_path):
    log = written(tmp_path, {"epoch": 0, "loss": 1.5}, {"epoch": 1, "loss": 1.25})
    assert MetricsLog(log.path).records() == [{"epoch": 0, "loss": 1.5},
                                              {"epoch": 1, "loss": 1.25}]
    assert log.path.stat().st_mode & 0o777 == 0o644


def test_a_line_cut_short_at_the_end_is_dropped_with_a_note(tmp_path):
    log = written(tmp_path, {"epoch": 0, "loss": 1.5}, {"epoch": 1, "loss": 1.25})
    with open(log.path, "a") as handle:
        handle.write(json.dumps({"epoch": 2, "loss": 1.0})[:9])  # a kill mid-append
    again = MetricsLog(log.path)
    assert [r["epoch"] for r in again.records()] == [0, 1] and again.partial_line == 3
    note = again.keep_before(2)
    assert note is not None and "line 3" in note and "dropped" in note
    assert log.path.read_text().endswith('"loss": 1.25}\n')  # clean again
    again.append({"epoch": 2, "loss": 1.0})
    assert [r["epoch"] for r in MetricsLog(log.path).records()] == [0, 1, 2]
    assert MetricsLog(log.path).keep_before(3) is None


@pytest.mark.parametrize("damage", ['{"epoch": 0, "lo\n', "[1, 2]\n", "not json\n"])
def test_a_damaged_line_before_the_end_is_one_clear_error(tmp_path, damage):
    log = written(tmp_path, {"epoch": 0, "loss": 1.5})
    with open(log.path, "a") as handle:
        handle.write(damage)
    log.append({"epoch": 1, "loss": 1.0})
    with pytest.raises(ArtifactError, match="line 2 is not an epoch's record.*--force"):
        MetricsLog(log.path).records()
