"""A checkpoint zip whose members would inflate out of proportion with the file is refused
with one line before anything inflates it (torch.load, slic's own pickle reader, `slic
inspect`); a header that understates a member cannot make slic inflate it either; real
checkpoints still load."""

import struct
import tracemalloc
import zipfile
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from slic_cli.app import app
from stages.io import checkpoint_archive
from stages.io.checkpoint import load_checkpoint, save_checkpoint
from stages.io.checkpoint_archive import check_checkpoint, inflation_limit, read_member
from stages.io.checkpoint_reader import read_checkpoint_structure
from stages.models.encoder import Encoder, load_encoder_weights
from stages.runtime.errors import ArtifactError

MIB = 2**20
BOMB = 128 * MIB  # zeros that deflate to about 128 KB


def real_checkpoint(path: Path) -> Path:
    save_checkpoint({"model": {"w": torch.ones(3), "b": torch.zeros(2)}, "epoch": 1,
                     "config": {"arch": "r3d_tiny"}}, path)
    return path


def pickle_name(path: Path) -> str:
    with zipfile.ZipFile(path) as archive:
        return next(name for name in archive.namelist() if name.endswith("/data.pkl"))


def with_inflating_member(real: Path, out: Path, size: int, name: str | None = None) -> Path:
    """A copy of the checkpoint `real` whose member `name` (default: data.pkl) is `size` zero
    bytes, deflated, written in 1 MiB blocks (the test never holds them whole)."""
    name = name or pickle_name(real)
    with zipfile.ZipFile(real) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            if info.filename != name:
                target.writestr(info, source.read(info))
        inflating = zipfile.ZipInfo(name)
        inflating.compress_type = zipfile.ZIP_DEFLATED
        with target.open(inflating, "w") as member:
            for _ in range(size // MIB):
                member.write(bytes(MIB))
    return out


def understate(path: Path, name: str, size: int) -> None:
    """Rewrite the uncompressed size of member `name` in its local header and in the central
    directory: a header that lies about how far the member inflates."""
    data = bytearray(path.read_bytes())
    encoded = name.encode()
    for signature, header, field in ((b"PK\x01\x02", 46, 24), (b"PK\x03\x04", 30, 22)):
        at = data.find(signature)
        while at >= 0:
            if data[at + header:at + header + len(encoded)] == encoded:
                struct.pack_into("<I", data, at + field, size)
            at = data.find(signature, at + 4)
    path.write_bytes(bytes(data))


def peak_bytes(read, path: Path) -> tuple[ArtifactError, int]:
    """The ArtifactError `read(path)` raises, and the peak of Python's allocations meanwhile."""
    tracemalloc.start()
    try:
        with pytest.raises(ArtifactError) as error:
            read(path)
        return error.value, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_real_checkpoint_declares_no_more_than_its_file(tmp_path):
    """The bound rests on this: torch.save stores its members uncompressed."""
    path = real_checkpoint(tmp_path / "best.pt")
    with zipfile.ZipFile(path) as archive:
        assert sum(m.file_size for m in archive.infolist()) <= path.stat().st_size
        assert {m.compress_type for m in archive.infolist()} == {zipfile.ZIP_STORED}
    check_checkpoint(path)
    assert load_checkpoint(path)["epoch"] == 1
    assert read_checkpoint_structure(path)["epoch"] == 1


def test_a_pickle_that_inflates_far_past_its_file_is_refused_before_reading(tmp_path,
                                                                           monkeypatch):
    real = real_checkpoint(tmp_path / "real.pt")
    bomb = with_inflating_member(real, tmp_path / "bomb.pt", BOMB)
    size = bomb.stat().st_size
    assert BOMB > inflation_limit(size) and size < MIB

    def never(*args, **kwargs):
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", never)
    encoder = Encoder("r3d_tiny", 48, 32)
    readers = [load_checkpoint, read_checkpoint_structure,
               lambda path: load_encoder_weights(encoder, path)]
    for read in readers:
        error, peak = peak_bytes(read, bomb)
        assert (f"{bomb} is a damaged or unsafe checkpoint: member '{pickle_name(real)}' would "
                f"inflate to {BOMB} bytes from a file of {size} bytes") in str(error)
        assert "\n" not in str(error) and peak < 16 * MIB
    result = CliRunner().invoke(app, ["inspect", str(bomb)])
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.rstrip("\n").splitlines()
    assert len(lines) == 1 and "damaged or unsafe checkpoint" in lines[0]


def test_a_header_that_understates_the_pickle_cannot_make_it_inflate(tmp_path):
    """zipfile would inflate a whole read() of the member before cutting it at the declared
    size (hundreds of MB here): slic reads in blocks and stops at the declared size."""
    real = real_checkpoint(tmp_path / "real.pt")
    lying = with_inflating_member(real, tmp_path / "lying.pt", BOMB)
    understate(lying, pickle_name(real), 200)
    error, peak = peak_bytes(read_checkpoint_structure, lying)
    assert "Bad CRC-32" in str(error) and peak < 16 * MIB
    with pytest.raises(ArtifactError, match="not a readable slic checkpoint"):
        load_checkpoint(lying)


def test_a_member_read_stops_at_the_bound_whatever_its_header_says(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint_archive, "INFLATION_SLACK", MIB)
    real = real_checkpoint(tmp_path / "real.pt")
    big = with_inflating_member(real, tmp_path / "big.pt", 8 * MIB)
    with zipfile.ZipFile(big) as archive:  # read without check_archive, as a lying header
        with pytest.raises(ArtifactError, match="inflates past"):
            read_member(big, archive, pickle_name(real))


def test_members_that_inflate_too_far_in_all_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint_archive, "INFLATION_SLACK", 3 * MIB)
    real = real_checkpoint(tmp_path / "real.pt")
    folder = pickle_name(real).rsplit("/", 1)[0]
    one = with_inflating_member(real, tmp_path / "one.pt", 2 * MIB, f"{folder}/data/8")
    two = with_inflating_member(one, tmp_path / "two.pt", 2 * MIB, f"{folder}/data/9")
    check_checkpoint(one)
    with zipfile.ZipFile(two) as archive:
        count = len(archive.infolist())
    with pytest.raises(ArtifactError, match=f"its {count} members would inflate to "
                                            r"\d+ bytes in all"):
        check_checkpoint(two)


def test_too_many_members_are_refused(tmp_path, monkeypatch):
    path = real_checkpoint(tmp_path / "real.pt")
    with zipfile.ZipFile(path) as archive:
        count = len(archive.infolist())
    monkeypatch.setattr(checkpoint_archive, "MAX_MEMBERS", count - 1)
    with pytest.raises(ArtifactError, match=f"holds {count} members"):
        load_checkpoint(path)
