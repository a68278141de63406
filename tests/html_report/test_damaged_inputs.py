"""The report of a run folder whose text files were damaged (a results.json or config.yaml
cut short, nested past any parser's depth, or of another type) stops with one line naming
the file."""

from __future__ import annotations

import pytest

from stages.html_report.contents import read_run
from stages.runtime.errors import ArtifactError
from tests.html_report.synthetic_run import make_run_folder

DAMAGED = [b'{"top1": 0.5', b"[" * 100_000 + b"]" * 100_000, b"\xff\xfe\x00", b"[1, 2]"]


@pytest.mark.parametrize("content", DAMAGED)
def test_a_damaged_results_file_is_one_line_naming_it(tmp_path, content):
    run = make_run_folder(tmp_path)
    results = run / "finetune" / "results.json"
    results.write_bytes(content)
    with pytest.raises(ArtifactError, match="finetune/results.json") as caught:
        read_run(run)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("content", [b"a: [1", b"\xff\xfe\x00", b"- " * 50_000 + b"x"])
def test_a_damaged_run_config_is_one_line_naming_it(tmp_path, content):
    run = make_run_folder(tmp_path)
    (run / "config.yaml").write_bytes(content)
    with pytest.raises(ArtifactError, match="config.yaml is not readable YAML"):
        read_run(run)
