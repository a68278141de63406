"""`slic search`: the videos of a collection nearest to query videos, found with a trained
run and no labels; a query file may lie outside the collection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stages.io.features import load_features
from stages.pretrain import PretrainConfig
from stages.pretrain import run as pretrain
from stages.runtime.sections import DataConfig, WorkspaceConfig
from tests.conftest import TINY_PRETRAIN
from tests.test_unlabelled import flat_workspace, invoke, write_videos  # noqa: F401


@pytest.fixture(scope="module")
def trained(flat_workspace: Path) -> Path:  # noqa: F811
    """A 1-epoch run on the flat collection of 6 videos."""
    settings = PretrainConfig(**{**TINY_PRETRAIN, "batch_size": 4}, epochs=1,
                              run_name="searcher")
    return pretrain(settings, DataConfig(dataset="folder"),
                    WorkspaceConfig(root=str(flat_workspace))).run_folder


def search(workspace: Path, run: Path, *queries: str, k: int = 3) -> dict:
    arguments = [argument for query in queries for argument in ("--query", query)]
    done = invoke("search", "--run", str(run), "--dataset", "folder", "--workspace",
                  str(workspace), *arguments, "--k", str(k), "--clips", "2", "--json",
                  "--workers", "0")
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_query_file_outside_the_collection_gets_its_k_nearest_videos(
        flat_workspace, trained, tmp_path):  # noqa: F811
    write_videos(tmp_path / "outside", ["query.mp4"])
    found = search(flat_workspace, trained, str(tmp_path / "outside" / "query.mp4"))
    assert found["collection_size"] == 6 and found["index_outcome"] == "built"
    (query,) = found["queries"]
    neighbours = query["neighbours"]
    assert len(neighbours) == 3
    assert all(n["relpath"].startswith("clip") for n in neighbours)
    similarities = [n["similarity"] for n in neighbours]
    assert similarities == sorted(similarities, reverse=True)
    # The neighbours are those of the cached features: cosine of the query's own embedding.
    collection = load_features(Path(found["features"]))
    ids = [str(v) for v in collection.video_ids]
    unit = collection.features / np.linalg.norm(collection.features, axis=1, keepdims=True)
    chosen = unit[[ids.index(n["video_id"]) for n in neighbours]]
    assert np.allclose(chosen @ chosen[0], [1.0, *(chosen[1:] @ chosen[0])], atol=1e-5)


def test_a_video_of_the_collection_finds_others_and_the_index_is_reused(
        flat_workspace, trained):  # noqa: F811
    collection = load_features(trained / "search" / "folder-projection" / "features.h5") \
        if (trained / "search").exists() else None
    first = search(flat_workspace, trained, "clip0.mp4" if collection is None
                   else str(collection.video_ids[0]), k=5)
    own = first["queries"][0]["query"]
    names = [n["video_id"] for n in first["queries"][0]["neighbours"]]
    assert own not in names and len(names) == 5  # itself left out: the 5 others
    again = search(flat_workspace, trained, own, k=2)
    assert again["index_outcome"] == "reused" and again["index_recall"] == "exact"
    assert [n["video_id"] for n in again["queries"][0]["neighbours"]] == names[:2]
    # Queries searched together (one search call) find what each finds alone.
    other = search(flat_workspace, trained, names[0], k=2)["queries"][0]
    together = search(flat_workspace, trained, own, names[0], k=2)["queries"]
    assert together == [again["queries"][0], other]


def test_a_query_that_is_nothing_is_one_line(flat_workspace, trained):  # noqa: F811
    done = invoke("search", "--run", str(trained), "--dataset", "folder", "--workspace",
                  str(flat_workspace), "--query", "no-such-video.mp4", "--clips", "2")
    assert done.exit_code == 2
    assert "neither a file, a folder, nor a video id" in done.output
    assert "Traceback" not in done.output


def test_a_gallery_page_shows_each_query_and_its_neighbours(
        flat_workspace, trained, tmp_path):  # noqa: F811
    write_videos(tmp_path / "outside", ["a.mp4", "b.mp4"])
    page = tmp_path / "page.html"
    arguments = ["search", "--run", str(trained), "--dataset", "folder", "--workspace",
                 str(flat_workspace), "--query", str(tmp_path / "outside"), "--k", "2",
                 "--clips", "2", "--gallery", str(page), "--json", "--workers", "0"]
    found = json.loads(invoke(*arguments).stdout.strip().splitlines()[-1])
    assert [Path(q["query"]).name for q in found["queries"]] == ["a.mp4", "b.mp4"]
    text = page.read_text()
    assert text.count('class="query"') == 2 and text.count('class="found"') == 4
    assert text.count("data:image/jpeg;base64,") == 6  # a thumbnail for every video shown
    page.write_text("my notes")  # no longer a page slic wrote: refused, kept
    done = invoke(*arguments)
    assert done.exit_code == 2 and page.read_text() == "my notes"
