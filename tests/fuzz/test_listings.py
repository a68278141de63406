"""Every dataset listing reader (UCF101's classInd.txt and train/test lists, HMDB51's split
files, Kinetics' CSVs, a folder's train.txt/test.txt) given list files of junk (binary
bytes, NULs, CRLF, missing fields, huge lines, other encodings) returns a listing or stops
with one DataError line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stages.datasets import list_dataset
from tests.fuzz.promise import QUICK, SLOW, examples, kept_promise

HUGE_LINE = "A/v_A_g01_c01.avi " + "x" * 300_000
LINES = st.lists(st.one_of(
    st.sampled_from(["1 A", "2 B", "A/v_A_g01_c01.avi 1", "B/v_B_g01_c01.avi", "v_A_g01_c01.avi 1",
                     "x.avi 3", "label,youtube_id,time_start,time_end,split",
                     "A,v_A_g01_c01,0,10,train", "A,yt,1e400,nan,train", "A,yt,,,",
                     "A,\"unterminated", ",", "1", "1 A B", "\ufeff1 A", " ", "\t", HUGE_LINE,
                     "A," + "x" * 200_000 + ",0,1,train"]),
    st.text(max_size=30)), max_size=6).map("\n".join)
CONTENTS = st.one_of(LINES.map(lambda text: text.encode("utf-8", "surrogatepass")),
                     st.binary(max_size=60),
                     LINES.map(lambda text: text.encode("utf-16")),
                     LINES.map(lambda text: text.replace("\n", "\r\n").encode("latin-1",
                                                                               "replace")))
# (dataset, list files it reads, relative to the root)
LAYOUTS = {
    "ucf101": ["ucfTrainTestlist/classInd.txt", "ucfTrainTestlist/trainlist01.txt",
               "ucfTrainTestlist/testlist01.txt"],
    "hmdb51": ["testTrainMulti_7030_splits/A_test_split1.txt",
               "testTrainMulti_7030_splits/B_test_split1.txt"],
    "kinetics400": ["annotations/train.csv", "annotations/validate.csv"],
    "folder": ["train.txt", "test.txt"],
}


def dataset_root(folder: Path, dataset: str, contents: list[bytes]) -> Path:
    """Two classes of one empty video each (v_A_g01_c01.avi, ...), and `contents` as the
    dataset's list files, in LAYOUTS order."""
    for name in ("A", "B"):
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / f"v_{name}_g01_c01.avi").write_bytes(b"")
    for relative, data in zip(LAYOUTS[dataset], contents):
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(data)
    return folder


def listing_battery(count: int):
    @pytest.mark.parametrize("dataset", sorted(LAYOUTS))
    @examples(count)
    @given(contents=st.lists(CONTENTS, min_size=3, max_size=3))
    def battery(dataset, tmp_path_factory, contents):
        root = dataset_root(tmp_path_factory.mktemp(dataset), dataset, contents)
        kept_promise(lambda: list_dataset(dataset, root))

    return battery


test_junk_list_files = listing_battery(QUICK)
test_junk_list_files_many = pytest.mark.slow(listing_battery(SLOW))
