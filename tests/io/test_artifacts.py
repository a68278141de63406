import hashlib

import h5py
import numpy as np
import pytest

from stages.io.artifacts import (
    SCHEMA_VERSION,
    ImageStreamWriter,
    open_artifact,
    read_encoded_images,
    write_artifact,
)
from stages.io.images import decode_image, encode_image
from stages.io.staging import pack_images
from stages.runtime.errors import ArtifactError


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "a.h5"
    with pytest.raises(RuntimeError):
        with write_artifact(target, "frames", "fp") as h5:
            h5.create_dataset("x", data=[1])
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_reader_errors(tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        open_artifact(tmp_path / "none.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(ArtifactError, match="not an HDF5 file"):
        open_artifact(tmp_path / "text.h5")
    with h5py.File(tmp_path / "foreign.h5", "w") as h5:
        h5["x"] = 1
    with pytest.raises(ArtifactError, match="not a slic artifact"):
        open_artifact(tmp_path / "foreign.h5")
    with write_artifact(tmp_path / "flow.h5", "flow", "fp"):
        pass
    with pytest.raises(ArtifactError, match="is a flow artifact, but a frames artifact"):
        open_artifact(tmp_path / "flow.h5", "frames")
    with h5py.File(tmp_path / "flow.h5", "a") as h5:
        h5.attrs["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(ArtifactError, match="newer than this slic reads"):
        open_artifact(tmp_path / "flow.h5")


@pytest.mark.parametrize("codec", ["jpeg", "png", "raw"])
def test_image_stream_round_trip(tmp_path, codec):
    ramp = np.add.outer(np.arange(16), np.arange(24))[..., None] * np.array([3, 5, 7])
    images = [((ramp + 20 * k) % 256).astype(np.uint8) for k in range(5)]

    # A kind of its own: a frames artifact must hold a video table as well.
    with write_artifact(tmp_path / "s.h5", "image-stream", "fp") as h5:
        writer = ImageStreamWriter(h5, "images", codec, 3, hashlib.blake2b())
        assert writer.append(*pack_images([encode_image(i, codec, 95) for i in images[:2]])) == 0
        assert writer.append(*pack_images([encode_image(i, codec, 95) for i in images[2:]])) == 2
    with open_artifact(tmp_path / "s.h5", "image-stream") as h5:
        encoded = read_encoded_images(h5, "images", 1, 3)
        decoded = [decode_image(e, codec, 16, 24, 3) for e in encoded]
    for original, back in zip(images[1:4], decoded):
        error = np.abs(original.astype(int) - back.astype(int)).mean()
        assert error == 0 if codec != "jpeg" else error < 8


@pytest.mark.parametrize("offsets", [[0, 5, 3, 9], [0, 5, 9, 10 ** 12], [-4, 0, 5, 9]])
def test_image_offsets_outside_the_stream_are_one_line(tmp_path, offsets):
    """Offsets that go backwards, past the stream's bytes or below 0 (a damaged or crafted
    file) are refused naming the file and the stream, never read as they say."""
    with write_artifact(tmp_path / "s.h5", "image-stream", "fp") as h5:
        h5.create_dataset("images/data", data=np.zeros(9, np.uint8))
        h5.create_dataset("images/offsets", data=np.array(offsets, np.int64))
    with open_artifact(tmp_path / "s.h5", "image-stream") as h5:
        with pytest.raises(ArtifactError, match=r"s\.h5: the offsets of images 0 to 2 of "
                                                "stream images lie outside its 9 bytes"):
            read_encoded_images(h5, "images", 0, 3)
        with pytest.raises(ArtifactError, match="offsets of images 3 to 4"):
            read_encoded_images(h5, "images", 3, 2)  # past the last image


def test_a_file_from_elsewhere_gets_one_first_read_in_a_child(tmp_path, monkeypatch):
    """open_artifact reads a file it did not write in a child once (until the file changes);
    what this process wrote itself is trusted."""
    from stages.io.artifacts import core

    calls = []
    monkeypatch.setattr(core, "run_isolated", lambda probe: calls.append(probe) or None)
    with write_artifact(tmp_path / "mine.h5", "image-stream", "fp"):
        pass
    open_artifact(tmp_path / "mine.h5").close()
    assert calls == []
    (tmp_path / "theirs.h5").write_bytes((tmp_path / "mine.h5").read_bytes())
    for _ in range(2):
        open_artifact(tmp_path / "theirs.h5").close()
    assert len(calls) == 1
    with h5py.File(tmp_path / "theirs.h5", "a") as h5:
        h5.attrs["note"] = "changed since"
    open_artifact(tmp_path / "theirs.h5").close()
    assert len(calls) == 2


def test_outputs_never_destroy_inputs_folders_or_foreign_files(tmp_path):
    from stages.io.artifacts import check_output, write_artifact

    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(ArtifactError, match="not a slic artifact"):
        check_output(notes, "frames")
    with pytest.raises(ArtifactError, match="is a folder"):
        check_output(tmp_path, "frames")
    frames = tmp_path / "frames.h5"
    with write_artifact(frames, "frames", "key"):
        pass
    check_output(frames, "frames")  # its own kind: the cache rules decide
    with pytest.raises(ArtifactError, match="is a frames artifact"):
        check_output(frames, "flow")
    with pytest.raises(ArtifactError, match="also this stage's input"):
        check_output(tmp_path / "x" / ".." / "frames.h5", "flow", [frames])
    check_output(tmp_path / "new.h5", "flow", [frames])
    assert notes.read_text() == "mine"


def test_a_damaged_image_names_the_file_and_the_video(motion_workspace, tmp_path):
    import shutil

    from stages.clips.store import ClipStore

    damaged = tmp_path / "frames.h5"
    shutil.copy(motion_workspace / "synthetic" / "frames.h5", damaged)
    with h5py.File(damaged, "r+") as h5:
        start, end = h5["images/offsets"][0:2]
        h5["images/data"][start:end] = 0
    store = ClipStore(damaged)
    video = store.table.columns["video_id"][0]
    with pytest.raises(ArtifactError, match="cannot be decoded") as error:
        store.rgb(0, np.arange(3))
    assert str(damaged) in str(error.value) and str(video) in str(error.value)


def test_a_folder_where_an_artifact_is_expected_says_so(tmp_path):
    with pytest.raises(ArtifactError, match="is a folder; pass an artifact file"):
        open_artifact(tmp_path)


def test_an_artifact_missing_its_datasets_is_one_clear_error(motion_workspace, tmp_path):
    import shutil

    for name, removed in (("frames.h5", "images/offsets"), ("flow.h5", "videos/num_images")):
        damaged = tmp_path / name
        shutil.copy(motion_workspace / "synthetic" / name, damaged)
        with h5py.File(damaged, "r+") as h5:
            del h5[removed]
        with pytest.raises(ArtifactError, match=f"lacks '{removed}'") as error:
            open_artifact(damaged)
        assert "\n" not in str(error.value)


def test_flow_of_other_frames_is_refused_at_start(motion_workspace, tmp_path):
    import shutil

    from stages.clips.store import ClipStore

    frames = tmp_path / "frames.h5"
    shutil.copy(motion_workspace / "synthetic" / "frames.h5", frames)
    ClipStore(frames, motion_workspace / "synthetic" / "flow.h5")  # its own flow: fine
    with h5py.File(frames, "r+") as h5:
        h5.attrs["content_digest"] = "0" * 32  # frames extracted again, or another dataset
    with pytest.raises(ArtifactError, match="computed from other frames"):
        ClipStore(frames, motion_workspace / "synthetic" / "flow.h5")


def _secret(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n" * 4)
    return secret


def _external_link(h5, secret):
    h5["class_list_elsewhere"] = h5py.ExternalLink(str(secret.with_suffix(".h5")), "/x")


def _external_storage(h5, secret):
    h5.create_dataset("extra/names", shape=(64,), dtype="u1", external=[(str(secret), 0, 64)])


def _virtual_dataset(h5, secret):
    layout = h5py.VirtualLayout(shape=(4,), dtype="i8")
    layout[:] = h5py.VirtualSource(str(secret.with_suffix(".h5")), "x", shape=(4,))
    h5.create_virtual_dataset("extra/virtual", layout)


@pytest.mark.parametrize("plant", [_external_link, _external_storage, _virtual_dataset])
def test_an_artifact_that_reaches_another_file_is_refused(tiny_frames, tmp_path, plant):
    """External links, external raw storage and virtual datasets would make HDF5 read other
    local files (and pass their bytes on as class names, say): one line, nothing read."""
    secret = _secret(tmp_path)
    with h5py.File(secret.with_suffix(".h5"), "w") as other:
        other["x"] = np.arange(4)
    crafted = tmp_path / "frames.h5"
    crafted.write_bytes(tiny_frames.read_bytes())
    with h5py.File(crafted, "a") as h5:
        plant(h5, secret)
    with pytest.raises(ArtifactError, match="damaged or unsafe artifact.*(link to|other files)"):
        open_artifact(crafted, "frames")
    open_artifact(tiny_frames, "frames").close()  # the untouched artifact still opens
