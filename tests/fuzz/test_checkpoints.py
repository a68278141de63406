"""Every reader of a checkpoint (`load_checkpoint`, the pickle-structure reader of `slic
inspect`, `describe`) given a damaged or crafted torch zip returns or stops with one of
slic's one-line errors: truncated or flipped archives, a data.pkl of random bytes, of random
opcodes, of plain values nested thousands deep or of payloads that are no dict, members
missing or too many, and headers that lie about sizes."""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from stages.inspect_artifact import describe
from stages.io.checkpoint import load_checkpoint, save_checkpoint
from stages.io.checkpoint_reader import read_checkpoint_structure
from tests.fuzz.promise import QUICK, SLOW, examples, kept_promise

PICKLE = "archive/data.pkl"
DEEP = 50_000
# Opcodes a crafted data.pkl is made of: containers, marks, memo, globals, calls, storage ids.
OPCODES = [b"(", b"t", b"l", b"d", b"a", b"e", b"s", b"u", b"}", b"]", b")", b"N", b"\x88",
           b"K\x07", b"J\xff\xff\xff\x7f", b"X\x01\x00\x00\x00k", b"q\x00", b"h\x00",
           b"h\x09", b"0", b"1", b"2", b"\x85", b"\x86", b"\x87", b"R", b"Q", b"b", b"\x81",
           b"ctorch._utils\n_rebuild_tensor_v2\n", b"ctorch\nFloatStorage\n",
           b"cos\nsystem\n", b"ccollections\nOrderedDict\n", b"\x94", b"\x93", b"G" + bytes(8),
           b"\x8a\x01\x05", b"B\x02\x00\x00\x00ab", b"\x8f", b"\x90", b"."]
PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=4),
    max_leaves=30)


def archive(members: dict[str, bytes]) -> bytes:
    """A zip of `members`, stored as torch.save stores them."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for name, data in members.items():
            target.writestr(name, data)
    return buffer.getvalue()


def torch_saved(value: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def real_members() -> dict[str, bytes]:
    """The members of a small real checkpoint, renamed under archive/."""
    state = {"model": {"w": torch.ones(3), "bn.running_mean": torch.zeros(2)}, "epoch": 1,
             "config": {"arch": "r3d_tiny"}}
    with zipfile.ZipFile(io.BytesIO(torch_saved(state))) as source:
        return {"archive/" + info.filename.split("/", 1)[1]: source.read(info)
                for info in source.infolist()}


def with_pickle(members: dict[str, bytes], data: bytes) -> bytes:
    return archive({**members, PICKLE: data})


def misstate(data: bytes, size: int) -> bytes:
    """`data` (a zip) with every member's sizes in its central directory and local headers
    rewritten to `size`: headers that lie."""
    patched = bytearray(data)
    for signature, offsets in ((b"PK\x01\x02", (20, 24)), (b"PK\x03\x04", (18, 22))):
        at = patched.find(signature)
        while at >= 0:
            for offset in offsets:
                struct.pack_into("<I", patched, at + offset, size)
            at = patched.find(signature, at + 4)
    return bytes(patched)


def deep_pickles(real: bytes) -> list[bytes]:
    """Pickles of DEEP marks, of lists nested DEEP levels (alone, as a dict key, and as the
    run_config of the real checkpoint whose data.pkl is `real`)."""
    nested = b"]" * DEEP + b"a" * (DEEP - 1)
    return [b"(" * DEEP + b"t" * DEEP + b".", b"(" * DEEP + b"0" * DEEP + b"N.",
            b"\x80\x02" + nested + b".",
            b"\x80\x02}" + b"(" * DEEP + b"N" + b"t" * DEEP + b"Ns.",
            real[:-2] + b"X\x0a\x00\x00\x00run_config" + nested + real[-2:]]


def crafted(members: dict[str, bytes]) -> st.SearchStrategy[bytes]:
    """The bytes of a damaged or crafted checkpoint."""
    real = archive(members)
    return st.one_of(
        st.integers(0, len(real)).map(lambda end: real[:end]),
        st.tuples(st.integers(0, len(real) - 1), st.binary(min_size=1, max_size=8)).map(
            lambda change: real[:change[0]] + change[1] + real[change[0] + len(change[1]):]),
        st.binary(max_size=200).map(lambda data: with_pickle(members, data)),
        st.lists(st.sampled_from(OPCODES), max_size=60).map(
            lambda ops: with_pickle(members, b"\x80\x02" + b"".join(ops) + b".")),
        PLAIN.map(lambda value: with_pickle(members, pickle.dumps(value, protocol=2))),
        st.sampled_from([[], 3, "model", None, {"model": 5}, {"model": []}, {1: 2},
                         {"model": {}}, torch.zeros(2), {"model": {"w": torch.ones(1)},
                                                         "config": [1, 2]}]).map(torch_saved),
        st.sampled_from(deep_pickles(members[PICKLE])).map(
            lambda data: with_pickle(members, data)),
        st.integers(0, 2**32 - 1).map(lambda size: misstate(real, size)),
        st.sampled_from(sorted(members)).map(
            lambda gone: archive({k: v for k, v in members.items() if k != gone})),
    )


def check(data: bytes, path: Path) -> None:
    path.write_bytes(data)
    for read in (lambda: load_checkpoint(path), lambda: read_checkpoint_structure(path),
                 lambda: describe(path)):
        kept_promise(read)


@pytest.fixture(scope="module")
def members() -> dict[str, bytes]:
    return real_members()


def test_the_sample_reads_whole(members, tmp_path):
    path = tmp_path / "best.pt"
    path.write_bytes(archive(members))
    assert load_checkpoint(path)["epoch"] == 1
    assert describe(path)["num_tensors"] == 2


def test_a_checkpoint_slic_saves_reads_whole(tmp_path):
    save_checkpoint({"model": {"w": torch.ones(2)}}, tmp_path / "c.pt")
    assert kept_promise(lambda: describe(tmp_path / "c.pt")) is None


def damaged_checkpoints(count: int):
    @examples(count)
    @given(data=st.data())
    def battery(members, tmp_path, data):
        check(data.draw(crafted(members), label="checkpoint"), tmp_path / "best.pt")

    return battery


test_damaged_checkpoints = damaged_checkpoints(QUICK * 4)
test_damaged_checkpoints_many = pytest.mark.slow(damaged_checkpoints(SLOW * 4))
