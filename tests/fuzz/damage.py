"""Ways to damage an HDF5 artifact, as hypothesis strategies over one valid sample file:
truncation, flipped bytes, a member removed or replaced by one of another type or shape, an
attribute removed or changed, JSON text that is no JSON (or nested thousands deep), a
reference to another file (external link, external raw storage, virtual dataset), and
datasets or attributes whose header declares far more than the file holds."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
from hypothesis import strategies as st

STRING = h5py.string_dtype("utf-8")
DEEP = 100_000  # brackets: past Python's recursion limit in json.loads
# Values a dataset is replaced with: wrong dtypes, wrong ranks, absurd numbers, bad text.
DATASET_VALUES: list[Callable[[], dict]] = [
    lambda: {"data": np.array([1.5, np.nan, -np.inf])},
    lambda: {"data": np.array(["a", "b", "c"], dtype=object), "dtype": STRING},
    lambda: {"data": np.zeros((2, 3, 4), np.int64)},
    lambda: {"data": np.int64(7)},
    lambda: {"data": "x", "dtype": STRING},
    lambda: {"data": np.zeros(0, np.int64)},
    lambda: {"data": h5py.Empty("f")},
    lambda: {"data": np.void(b"\x00\xff\x10")},
    lambda: {"data": np.zeros(3, dtype=[("a", "i4"), ("b", "f8")])},
    lambda: {"data": np.array([-5, 2**62, -(2**62)], np.int64)},
    lambda: {"data": np.array([True, False])},
    lambda: {"data": np.arange(1000)},
    lambda: {"data": np.array([b"\xff\xfe", b"\x80"], dtype="S2")},
    lambda: {"data": "{", "dtype": STRING},
    lambda: {"data": "[1, 2]", "dtype": STRING},
    lambda: {"data": '{"inputs": 5, "config": [], "1": "x"}', "dtype": STRING},
    lambda: {"data": "[" * DEEP + "]" * DEEP, "dtype": STRING},
    lambda: {"data": '{"a":' * DEEP + "1" + "}" * DEEP, "dtype": STRING},
    lambda: {"shape": (10**12,), "dtype": np.int64, "chunks": (2**16,)},
    lambda: {"shape": (2**20, 2**20), "dtype": STRING, "chunks": (64, 64)},
]
# Values an attribute is set to: other types, arrays, text that is no JSON or no number.
ATTRIBUTE_VALUES: list[Callable[[], object]] = [
    lambda: 3, lambda: -1, lambda: 2**40, lambda: 1.5, lambda: float("nan"), lambda: "abc",
    lambda: "", lambda: "{", lambda: "[" * 30_000, lambda: np.arange(5),
    lambda: np.array(["a", "b"], dtype=object), lambda: h5py.Empty("f"),
    lambda: np.void(b"\xff\x00"), lambda: b"\xff\xfe", lambda: "x" * 50_000,
    lambda: np.zeros((2, 2)),
]
MARKER = 54_321  # the extent of a crafted attribute or dataset, patched to HUGE in the bytes
HUGE = 10**13


def members(path: Path) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """The datasets, groups and (object, attribute) pairs of the HDF5 file at `path`."""
    datasets, groups, attributes = [], ["/"], [("/", name) for name in ("kind",
                                                                        "schema_version")]
    with h5py.File(path, "r") as h5:
        attributes += [("/", name) for name in h5.attrs]

        def visit(name: str, item: object) -> None:
            (datasets if isinstance(item, h5py.Dataset) else groups).append(name)
            attributes.extend((name, attribute) for attribute in item.attrs)

        h5.visititems(visit)
    return datasets, groups, sorted(set(attributes))


def _edit(path: Path, change: Callable[[h5py.File], None]) -> None:
    with h5py.File(path, "a") as h5:
        change(h5)


def truncate(path: Path, fraction: float) -> None:
    """Keep the first `fraction` of the file."""
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])


def global_heaps(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each global heap collection (signature GCOL, version 1, its size in
    the next 8 bytes): where HDF5 keeps variable-length strings."""
    found, start = [], data.find(b"GCOL\x01")
    while start >= 0:
        size = int.from_bytes(data[start + 8:start + 16], "little")
        found.append((start, start + size))
        start = data.find(b"GCOL\x01", start + 4)
    return found


def shrink_heap_free_space(path: Path) -> None:
    """Make the free space of the file's first global heap collection declare 0x42 bytes
    fewer than it spans: one byte changed, which HDF5 reads in a loop that never ends."""
    data = bytearray(path.read_bytes())
    start, end = global_heaps(bytes(data))[0]
    at = start + 16  # after signature, version, reserved bytes and the collection's size
    while int.from_bytes(data[at:at + 2], "little") != 0:  # index 0: the free space
        size = int.from_bytes(data[at + 8:at + 16], "little")
        at += 16 + (size + 7) // 8 * 8
    size = int.from_bytes(data[at + 8:at + 16], "little")
    data[at + 8:at + 16] = (size - 0x42).to_bytes(8, "little")
    path.write_bytes(bytes(data))


def flip(path: Path, seed: int, count: int) -> None:
    """Overwrite `count` bytes at places drawn uniformly (from `seed`) with random values,
    outside the global heaps: HDF5 can loop forever, holding the GIL, on a damaged one
    (test_hdf5.test_a_damaged_global_heap_hangs_hdf5), which no deadline can stop."""
    data = np.frombuffer(path.read_bytes(), np.uint8).copy()
    rng = np.random.default_rng(seed)
    places = rng.integers(0, len(data), count)
    for start, end in global_heaps(data.tobytes()):
        places = places[(places < start) | (places >= end)]
    data[places] = rng.integers(0, 256, len(places))
    path.write_bytes(data.tobytes())


def drop(path: Path, name: str) -> None:
    """Remove member `name` (a dataset or group)."""
    _edit(path, lambda h5: h5.__delitem__(name))


def replace(path: Path, name: str, value: int) -> None:
    """Replace dataset or group `name` by a dataset of DATASET_VALUES[value], or a dataset
    by an empty group."""
    def change(h5: h5py.File) -> None:
        del h5[name]
        if value == len(DATASET_VALUES):
            h5.create_group(name)
        else:
            h5.create_dataset(name, **DATASET_VALUES[value]())

    _edit(path, change)


def set_attribute(path: Path, place: tuple[str, str], value: int | None) -> None:
    """Set attribute `place` (object, name) to ATTRIBUTE_VALUES[value], or delete it (None)."""
    owner, name = place

    def change(h5: h5py.File) -> None:
        if value is None:
            if name in h5[owner].attrs:
                del h5[owner].attrs[name]
        else:
            h5[owner].attrs[name] = ATTRIBUTE_VALUES[value]()

    _edit(path, change)


def refer_elsewhere(path: Path, name: str, how: str) -> None:
    """Make dataset `name` read another file: an external link, raw data in an external
    file, or a virtual dataset mapping one."""
    other = path.with_name("elsewhere.h5")
    with h5py.File(other, "w") as h5:
        h5["data"] = np.arange(4)

    def change(h5: h5py.File) -> None:
        del h5[name]
        if how == "link":
            h5[name] = h5py.ExternalLink(str(other), "/data")
        elif how == "raw":
            h5.create_dataset(name, (4,), np.int64,
                              external=[(str(path.with_name("raw.bin")), 0, 32)])
        else:
            layout = h5py.VirtualLayout((4,), np.int64)
            layout[:] = h5py.VirtualSource(str(other), "data", (4,))
            h5.create_virtual_dataset(name, layout)

    _edit(path, change)


def declare_huge(path: Path, owner: str, as_attribute: bool) -> None:
    """Add to `owner` an attribute (or dataset) of MARKER bytes, then patch its extent in the
    file's bytes to HUGE: a header that declares terabytes with no data behind it."""
    def change(h5: h5py.File) -> None:
        if as_attribute:
            h5[owner].attrs["crafted"] = np.zeros(MARKER, np.uint8)
        else:
            h5[owner].create_dataset("crafted", data=np.zeros(MARKER, np.uint8))

    _edit(path, change)
    data = path.read_bytes().replace(struct.pack("<Q", MARKER), struct.pack("<Q", HUGE))
    path.write_bytes(data)


def damages(path: Path) -> st.SearchStrategy:
    """Every damage to the sample at `path`, as a strategy of callables taking the copy's
    path (their repr names the damage, for hypothesis' report)."""
    datasets, groups, attributes = members(path)
    everything = sorted(datasets + groups[1:])
    owners = st.sampled_from(groups)
    return st.one_of(
        st.builds(Damage, st.just(truncate), st.floats(0, 1)),
        st.builds(Damage, st.just(flip), st.integers(0, 2**32 - 1), st.integers(1, 16)),
        st.builds(Damage, st.just(drop), st.sampled_from(everything)),
        st.builds(Damage, st.just(replace), st.sampled_from(everything),
                  st.integers(0, len(DATASET_VALUES))),
        st.builds(Damage, st.just(set_attribute), st.sampled_from(attributes),
                  st.none() | st.integers(0, len(ATTRIBUTE_VALUES) - 1)),
        st.builds(Damage, st.just(refer_elsewhere), st.sampled_from(datasets),
                  st.sampled_from(["link", "raw", "virtual"])),
        st.builds(Damage, st.just(declare_huge), owners, st.booleans()),
    )


class Damage:
    """One damage: a function of this module and its arguments after the path."""

    def __init__(self, function: Callable, *arguments: object) -> None:
        self.function, self.arguments = function, arguments

    def __call__(self, path: Path) -> None:
        self.function(path, *self.arguments)

    def __repr__(self) -> str:
        return f"{self.function.__name__}{self.arguments!r}"
