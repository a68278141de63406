"""`slic report`: one self-contained page of a tiny run folder, its content, and headless
Chromium rendering it without a console message and without the network."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest

from stages.evaluation.gallery import balanced_queries
from stages.evaluation.sources import random_init_checkpoint
from stages.html_report import sections
from stages.html_report.contents import read_run
from stages.html_report.embedding_map import principal_components
from stages.html_report.evolution import transitions
from stages.html_report.provenance import Origin
from stages.io.checkpoint import save_checkpoint
from stages.pretrain_config import PretrainConfig
from stages.report import write_report
from stages.runtime.errors import ArtifactError
from stages.runtime.sections import DataConfig, WorkspaceConfig
from stages.runtime.settings import output_relevant
from tests.html_report.synthetic_run import CLASSES, PROVENANCE, make_run_folder

DATA_URI = re.compile(r'data:(image/[a-z+]+);base64,([A-Za-z0-9+/=]+)')


def decoded_images(page: str) -> list[tuple[str, bytes]]:
    return [(media, base64.b64decode(data)) for media, data in DATA_URI.findall(page)]


def svg_text(page: str) -> str:
    """The text of every inline SVG figure (matplotlib writes text as <text> elements)."""
    texts = []
    for media, data in decoded_images(page):
        if media == "image/svg+xml":
            texts.extend(t for t in ElementTree.fromstring(data).itertext() if t.strip())
    return "\n".join(texts)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    run = make_run_folder(tmp_path_factory.mktemp("report"))
    result = write_report(run, queries=8)
    assert result.path == run / "report.html"
    return run, result.path.read_text(encoding="utf-8")


def test_transitions_count_kept_split_and_merged_clusters():
    before = np.array([0, 0, 1, 1, 2, 3])
    after = np.array([5, 5, 6, 7, 8, 8])  # 0 kept, 1 split, 2 and 3 merged
    assert transitions(before, after) == (3, 1, 1)


def test_balanced_queries_take_turns_over_the_classes():
    labels = np.array([0] * 6 + [1] * 2 + [2] * 1)
    shown = balanced_queries(labels, 6, seed=3)
    counts = np.bincount(labels[shown], minlength=3)
    assert counts.tolist() == [3, 2, 1] and len(set(shown.tolist())) == 6
    assert np.bincount(labels[balanced_queries(labels, 3)]).tolist() == [1, 1, 1]
    assert np.array_equal(balanced_queries(labels, 6, seed=3), shown)  # seeded


def test_principal_components_find_the_spread_and_its_share():
    rng = np.random.default_rng(0)
    features = np.zeros((50, 8))
    features[:, 0] = 1.0
    features[:, 1] = rng.normal(size=50)
    points, shares = principal_components(features)
    assert points.shape == (50, 2) and shares[0] > 0.9 and shares.sum() <= 1.0 + 1e-9


@pytest.mark.slow
def test_the_page_holds_every_section_and_needs_no_network(report):
    _, page = report
    for anchor in ("summary", "config", "curves", "clusters", "embedding", "retrieval",
                   "classifiers", "files"):
        assert f'<section id="{anchor}">' in page and f'href="#{anchor}"' in page
    assert "<script" not in page and "<link" not in page and "@import" not in page
    sources = re.findall(r'(?:src|href)="([^"]*)"', page) + re.findall(r"url\(([^)]*)\)", page)
    assert sources and all(s.startswith(("data:", "#")) or "://" not in s for s in sources)
    for media, data in decoded_images(page):
        if media == "image/svg+xml":
            ElementTree.fromstring(data)
        else:
            assert data.startswith({"image/png": b"\x89PNG", "image/jpeg": b"\xff\xd8"}[media])


@pytest.mark.slow
def test_config_provenance_and_curves_are_readable(report):
    _, page = report
    assert "slic pretrain --run-name tiny" in page and "0.1.0" in page
    assert "<pre>" in page and "r3d_tiny" in page and "0.0001" in page  # lr 1e-4 stays legible
    summary = page.split('<section id="summary">')[1].split("</section>")[0]
    assert "clips a video" in summary  # how each figure was made
    assert "NMI of the pseudo-labels, last round (before epoch" in summary
    text = svg_text(page)
    for words in ("recall (share of queries)", "R@1, test queries", "R@5, test queries",
                  "loss (cosine-distance hinge)", "triplet (margin m1)", "clusters (count)",
                  "NMI", "AMI", "positive of another class (false positive)",
                  "mean pairwise cosine", "novel_metric", "epoch"):
        assert words in text, words


@pytest.mark.slow
def test_clusters_across_rounds_count_splits_and_merges(report):
    _, page = report
    section = page.split('<section id="clusters">')[1].split("</section>")[0]
    for header in ("clusters", "purity", "kept", "split", "merged"):
        assert f"<th>{header}</th>" in section
    rows = re.findall(r"<tr>(.*?)</tr>", section)[1:]
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in rows]
    assert [(c[4], c[5]) for c in cells] == [("6", "2"), ("4", "0")]  # clusters, singles
    assert cells[0][-3:] == ["–"] * 3  # the first round has no previous one
    assert cells[1][-3:] == ["6", "0", "2"]  # every cluster kept whole, pairs merged into 2


@pytest.mark.slow
def test_the_gallery_moves_has_a_legend_and_balanced_queries(report):
    _, page = report
    section = page.split('<section id="retrieval">')[1].split("</section>")[0]
    assert "<th>R@1</th>" in section and "<th>R@5</th>" in section
    assert "neighbour of the query's class" in section
    assert "neighbour of another class" in section
    assert section.count('class="clip ') == 4 * 6  # 4 test queries and 5 neighbours each
    assert section.count('class="strip ') == 4 * 6
    assert sorted(re.findall(r"query: (\w+)", section)) == sorted(CLASSES)
    assert "@keyframes play" in page and "prefers-reduced-motion" in page


@pytest.mark.slow
def test_classifiers_show_counts_in_their_confusion_matrices(report):
    _, page = report
    section = page.split('<section id="classifiers">')[1].split("</section>")[0]
    assert "Fine-tuning" in section and "Linear probe (cached protocol)" in section
    text = svg_text(section)
    assert "share of the true class's test videos" in text  # the colour bar
    assert "predicted class" in text and "true class" in text
    counts = [line for line in text.splitlines() if line.strip() in {"1", "2", "3"}]
    assert len(counts) >= 2 * 7  # the non-zero cells of both matrices


@pytest.mark.slow
def test_files_are_listed_with_relative_links(report):
    run, page = report
    section = page.split('<section id="files">')[1]
    assert 'href="metrics.jsonl"' in section and 'href="finetune/results.json"' in section
    assert "retrieval/synthetic-projection/" not in section  # the link's files once only
    assert (run / "metrics.jsonl").is_file()


@pytest.mark.slow
def test_a_baseline_folder_without_training_still_reports(tmp_path):
    run = make_run_folder(tmp_path)
    baseline = tmp_path / "baseline"
    baseline.mkdir()
    (baseline / "best.pt").write_bytes(b"not read")
    shutil.copytree(run / "finetune", baseline / "finetune")
    result = write_report(baseline, tmp_path / "elsewhere" / "page.html")
    assert result.sections == ["summary", "config", "classifiers", "files"]
    assert 'href="../baseline/best.pt"' in result.path.read_text()


def test_a_folder_that_is_no_run_is_refused(tmp_path):
    with pytest.raises(ArtifactError, match="runs/<run>"):
        write_report(tmp_path)
    with pytest.raises(ArtifactError, match="not a folder"):
        write_report(tmp_path / "missing")


def chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)


@pytest.mark.slow
def test_headless_chromium_renders_the_page_without_console_messages(report, tmp_path):
    browser = chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium); the page's "
                    "content is still checked by the other tests of this file")
    run, _ = report
    # Every host resolves to nothing: a page that reached for the network would log an error.
    process = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--enable-logging=stderr", "--v=0", "--host-resolver-rules=MAP * ~NOTFOUND",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
         (run / "report.html").as_uri()],
        capture_output=True, text=True, timeout=180)
    assert process.returncode == 0, process.stderr[-2000:]
    console = [line for line in process.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    for anchor in ("summary", "curves", "retrieval", "classifiers"):
        assert f'<section id="{anchor}">' in process.stdout


RUN_STARTED, RUN_FINISHED = "2025-12-31T10:00:00+00:00", "2025-12-31T11:30:00+00:00"


def the_run(contents) -> str:
    """The 'The run' block of the configuration section."""
    return sections.configuration(contents).body.split("<h3>The run</h3>")[1].split("<h3>")[0]


def test_the_runs_provenance_is_its_own_and_later_files_keep_theirs(tmp_path):
    """The run's start and end are its checkpoint's, not those of a features.h5 written in the
    folder (by the run's last step, or later by retrieve): each file is listed under its own
    name with its own times."""
    run = make_run_folder(tmp_path)
    inputs = [{"path": "frames.h5", "size": 1, "checksum": "abc"}]
    save_checkpoint({"model": {}, "epoch": 3, "finished": True, "slic_version": "0.2.0",
                     "command": "slic pretrain --epochs 3", "started_at": RUN_STARTED,
                     "finished_at": RUN_FINISHED, "inputs": inputs}, run / "checkpoint.pt")
    contents = read_run(run)
    assert contents.origin == Origin("tiny", "slic pretrain --epochs 3", "0.2.0", RUN_STARTED,
                                     RUN_FINISHED, inputs)
    later = "retrieval/synthetic-projection-0123abcd/features.h5"
    by_name = {origin.name: origin for origin in contents.artifacts}
    assert {"features.h5", "assignments.h5", later, "finetune/results.json"} <= set(by_name)
    assert (by_name[later].started, by_name[later].finished) == (PROVENANCE.started,
                                                                 PROVENANCE.finished)
    assert by_name["finetune/results.json"].command == "slic demo"
    block = the_run(contents)
    assert RUN_STARTED in block and RUN_FINISHED in block and "0.2.0" in block
    assert PROVENANCE.started not in block and PROVENANCE.command not in block
    listed = sections.configuration(contents).body.split("each with its own provenance")[1]
    assert f"<td>{later}</td>" in listed and PROVENANCE.finished in listed


def test_a_checkpoint_without_times_shows_file_times_and_says_so(tmp_path):
    run = make_run_folder(tmp_path)
    save_checkpoint({"model": {}, "epoch": 3, "finished": True}, run / "checkpoint.pt")
    os.utime(run / "config.yaml", (1_767_261_600, 1_767_261_600))  # 2026-01-01T10:00:00Z
    origin = read_run(run).origin
    assert origin.started == "2026-01-01T10:00:00+00:00" and origin.finished is not None
    assert "not recorded in checkpoint.pt" in origin.note
    assert "not recorded in checkpoint.pt" in the_run(read_run(run))


def test_a_random_init_folder_says_what_encoder_it_is_not_the_runs_name(tmp_path):
    """A baseline's page names a random-init encoder with the compared run's settings and
    seed; the pretrain section an evaluation's command resolved (its run_name is the trained
    run's) is never shown as this folder's settings."""
    run = make_run_folder(tmp_path)
    encoder = {"arch": "r3d_tiny", "projection_hidden": 16, "projection_dim": 8,
               "clip_length": 4, "stride": 2, "crop_size": 32}
    save_checkpoint({"model": {}, "config": {**encoder, "seed": 5}}, run / "best.pt")
    pretrain = output_relevant(PretrainConfig(**encoder, run_name="demo-slic-full"))
    best = random_init_checkpoint(pretrain, WorkspaceConfig(root=str(tmp_path)),
                                  DataConfig(dataset="synthetic"), like=run / "best.pt")
    results = json.loads((run / "finetune" / "results.json").read_text())
    results["config"] = {"pretrain": pretrain}
    (best.parent / "finetune").mkdir()
    (best.parent / "finetune" / "results.json").write_text(json.dumps(results))
    page = write_report(best.parent).path.read_text()
    described = "random-init encoder with tiny's architecture and clip settings, seed 5"
    assert page.count(html.escape(described)) == 2  # the summary and the configuration
    assert "Pretraining settings" not in page and "demo-slic-full" not in page
    assert "<h3>Encoder settings</h3>" in page
