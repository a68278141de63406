import pickle

import pytest
import torch

from stages.io.checkpoint import load_checkpoint, save_checkpoint
from stages.runtime.errors import ArtifactError


class Payload:
    def __reduce__(self):
        return (print, ("unpickled arbitrary code",))


def test_round_trip_and_no_temporary_left(tmp_path):
    state = {"model": {"w": torch.arange(3.0)}, "epoch": 4, "clusters": torch.tensor([1, 2])}
    path = tmp_path / "run" / "checkpoint.pt"
    save_checkpoint(state, path)
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["model"]["w"], state["model"]["w"]) and loaded["epoch"] == 4
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pt"]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_arbitrary_objects_are_never_unpickled(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"model": Payload()}, handle)
    with pytest.raises(ArtifactError, match="not a readable slic checkpoint") as error:
        load_checkpoint(path)
    assert "weights_only=False" not in str(error.value)  # never advise unpickling
    with pytest.raises(ArtifactError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_an_encoder_checkpoint_of_other_shapes_is_one_clear_error(tmp_path):
    from stages.evaluation.sources import load_encoder
    from stages.models.encoder import Encoder

    path = tmp_path / "best.pt"
    config = {"arch": "r3d_tiny", "projection_hidden": 64, "projection_dim": 32,
              "clip_length": 4, "stride": 1, "crop_size": 32}
    save_checkpoint({"model": Encoder("r3d_tiny", 48, 32).state_dict(), "config": config}, path)
    with pytest.raises(ArtifactError, match="does not match the r3d_tiny encoder") as error:
        load_encoder(path)
    assert "\n" not in str(error.value)
    save_checkpoint({"model": {}, "config": {**config, "projection_hidden": "wide"}}, path)
    with pytest.raises(ArtifactError, match="does not match"):
        load_encoder(path)
    del config["crop_size"]
    save_checkpoint({"model": {}, "config": config}, path)
    with pytest.raises(ArtifactError, match="its config lacks crop_size"):
        load_encoder(path)


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    import os
    import subprocess
    import sys

    from stages.io.artifacts import write_artifact

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    checkpoint, artifact = tmp_path / "checkpoint.pt", tmp_path / "flow.h5"
    for path in (checkpoint, artifact):
        (tmp_path / f".{path.name}.writing-{dead}").write_bytes(b"")  # a killed writer's
    alive = tmp_path / f".checkpoint.pt.writing-{os.getppid()}"  # a live writer's: kept
    alive.write_bytes(b"")
    save_checkpoint({"model": {}}, checkpoint)
    with write_artifact(artifact, "flow", "key"):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["checkpoint.pt", "flow.h5", alive.name])
