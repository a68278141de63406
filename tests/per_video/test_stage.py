"""The data stages' skeleton with a toy per-video worker: cache, resume, shards, force, merge."""

from pathlib import Path

import numpy as np
import pytest

from stages.io.artifacts import (
    KIND_FRAMES,
    Failure,
    ImageStreamWriter,
    Provenance,
    VideoTable,
    open_artifact,
    read_encoded_images,
    read_failures,
    write_artifact,
    write_failures,
    write_provenance,
    write_video_table,
)
from stages.io.images import encode_image
from stages.io.staging import StagingArea, pack_images
from stages.per_video.jobs import Shard
from stages.per_video.stage import VideoStageResult, run_video_stage
from stages.runtime.context import RunContext
from tests.helpers import assert_same_contents

# Six videos of 2..7 frames; video 4 cannot be read.
PAYLOADS = [{"name": f"v{i}", "frames": i + 2, "broken": i == 4} for i in range(6)]


def toy_worker(payload: dict) -> tuple[dict, dict]:
    """Frames of one flat gray level per video (its number), or the failure of a bad one."""
    if payload["broken"]:
        raise ValueError(f"{payload['name']} is unreadable")
    level = int(payload["name"][1:])
    frames = [np.full((4, 4, 3), level, np.uint8) for _ in range(payload["frames"])]
    return {"images": pack_images([encode_image(f, "raw") for f in frames])}, {
        "frames": payload["frames"]}


class ToyStage:
    """Runs `run_video_stage` on PAYLOADS, noting which videos the worker saw and the merges."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.seen: list[str] = []
        self.merges = 0

    def worker(self, payload: dict) -> tuple[dict, dict]:
        self.seen.append(payload["name"])
        return toy_worker(payload)

    def merge(self, staging: StagingArea, fingerprint: str) -> None:
        self.merges += 1
        rows, failures = [], []
        with write_artifact(self.output, KIND_FRAMES, fingerprint) as h5:
            stream = ImageStreamWriter(h5, "images", "raw", 3, _NoDigest())
            for position, payload in enumerate(PAYLOADS):
                streams, meta = staging.read(position)
                if "failure" in meta:
                    failures.append(Failure(payload["name"], payload["name"], meta["failure"]))
                    continue
                first = stream.append(*streams["images"])
                rows.append(_row(payload["name"], first, meta["frames"]))
            write_video_table(h5, VideoTable.from_rows(rows, ["gray"], ["1"],
                                                       [(1,)] * len(rows)))
            write_failures(h5, failures, ["absent.avi"])
            write_provenance(h5, Provenance("test", {}, "test", [], "0"))

    def run(self, fingerprint: str = "first", shard: Shard = Shard(), force: bool = False,
            workers: int = 1, worker=None) -> VideoStageResult:
        return run_video_stage("toy", self.output, fingerprint, PAYLOADS, worker or self.worker,
                               lambda staging: self.merge(staging, fingerprint), shard, workers,
                               RunContext(force=force), "toy videos")


class _NoDigest:
    def update(self, data: bytes) -> None:
        pass


def _row(name: str, first: int, frames: int) -> dict:
    return {"video_id": name, "relpath": f"gray/{name}.avi", "class_name": "gray", "label": 0,
            "frame_count": frames, "fps": 25.0, "src_fps": 25.0, "src_width": 4,
            "src_height": 4, "width": 4, "height": 4, "file_size": 0, "checksum": "",
            "first_image": first, "num_images": frames}


def test_first_run_processes_every_video_merges_once_and_records_failures(tmp_path):
    stage = ToyStage(tmp_path / "toy.h5")
    result = stage.run()
    assert result.status == "written" and stage.merges == 1
    assert sorted(stage.seen) == [f"v{i}" for i in range(6)]
    assert (result.counts.processed, result.counts.reused, result.counts.failed) == (6, 0, 1)
    assert result.num_images == 2 + 3 + 4 + 5 + 7  # video 4 (6 frames) failed
    assert result.bytes == result.num_images * 4 * 4 * 3
    assert result.extra["num_written"] == 5
    assert [f.video_id for f in result.failures] == ["v4"]
    assert "unreadable" in result.failures[0].reason
    assert (result.num_failed, result.missing, result.num_missing) == (1, ["absent.avi"], 1)
    with open_artifact(result.output) as h5:
        stored = read_encoded_images(h5, "images", 2, 3)  # video 1, after video 0's 2 frames
        assert read_failures(h5)[0][0].video_id == "v4"
    assert all((image == 1).all() for image in stored)
    assert not (tmp_path / ".toy.h5.parts").exists()  # parts are cleared after the merge


def test_a_second_run_is_up_to_date_and_reads_its_counts_from_disk(tmp_path):
    ToyStage(tmp_path / "toy.h5").run()
    again = ToyStage(tmp_path / "toy.h5")
    result = again.run()
    assert result.status == "up to date" and again.seen == [] and again.merges == 0
    assert (result.counts.processed, result.counts.reused) == (0, 0)
    assert result.num_images == 21 and result.num_failed == 1
    summary = result.summary()
    assert summary["status"] == "up to date" and summary["num_images"] == 21
    assert [f["video_id"] for f in summary["failures"]] == ["v4"]
    assert "unreadable" in summary["failures"][0]["reason"]
    assert summary["missing_first"] == ["absent.avi"]


def test_a_shard_leaves_the_merge_and_a_later_run_resumes_from_its_parts(tmp_path):
    stage = ToyStage(tmp_path / "toy.h5")
    half = stage.run(shard=Shard(1, 2))
    assert half.status == "shard done" and stage.merges == 0
    assert sorted(stage.seen) == ["v1", "v3", "v5"] and not stage.output.exists()
    resumed = ToyStage(tmp_path / "toy.h5")
    result = resumed.run()
    assert sorted(resumed.seen) == ["v0", "v2", "v4"]
    assert (result.counts.reused, result.counts.processed) == (3, 3)
    assert result.status == "written" and resumed.merges == 1
    whole = ToyStage(tmp_path / "whole.h5")
    whole.run()
    assert_same_contents(result.output, whole.output)


def test_the_last_shard_to_finish_merges(tmp_path):
    stage = ToyStage(tmp_path / "toy.h5")
    assert stage.run(shard=Shard(0, 2)).status == "shard done"
    last = stage.run(shard=Shard(1, 2))
    assert last.status == "written" and stage.merges == 1 and len(stage.seen) == 6


def test_force_and_a_new_fingerprint_redo_every_video(tmp_path):
    stage = ToyStage(tmp_path / "toy.h5")
    stage.run()
    forced = stage.run(force=True)
    assert forced.status == "written" and forced.counts.processed == 6 and stage.merges == 2
    stage.run(fingerprint="second", shard=Shard(0, 2))  # parts of other settings ...
    changed = ToyStage(tmp_path / "toy.h5")
    result = changed.run(fingerprint="third")  # ... are not taken for these
    assert result.counts.processed == 6 and result.counts.reused == 0
    with open_artifact(result.output) as h5:
        assert h5.attrs["fingerprint"] == "third"


def test_worker_processes_give_the_same_artifact(tmp_path):
    pooled = ToyStage(tmp_path / "pooled.h5").run(workers=2, worker=toy_worker)
    alone = ToyStage(tmp_path / "alone.h5").run(workers=1)
    assert pooled.counts.processed == 6 and pooled.status == "written"
    assert_same_contents(pooled.output, alone.output)


def test_a_decoder_killed_by_a_signal_is_retried_by_the_next_run_not_recorded(tmp_path):
    from stages.io.video import DecoderInterrupted
    from stages.runtime.errors import VideosInterrupted

    stage = ToyStage(tmp_path / "toy.h5")

    def killed_once(payload: dict) -> tuple[dict, dict]:
        if payload["name"] == "v2":
            raise DecoderInterrupted("ffmpeg was stopped by SIGKILL")
        return stage.worker(payload)

    with pytest.raises(VideosInterrupted, match=r"1 videos were interrupted \(ffmpeg was "
                                                r"stopped by SIGKILL\); the 5 others"):
        stage.run(worker=killed_once)
    assert stage.merges == 0 and not stage.output.exists()
    stage.seen.clear()
    result = stage.run()  # no --force: the same command again
    assert stage.seen == ["v2"] and result.status == "written"
    assert [f.video_id for f in result.failures] == ["v4"]  # v2 is not a failure
    assert result.extra["num_written"] == 5


def test_ffmpeg_stopped_by_a_signal_is_an_interruption_not_a_verdict():
    import signal as signals

    from stages.io import video

    class Stopped:
        stdout = type("Pipe", (), {"close": lambda self: None})()

        def __init__(self, code: int) -> None:
            self.code = code

        def wait(self) -> int:
            return self.code

        def kill(self) -> None:
            pass

    class Watcher:
        info = video.StreamInfo(width=4)

        def join(self) -> None:
            pass

        def reason(self) -> str:
            return "Invalid data found when processing input"

    with pytest.raises(video.DecoderInterrupted, match="SIGKILL.*out-of-memory"):
        video._finish(Stopped(-signals.SIGKILL), Watcher(), completed=True)
    with pytest.raises(video.DecoderInterrupted, match="SIGINT"):
        video._finish(Stopped(-signals.SIGINT), Watcher(), completed=True)
    with pytest.raises(video.VideoDecodeError, match="Invalid data"):
        video._finish(Stopped(1), Watcher(), completed=True)
    video._finish(Stopped(-signals.SIGKILL), Watcher(), completed=False)  # we stopped it
