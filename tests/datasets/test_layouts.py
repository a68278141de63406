"""Dataset readers on fake trees of empty files: listing needs names, not video content."""

from pathlib import Path

import pytest

from stages.datasets import list_dataset
from stages.datasets.base import TEST, TRAIN, UNUSED
from stages.datasets.folder import stratified_membership
from stages.runtime.errors import DataError


def touch(root: Path, *relpaths: str) -> None:
    for rel in relpaths:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.replace("\n", "\r\n").encode())  # UCF101's lists use CRLF


def make_ucf(videos: Path, lists: Path) -> None:
    touch(videos, "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
          "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
          "HandStandPushups/v_HandStandPushups_g01_c01.avi",
          "HandStandPushups/v_HandStandPushups_g08_c01.avi")
    write(lists / "classInd.txt", "1 ApplyEyeMakeup\n2 HandstandPushups\n")
    write(lists / "trainlist01.txt",
          "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n"
          "HandstandPushups/v_HandStandPushups_g08_c01.avi 2\n"
          "ApplyEyeMakeup/v_ApplyEyeMakeup_g09_c01.avi 1\n")
    write(lists / "testlist01.txt",
          "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n"
          "HandstandPushups/v_HandStandPushups_g01_c01.avi\n")


@pytest.mark.parametrize("layout", ["classes_in_root", "UCF-101_inside_root", "root_is_UCF-101"])
def test_ucf101_layouts_and_handstand_name_mismatch(tmp_path, layout):
    if layout == "classes_in_root":
        make_ucf(tmp_path, tmp_path / "ucfTrainTestlist")
        root = tmp_path
    elif layout == "UCF-101_inside_root":
        make_ucf(tmp_path / "UCF-101", tmp_path / "ucfTrainTestlist")
        root = tmp_path
    else:
        make_ucf(tmp_path / "UCF-101", tmp_path / "ucfTrainTestlist")
        root = tmp_path / "UCF-101"
    listing = list_dataset("ucf101", root)
    assert listing.class_names == ["ApplyEyeMakeup", "HandstandPushups"]
    assert listing.split_names == ["1"]
    by_id = {v.relpath.split("/")[1]: v for v in listing.videos}
    assert len(by_id) == 4
    hand = by_id["v_HandStandPushups_g08_c01.avi"]
    assert (hand.class_name, hand.label, hand.membership) == ("HandstandPushups", 1, (TRAIN,))
    assert by_id["v_HandStandPushups_g01_c01.avi"].membership == (TEST,)
    assert listing.missing == ["ApplyEyeMakeup/v_ApplyEyeMakeup_g09_c01.avi"]


def test_ucf101_without_lists_names_the_fix(tmp_path):
    touch(tmp_path, "A/v_A_g01_c01.avi")
    with pytest.raises(DataError, match="no ucfTrainTestlist/ folder found"):
        list_dataset("ucf101", tmp_path)


def test_missing_root_and_unknown_dataset(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        list_dataset("ucf101", tmp_path / "nope")
    with pytest.raises(DataError, match="unknown dataset 'ucf'"):
        list_dataset("ucf", tmp_path)
    with pytest.raises(DataError, match="pass --root"):
        list_dataset("hmdb51", None)


def test_hmdb51_codes_and_three_splits(tmp_path):
    touch(tmp_path, "brush_hair/a.avi", "brush_hair/b.avi", "brush_hair/c.avi", "cartwheel/d.avi")
    splits = tmp_path / "testTrainMulti_7030_splits"
    for n, codes in enumerate(["1 2 0", "2 1 1", "0 0 2"], start=1):
        a, b, c = codes.split()
        write(splits / f"brush_hair_test_split{n}.txt",
              f"a.avi {a} \nb.avi {b} \nc.avi {c} \ngone.avi 1 \n")
        write(splits / f"cartwheel_test_split{n}.txt", "d.avi 1 \n")
    listing = list_dataset("hmdb51", tmp_path)
    assert listing.split_names == ["1", "2", "3"]
    assert listing.class_names == ["brush_hair", "cartwheel"]
    membership = {v.relpath: v.membership for v in listing.videos}
    assert membership["brush_hair/a.avi"] == (TRAIN, TEST, UNUSED)
    assert membership["brush_hair/c.avi"] == (UNUSED, TRAIN, TEST)
    assert listing.missing == ["brush_hair/gone.avi"]
    assert listing.split_index("2") == 1
    with pytest.raises(DataError, match="split 4 is not available"):
        listing.split_index("4")


@pytest.mark.parametrize("class_level", [True, False])
def test_kinetics_csv_and_clip_names(tmp_path, class_level):
    prefix = "passing American football (in game)/" if class_level else ""
    touch(tmp_path, f"train/{prefix}abc_000010_000020.mp4", "val/xyz_000001_000011.mp4")
    write(tmp_path / "annotations/train.csv",
          "label,youtube_id,time_start,time_end,split,is_cc\n"
          '"passing American football (in game)",abc,10,20,train,0\n'
          "abseiling,lost,3,13,train,0\n")
    write(tmp_path / "annotations/validate.csv",
          "label,youtube_id,time_start,time_end,split\nabseiling,xyz,1,11,val\n")
    listing = list_dataset("kinetics400", tmp_path)
    assert listing.class_names == ["abseiling", "passing American football (in game)"]
    codes = {v.relpath.rsplit("/", 1)[-1]: (v.class_name, v.membership) for v in listing.videos}
    assert codes["abc_000010_000020.mp4"] == ("passing American football (in game)", (TRAIN,))
    assert codes["xyz_000001_000011.mp4"] == ("abseiling", (TEST,))
    assert listing.missing == ["lost_000003_000013.mp4"]


def test_folder_lists_with_spaces(tmp_path):
    touch(tmp_path, "jump/my clip 1.mp4", "jump/b.mp4", "run/c d.avi")
    (tmp_path / "train.txt").write_text("jump/my clip 1.mp4 0\nrun/c d.avi\n")
    (tmp_path / "test.txt").write_text("jump/b.mp4\njump/absent.mp4\n")
    listing = list_dataset("folder", tmp_path)
    membership = {v.relpath: v.membership for v in listing.videos}
    assert membership == {"jump/b.mp4": (TEST,), "jump/my clip 1.mp4": (TRAIN,),
                          "run/c d.avi": (TRAIN,)}
    assert listing.missing == ["jump/absent.mp4"]


def test_stratified_split_is_seeded_and_per_class():
    by_class = {"a": [f"a/{i}.mp4" for i in range(10)], "b": [f"b/{i}.mp4" for i in range(3)]}
    first = stratified_membership(by_class, 0.3, seed=5)
    again = stratified_membership({k: v[::-1] for k, v in by_class.items()}, 0.3, seed=5)
    other = stratified_membership(by_class, 0.3, seed=6)
    assert first == again
    assert first != other
    assert sum(first[p] == TEST for p in by_class["a"]) == 3
    assert sum(first[p] == TEST for p in by_class["b"]) == 1


def test_each_real_video_is_enrolled_once_through_link_loops(tmp_path):
    touch(tmp_path, "jump/a.mp4", "jump/b.mp4", "run/c.mp4")
    (tmp_path / "jump" / "loop").symlink_to(tmp_path / "jump")  # jump/loop -> ../jump
    (tmp_path / "run" / "again.mp4").symlink_to(tmp_path / "jump" / "a.mp4")
    (tmp_path / "run" / "gone.mp4").symlink_to(tmp_path / "nowhere.mp4")  # dangling
    listing = list_dataset("folder", tmp_path)
    assert [v.relpath for v in listing.videos] == ["jump/a.mp4", "jump/b.mp4", "run/c.mp4",
                                                   "run/gone.mp4"]
    assert sorted(listing.skipped_links) == ["jump/loop", "run/again.mp4"]


def test_a_dangling_link_is_a_recorded_failure(tmp_path):
    import numpy as np

    from stages.extract_frames import ExtractFramesConfig
    from stages.extract_frames import run as extract_frames
    from stages.io.video import write_video
    from stages.runtime.sections import DataConfig, WorkspaceConfig

    source = tmp_path / "rise.avi"  # a real video, outside the dataset
    write_video(source, np.random.default_rng(0).integers(0, 256, (8, 32, 48, 3), np.uint8),
                fps=25)
    root = tmp_path / "data"
    (root / "rise").mkdir(parents=True)
    (root / "rise" / "a.avi").symlink_to(source)
    (root / "rise" / "loop").symlink_to(root / "rise")
    (root / "rise" / "gone.avi").symlink_to(root / "nowhere.avi")
    result = extract_frames(ExtractFramesConfig(short_side=32, workers=1),
                            DataConfig(dataset="folder", root=str(root), test_ratio=0.0),
                            WorkspaceConfig(root=str(tmp_path / "ws")))
    summary = result.summary()
    assert summary["num_videos"] == 2 and summary["num_failed"] == 1
    assert summary["failures"][0]["relpath"] == "rise/gone.avi"
    assert summary["skipped_links"] == 1


def test_videos_that_differ_only_by_extension_get_ids_of_their_own(tmp_path):
    """a/x.mp4 and a/x.avi had the same id: pretraining paired one's frames with the other's
    flow. Their ids keep the extension; every other id stays the path stem."""
    touch(tmp_path, "jump/x.mp4", "jump/x.avi", "jump/y.mp4", "run/x.mp4")
    ids = [v.video_id for v in list_dataset("folder", tmp_path).videos]
    assert ids == ["jump/x.avi", "jump/x.mp4", "jump/y", "run/x"]
    assert len(set(ids)) == len(ids)


def test_paths_that_differ_only_by_case_are_both_kept_and_recorded(tmp_path):
    touch(tmp_path, "jump/Clip.mp4", "jump/clip.mp4", "run/c.mp4")
    listing = list_dataset("folder", tmp_path)
    assert [v.relpath for v in listing.videos] == ["jump/Clip.mp4", "jump/clip.mp4", "run/c.mp4"]
    assert listing.case_twins == ["jump/clip.mp4"]
    assert len({v.video_id for v in listing.videos}) == 3


def test_a_fifo_named_like_a_video_is_never_read(tmp_path):
    import os

    touch(tmp_path, "jump/a.mp4", "run/c.mp4")
    os.mkfifo(tmp_path / "jump" / "pipe.mp4")  # opening it to read would block for ever
    listing = list_dataset("folder", tmp_path)
    assert [v.relpath for v in listing.videos] == ["jump/a.mp4", "run/c.mp4"]
    assert listing.not_regular == ["jump/pipe.mp4"]


def test_a_root_one_level_too_high_is_warned(tmp_path):
    touch(tmp_path, "UCF101/Jump/a.avi", "UCF101/Run/b.avi", "HMDB51/jump/c.avi")
    listing = list_dataset("folder", tmp_path)
    assert listing.class_names == ["HMDB51", "UCF101"]  # what the user did not mean
    assert any("one level too high" in w and str(tmp_path / "HMDB51") in w
               for w in listing.warnings)
    right = list_dataset("folder", tmp_path / "UCF101")
    assert not any("one level too high" in w for w in right.warnings)


def test_splits_that_leave_classes_out_or_hold_a_handful_of_tests_are_warned(tmp_path):
    """19 videos in 17 classes split automatically: most classes have one video, so they
    have a test video and no training one, or the reverse, and the test split is tiny."""
    names = [f"c{c:02d}/v{i}.mp4" for c in range(17) for i in range(2 if c < 2 else 1)]
    touch(tmp_path, *names)
    warnings = " | ".join(list_dataset("folder", tmp_path).warnings)
    assert "classes have no test video" in warnings
    assert "test videos: R@k and top-1 on them" in warnings
    wide = tmp_path / "wide"
    touch(wide, *[f"c{c}/v{i}.mp4" for c in range(4) for i in range(10)])
    assert list_dataset("folder", wide).warnings == []  # 3 of 10 a class tested, 12 in all


def test_a_flat_folder_is_an_unlabelled_collection_all_in_train(tmp_path):
    touch(tmp_path, "b.mp4", "a.avi", "c.mkv")
    listing = list_dataset("folder", tmp_path)
    assert listing.class_names == [] and listing.split_names == ["1"]
    assert [(v.relpath, v.class_name, v.label, v.membership) for v in listing.videos] == [
        ("a.avi", "", -1, (TRAIN,)), ("b.mp4", "", -1, (TRAIN,)), ("c.mkv", "", -1, (TRAIN,))]
    assert listing.warnings == []


def test_labels_none_reads_a_nested_tree_with_ids_unique_by_path(tmp_path):
    """Videos nested by date and camera: the same file name in many folders. With
    data.labels none the folders are no classes and every id is the path below the root."""
    names = [f"2024-05-0{d}/cam{c}/clip.mp4" for d in (1, 2) for c in (1, 2)]
    touch(tmp_path, *names)
    assert list_dataset("folder", tmp_path).class_names == ["2024-05-01", "2024-05-02"]  # auto
    listing = list_dataset("folder", tmp_path, labels="none")
    assert listing.class_names == [] and {v.label for v in listing.videos} == {-1}
    assert [v.video_id for v in listing.videos] == [n.removesuffix(".mp4") for n in names]
    assert not any("one level too high" in w for w in listing.warnings)


def test_videos_beside_class_folders_make_auto_unlabelled_and_folders_refuse(tmp_path):
    touch(tmp_path, "jump/a.mp4", "run/b.mp4", "stray.mp4")
    (tmp_path / "train.txt").write_text("jump/a.mp4\n")
    (tmp_path / "test.txt").write_text("run/b.mp4\n")
    listing = list_dataset("folder", tmp_path)
    assert listing.class_names == [] and len(listing.videos) == 3
    assert any("1 videos sit directly in" in w and "stray.mp4" in w for w in listing.warnings)
    assert any("train.txt and test.txt" in w and "not read" in w for w in listing.warnings)
    assert {v.membership for v in listing.videos} == {(TRAIN,)}
    with pytest.raises(DataError, match=r"outside any class folder \(first: stray.mp4\).*"
                                        "data.labels: none"):
        list_dataset("folder", tmp_path, labels="folders")


def test_labels_none_makes_a_class_tree_or_an_official_layout_unlabelled(tmp_path):
    touch(tmp_path / "own", "jump/a.mp4", "jump/b.mp4", "run/c.mp4")
    labelled = list_dataset("folder", tmp_path / "own", labels="folders")
    assert labelled.class_names == ["jump", "run"]
    listing = list_dataset("folder", tmp_path / "own", labels="none")
    assert listing.class_names == [] and {v.label for v in listing.videos} == {-1}
    make_ucf(tmp_path / "ucf", tmp_path / "ucf" / "ucfTrainTestlist")
    ucf = list_dataset("ucf101", tmp_path / "ucf", labels="none")
    assert ucf.class_names == [] and ucf.split_names == ["1"]
    assert {v.membership for v in ucf.videos} == {(TRAIN,)}  # test videos of the list too
    assert {(v.class_name, v.label) for v in ucf.videos} == {("", -1)}


def test_an_empty_folder_names_the_root(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(DataError, match=f"no videos found under {tmp_path / 'empty'}"):
        list_dataset("folder", tmp_path / "empty")
